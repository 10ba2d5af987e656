"""Following the revocations log: every new entry, in order, handed to a publisher.

Two uses: a guard without Redis polls the log into its in-memory view
(:class:`~mcpward.revocation.table.TablePollingRevocations`), and an authorization server
with Redis relays the log to Redis, so that a revocation whose direct publish failed (Redis
down, a replica killed between commit and publish) still reaches every guard once Redis is
back.

Entries are read by sequence number. On PostgreSQL two transactions can commit their
rows out of sequence order (9 after 10), so a follower that has seen 10 must still look
for 9: a number skipped in a batch is remembered as a gap and looked for again for
``gap_patience`` seconds (a rolled-back insert leaves a gap that never fills).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from mcpward._clock import Clock, system_clock
from mcpward.revocation._types import Resync, RevocationPublisher
from mcpward.storage.contracts import RevocationLog

log = logging.getLogger("mcpward.revocation")

GAP_PATIENCE = 30.0
# How far below the newest entry a first load looks for numbers still in flight.
FIRST_LOAD_GAP_WINDOW = 1000


class LogFollower:
    def __init__(
        self,
        source: RevocationLog,
        publisher: RevocationPublisher,
        *,
        interval: float = 0.5,
        clock: Clock = system_clock,
        gap_patience: float = GAP_PATIENCE,
        name: str = "revocation log",
        resync: Resync | None = None,
    ) -> None:
        self._source = source
        self._publisher = publisher
        self.interval = interval
        self._clock = clock
        self._gap_patience = gap_patience
        self._name = name
        self._resync = resync
        self.last_seq = 0
        # seq -> when it was first found missing
        self._gaps: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        # When the log was last read through to its end (None: never).
        self.caught_up_at: float | None = None

    async def poll_once(self) -> int:
        """Hand on entries newer than the last seen (and gaps that filled); return how
        many."""
        now = self._clock()
        self._gaps = {s: t for s, t in self._gaps.items() if now - t < self._gap_patience}
        if self.last_seq and self._resync is not None and await self._resync.lost():
            log.warning("%s: the shared state lost its revocations; publishing again", self._name)
            self.last_seq = 0
            self._gaps.clear()
        # The first load takes only what can still match a valid token.
        full_load = self.last_seq == 0
        live_after = now if full_load else None
        since = min(self._gaps) - 1 if self._gaps else self.last_seq
        count = 0
        first_load_gaps: list[int] = []
        while True:
            rows = await self._source.revocations_since(since, live_after=live_after)
            fresh = [(seq, r) for seq, r in rows if seq > self.last_seq or self._filled(seq)]
            if fresh:
                await self._publisher.publish([r for _, r in fresh])
                count += len(fresh)
            if not rows:
                for missing in first_load_gaps:
                    self._gaps.setdefault(missing, now)
                if full_load and self._resync is not None:
                    await self._resync.restored()
                self.caught_up_at = now
                return count
            top = rows[-1][0]
            if top > self.last_seq:
                seen = {seq for seq, _ in rows}
                if full_load:
                    # A first load leaves out expired entries, so a missing number is a
                    # gap only where a transaction can still be in flight: just below
                    # the newest entry of the last batch.
                    low = max(since, top - FIRST_LOAD_GAP_WINDOW)
                    first_load_gaps = [s for s in range(low + 1, top) if s not in seen]
                else:
                    for missing in range(self.last_seq + 1, top):
                        if missing not in seen:
                            self._gaps.setdefault(missing, now)
                self.last_seq = top
            since = top

    def _filled(self, seq: int) -> bool:
        return self._gaps.pop(seq, None) is not None

    async def start(self) -> None:
        """Read the log once, then keep following it in the background. A first read that
        fails (storage down at start-up) is retried by the background loop."""
        await self._poll_logged()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mcpward-{self._name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> LogFollower:
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
            await self._poll_logged()

    async def _poll_logged(self) -> None:
        try:
            await self.poll_once()
        except Exception as exc:  # keep what is known; report by type, once per outage
            if not self._failing:
                log.warning("%s failed: %s", self._name, type(exc).__name__)
            self._failing = True
        else:
            if self._failing:
                log.warning("%s works again", self._name)
            self._failing = False
