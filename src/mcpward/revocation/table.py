"""A guard's view of the revocations log without Redis: the log, polled by ``seq`` into
this process's memory.

The propagation delay is at most one ``interval`` plus one query. If the database becomes
unreachable the view keeps answering from memory (revocations already seen stay in force)
for ``max_staleness`` seconds, then fails closed (:class:`~mcpward.errors.StateUnavailable`:
the guard answers 503) until it can read the log again; a view that never read the log
fails closed from the start.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from mcpward._clock import Clock, system_clock
from mcpward.errors import StateUnavailable
from mcpward.revocation._memory import InProcessRevocations
from mcpward.revocation._types import TokenRef
from mcpward.revocation.relay import LogFollower
from mcpward.storage.contracts import RevocationLog
from mcpward.storage.records import Revocation

DEFAULT_INTERVAL = 0.5
DEFAULT_MAX_STALENESS = 60.0


class TablePollingRevocations:
    def __init__(
        self,
        source: RevocationLog,
        *,
        interval: float = DEFAULT_INTERVAL,
        max_staleness: float | None = DEFAULT_MAX_STALENESS,
        clock: Clock = system_clock,
    ) -> None:
        self._clock = clock
        self.max_staleness = max_staleness
        self._local = InProcessRevocations(clock)
        self._follower = LogFollower(
            source, self._local, interval=interval, clock=clock, name="revocation poll"
        )

    @property
    def interval(self) -> float:
        return self._follower.interval

    @property
    def last_seq(self) -> int:
        return self._follower.last_seq

    async def is_revoked(self, token: TokenRef) -> bool:
        if self.max_staleness is not None:
            caught_up = self._follower.caught_up_at
            if caught_up is None or self._clock() - caught_up > self.max_staleness:
                raise StateUnavailable("the revocations log cannot be read")
        return self._local.check(token)

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        """Also a publisher: in a process that runs the authorization server too, its own
        revocations apply at once, and the poll brings those of other processes (the CLI,
        other replicas)."""
        self._local.add(revocations)

    async def poll_once(self) -> int:
        return await self._follower.poll_once()

    async def start(self) -> None:
        await self._follower.start()

    async def stop(self) -> None:
        await self._follower.stop()

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
