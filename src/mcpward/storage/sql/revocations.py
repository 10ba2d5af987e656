"""The revocations log read in order (``seq``), for guards that poll it.

Each poll asks only for rows after the last ``seq`` seen: one indexed range scan that
returns nothing most of the time. Rows are written by :mod:`.grants`, in the same
transaction as the change that caused them.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.records import Revocation
from mcpward.storage.schema import revocations


class SqlRevocationLog:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def revocations_since(
        self, seq: int, *, live_after: float | None = None, limit: int = 1000
    ) -> list[tuple[int, Revocation]]:
        query = select(
            revocations.c.seq,
            revocations.c.kind,
            revocations.c.key,
            revocations.c.revoked_at,
            revocations.c.expires_at,
        ).where(revocations.c.seq > seq)
        if live_after is not None:
            query = query.where(revocations.c.expires_at > live_after)
        query = query.order_by(revocations.c.seq).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(r.seq, Revocation(r.kind, r.key, r.revoked_at, r.expires_at)) for r in rows]
