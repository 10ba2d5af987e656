"""The shared-state layer: what several replicas must agree on — rate limits, one-time
use (proof and assertion ``jti``s, nonces) and, with :mod:`mcpward.revocation`,
revocations — used by the authorization server and the guards alike.

One Protocol per kind of state (``RateLimiter``, ``ReplayCache``; ``RevocationView`` and
``RevocationPublisher`` live in ``mcpward.revocation``), one module per backend
(``memory``, ``redis``). A backend that answers a rate limit and a revocation check in
one round trip says so by also implementing ``RevocationCheckingLimiter``, and one that
also spends a one-time-use key in it (a DPoP proof's ``jti``) by ``ReplayCheckingLimiter``.

Adding a backend: implement the Protocols in one module (raise ``StateUnavailable`` when
it cannot answer), and return them in a :class:`SharedState` from a function like
:func:`~mcpward.state.shared.over_redis`.
"""

from __future__ import annotations

from mcpward.state._contracts import (
    RateLimiter,
    ReplayCache,
    ReplayCheckingLimiter,
    RevocationCheckingLimiter,
    StateUnavailable,
)
from mcpward.state._window import Bucket, Decision, Limit, window_reset, window_state
from mcpward.state.memory import MemoryRateLimiter, MemoryReplayCache
from mcpward.state.shared import SharedState, in_memory, open_redis, open_shared_state, over_redis

__all__ = [
    "Bucket",
    "Decision",
    "Limit",
    "MemoryRateLimiter",
    "MemoryReplayCache",
    "RateLimiter",
    "ReplayCache",
    "ReplayCheckingLimiter",
    "RevocationCheckingLimiter",
    "SharedState",
    "StateUnavailable",
    "in_memory",
    "open_redis",
    "open_shared_state",
    "over_redis",
    "window_reset",
    "window_state",
]
