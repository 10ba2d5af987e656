"""Browser sessions of the sign-in pages that were ended on the server (sign out).

The session itself lives in a signed cookie; only its end is stored, as the SHA-256 of
the session id (never the id itself) until the time the cookie would have expired, so
every replica refuses a copied cookie at once. Expired rows are purged as new ones come.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.schema import revoked_sessions


def sid_hash(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


class SqlSessions:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def revoke(self, sid: str, expires_at: float, now: float) -> None:
        """End the session ``sid`` (idempotent) and purge the rows that have expired."""
        values = {"sid_hash": sid_hash(sid), "expires_at": expires_at}
        if self._engine.dialect.name == "postgresql":
            pg = postgresql.insert(revoked_sessions).values(**values)
            statement: Any = pg.on_conflict_do_nothing(index_elements=["sid_hash"])
        else:
            lite = sqlite.insert(revoked_sessions).values(**values)
            statement = lite.on_conflict_do_nothing(index_elements=["sid_hash"])
        async with self._writer.begin() as conn:
            await conn.execute(delete(revoked_sessions).where(revoked_sessions.c.expires_at <= now))
            if expires_at > now:
                await conn.execute(statement)

    async def is_revoked(self, sid: str) -> bool:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(revoked_sessions.c.expires_at).where(
                        revoked_sessions.c.sid_hash == sid_hash(sid)
                    )
                )
            ).first()
        return row is not None

    async def purge_expired(self, now: float) -> int:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                delete(revoked_sessions).where(revoked_sessions.c.expires_at <= now)
            )
        return int(result.rowcount or 0)
