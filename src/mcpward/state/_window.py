"""Per-token, per-client and per-subject rate limits: a sliding-window counter.

The estimate for a window of ``w`` seconds is ``previous * (w - elapsed) / w + current``
(the approach of Cloudflare and Upstash's ``slidingWindow``): two counters per bucket, no
per-request log, and atomic in one Redis script.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Limit:
    requests: int
    window: float = 60.0

    def __post_init__(self) -> None:
        if self.requests < 1 or self.window <= 0:
            raise ValueError("a rate limit needs requests >= 1 and window > 0")


class Bucket(NamedTuple):
    """One counter a request is counted against (a named tuple: built per request)."""

    key: str
    limit: Limit
    # Named in the RateLimit headers: token, client, subject or tool.
    policy: str = "default"


class Decision(NamedTuple):
    """The limiter's answer (a named tuple: built per request)."""

    allowed: bool
    revoked: bool = False
    # The tightest bucket: for RateLimit headers and Retry-After.
    limit: Limit | None = None
    remaining: int = 0
    retry_after: float = 0.0
    policy: str = "default"
    # Seconds until the tightest bucket's current window ends (RateLimit ``t``).
    reset: float = 0.0
    # The one-time-use key given with the request was seen before (a replayed proof).
    replayed: bool = False


def window_state(previous: float, current: float, limit: Limit, now: float) -> tuple[float, float]:
    """(estimated count, seconds until one more request fits if it does not now)."""
    window = limit.window
    elapsed = now - math.floor(now / window) * window
    weight = (window - elapsed) / window
    estimate = previous * weight + current
    if estimate + 1 <= limit.requests:
        return estimate, 0.0
    if current + 1 > limit.requests:
        # Not before the next window, and then `current` becomes `previous`.
        return estimate, window - elapsed + (
            window * (current + 1 - limit.requests) / max(current, 1)
        )
    # The previous window's weight must fall by the excess.
    excess = estimate + 1 - limit.requests
    return estimate, min(window - elapsed, excess * window / previous)


def window_reset(window: float, now: float) -> float:
    """Seconds until the current window of length ``window`` ends."""
    return (math.floor(now / window) + 1) * window - now
