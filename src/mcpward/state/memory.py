"""Shared state in this process's memory: exact within one process, not across replicas
(the embedded default, and the fallback when no Redis is configured)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mcpward._clock import Clock, system_clock
from mcpward.state._window import Bucket, Decision, window_state

MAX_REPLAY_KEYS = 1_000_000


class MemoryRateLimiter:
    def __init__(self, sweep_every: float = 60.0) -> None:
        # (bucket key, window length, window index) -> count
        self._counts: dict[tuple[str, float, int], int] = {}
        self._sweep_every = sweep_every
        self._last_sweep = 0.0

    async def hit(self, buckets: Sequence[Bucket], now: float) -> Decision:
        tightest: Bucket | None = None
        least = 0
        reset = 0.0
        counts = self._counts
        keys: list[tuple[str, float, int]] = []
        for bucket in buckets:
            limit = bucket.limit
            window = limit.window
            index = math.floor(now / window)
            key = (bucket.key, window, index)
            current = counts.get(key, 0)
            previous = counts.get((bucket.key, window, index - 1), 0)
            # window_state's fast path inline, the same arithmetic (runs on every request).
            elapsed = now - index * window
            estimate = previous * ((window - elapsed) / window) + current
            if estimate + 1 > limit.requests:
                _, retry = window_state(previous, current, limit, now)
                return Decision(allowed=False, limit=limit, retry_after=retry, policy=bucket.policy)
            remaining = int(limit.requests - estimate - 1)
            if tightest is None or remaining < least:
                tightest, least, reset = bucket, remaining, window - elapsed
            keys.append(key)
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        if now - self._last_sweep > self._sweep_every:
            self._sweep(now)
        if tightest is None:
            return Decision(allowed=True)
        return Decision(True, False, tightest.limit, least, 0.0, tightest.policy, reset)

    def _sweep(self, now: float) -> None:
        # A counter matters for its own window and the next one; then it can go.
        stale = [k for k in self._counts if (k[2] + 2) * k[1] <= now]
        for key in stale:
            del self._counts[key]
        self._last_sweep = now

    def __len__(self) -> int:
        return len(self._counts)


class MemoryReplayCache:
    """One-time-use keys in a dict, forgotten once expired."""

    def __init__(self, clock: Clock = system_clock, max_keys: int = MAX_REPLAY_KEYS) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._seen: dict[str, float] = {}

    async def first_use(self, key: str, expires_at: float) -> bool:
        now = self._clock()
        seen = self._seen
        if len(seen) >= self._max_keys:
            self._seen = seen = {k: v for k, v in seen.items() if v > now}
            if len(seen) >= self._max_keys:
                # Full of live keys: refuse rather than forget one (a replay must not pass).
                return False
        expiry = seen.get(key)
        if expiry is not None and expiry > now:
            return False
        seen[key] = expires_at
        return True
