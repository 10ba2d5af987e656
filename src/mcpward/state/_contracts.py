"""What the shared-state backends promise: one Protocol per kind of state, and the error
every backend raises when it cannot answer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from mcpward.errors import StateUnavailable
from mcpward.revocation import RevocationView, TokenRef
from mcpward.state._window import Bucket, Decision

__all__ = [
    "RateLimiter",
    "ReplayCache",
    "ReplayCheckingLimiter",
    "RevocationCheckingLimiter",
    "StateUnavailable",
]


class RateLimiter(Protocol):
    async def hit(self, buckets: Sequence[Bucket], now: float) -> Decision:
        """Count one request against every bucket, unless one is exhausted (then none).
        Raises :class:`StateUnavailable` when the backend cannot be reached."""
        ...


@runtime_checkable
class RevocationCheckingLimiter(Protocol):
    """A rate limiter that also answers a revocation view's question in the same round
    trip (Redis: one script). A guard given such a limiter together with the view it
    names in ``revocations`` asks once per request instead of twice."""

    @property
    def revocations(self) -> RevocationView:
        """The view whose answers :meth:`hit_unless_revoked` gives."""
        ...

    async def hit_unless_revoked(
        self, buckets: Sequence[Bucket], token: TokenRef, now: float
    ) -> Decision:
        """Like ``hit``, but first: if a revocation matches ``token``, count nothing and
        answer ``Decision(allowed=False, revoked=True)``."""
        ...


class ReplayCache(Protocol):
    """One-time-use values (DPoP proof ``jti``s, assertion ``jti``s, nonces) that every
    replica must agree on."""

    async def first_use(self, key: str, expires_at: float) -> bool:
        """Remember ``key`` until ``expires_at``: True the first time any replica sharing
        this cache presents it, False after. Atomic: of two concurrent calls with one key,
        exactly one gets True. Raises :class:`StateUnavailable` when the backend cannot be
        reached (callers fail closed: a replay check that cannot run refuses)."""
        ...


@runtime_checkable
class ReplayCheckingLimiter(Protocol):
    """A rate limiter that also spends a one-time-use key of a replay cache in the same
    round trip (Redis: one script), optionally with the revocation check too. A guard
    given such a limiter together with the cache it names in ``replay`` checks a DPoP
    proof's ``jti``, the revocations and the rate limits with one request to the backend."""

    @property
    def replay(self) -> ReplayCache:
        """The cache whose keys :meth:`hit_first_use` spends."""
        ...

    async def hit_first_use(
        self,
        buckets: Sequence[Bucket],
        token: TokenRef | None,
        key: str,
        expires_at: float,
        now: float,
    ) -> Decision:
        """Like ``hit`` (``hit_unless_revoked`` when ``token`` is given), but also: spend
        ``key`` until ``expires_at`` as ``replay.first_use`` would; if it was spent
        before, count nothing and answer ``Decision(allowed=False, replayed=True)``."""
        ...
