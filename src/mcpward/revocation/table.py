"""A guard's view of the ``revocations`` table, polled by ``seq``.

Each poll asks only for rows after the last ``seq`` seen, so a poll is one indexed range
scan that returns nothing most of the time. The propagation delay is at most one
``interval`` plus one query; the view keeps answering from memory if the database is
unreachable (revocations already seen stay in force).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from types import TracebackType

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward._clock import Clock, system_clock
from mcpward.revocation import Revocation, TokenRef
from mcpward.revocation._memory import InProcessRevocations
from mcpward.storage.schema import revocations as table

log = logging.getLogger("mcpward.revocation")


class TablePollingRevocations:
    def __init__(
        self, engine: AsyncEngine, *, interval: float = 1.0, clock: Clock = system_clock
    ) -> None:
        self._engine = engine
        self.interval = interval
        self._clock = clock
        self._local = InProcessRevocations(clock)
        self.last_seq = 0
        self._task: asyncio.Task[None] | None = None

    async def is_revoked(self, token: TokenRef) -> bool:
        return self._local.check(token)

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        """Also a publisher: in a process that runs the authorization server too, its own
        revocations apply at once, and the poll brings those of other processes (the CLI,
        other replicas)."""
        self._local.add(revocations)

    async def poll_once(self) -> int:
        """Load rows newer than the last seen; return how many arrived."""
        query = sa.select(
            table.c.seq, table.c.kind, table.c.key, table.c.revoked_at, table.c.expires_at
        )
        query = query.where(table.c.seq > self.last_seq).order_by(table.c.seq)
        if self.last_seq == 0:
            # First load: only what can still match a valid token.
            query = query.where(table.c.expires_at > self._clock())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        batch = [
            Revocation(
                kind=row.kind, key=row.key, revoked_at=row.revoked_at, expires_at=row.expires_at
            )
            for row in rows
        ]
        self._local.add(batch)
        if rows:
            self.last_seq = max(self.last_seq, rows[-1].seq)
        return len(rows)

    async def start(self) -> None:
        await self.poll_once()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="mcpward-revocation-poll")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> TablePollingRevocations:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.poll_once()
            except (SQLAlchemyError, OSError) as exc:
                log.warning("revocation poll failed: %s", type(exc).__name__)
