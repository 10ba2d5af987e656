"""In-process rate limiting: the default, exact within one process, not across replicas."""

from __future__ import annotations

import math
from collections.abc import Sequence

from mcpward.guard._ratelimit import Bucket, Decision, window_state
from mcpward.revocation import TokenRef


class MemoryRateLimiter:
    def covers(self, view: object) -> bool:
        return False

    def __init__(self, sweep_every: float = 60.0) -> None:
        # (bucket key, window length, window index) -> count
        self._counts: dict[tuple[str, float, int], int] = {}
        self._sweep_every = sweep_every
        self._last_sweep = 0.0

    async def hit(self, buckets: Sequence[Bucket], token: TokenRef | None, now: float) -> Decision:
        tightest: Decision | None = None
        keys: list[tuple[str, float, int]] = []
        for bucket in buckets:
            window = bucket.limit.window
            index = math.floor(now / window)
            current = self._counts.get((bucket.key, window, index), 0)
            previous = self._counts.get((bucket.key, window, index - 1), 0)
            estimate, retry = window_state(previous, current, bucket.limit, now)
            if retry > 0:
                return Decision(
                    allowed=False, limit=bucket.limit, retry_after=retry, policy=bucket.policy
                )
            remaining = int(bucket.limit.requests - estimate - 1)
            if tightest is None or remaining < tightest.remaining:
                tightest = Decision(
                    allowed=True, limit=bucket.limit, remaining=remaining, policy=bucket.policy
                )
            keys.append((bucket.key, window, index))
        for key in keys:
            self._counts[key] = self._counts.get(key, 0) + 1
        if now - self._last_sweep > self._sweep_every:
            self._sweep(now)
        return tightest or Decision(allowed=True)

    def _sweep(self, now: float) -> None:
        # A counter matters for its own window and the next one; then it can go.
        stale = [k for k in self._counts if (k[2] + 2) * k[1] <= now]
        for key in stale:
            del self._counts[key]
        self._last_sweep = now

    def __len__(self) -> int:
        return len(self._counts)
