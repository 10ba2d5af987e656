"""Rate limiting in Redis, shared by every replica: one Lua script, one round trip.

The script reads every bucket's two window counters and, when given a token, the four
revocation keys it could match; it increments the counters only when the request is
neither revoked nor over any limit. So a request costs exactly one ``EVALSHA`` whatever
the number of buckets, and the revocation check rides along for free.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcpward.guard._ratelimit import Bucket, Decision, window_reset, window_state
from mcpward.revocation import TokenRef
from mcpward.revocation.redis import DEFAULT_PREFIX as REVOCATION_PREFIX
from mcpward.revocation.redis import RedisRevocations, decide, revocation_keys

if TYPE_CHECKING:
    from redis.asyncio import Redis

# KEYS: 4 revocation keys (or none), then for each bucket: current, previous.
# ARGV: has_revocation(0|1), then for each bucket: limit, weight(previous), ttl_ms.
# Returns {revocation values..., then per bucket: current, previous} and whether counted.
_SCRIPT = """
local rev = tonumber(ARGV[1])
local out = {}
local first = 1
if rev == 1 then
  for i = 1, 4 do out[i] = redis.call('GET', KEYS[i]) or false end
  first = 5
  for i = 1, 4 do
    if out[i] then
      if i <= 2 then return {0, out[1], out[2], out[3], out[4]} end
      -- subject/client: the caller compares with iat; report and do not count
      if tonumber(out[i]) >= tonumber(ARGV[2]) then return {0, out[1], out[2], out[3], out[4]} end
    end
  end
end
local nb = (#KEYS - first + 1) / 2
local counts = {}
for b = 0, nb - 1 do
  local cur = tonumber(redis.call('GET', KEYS[first + 2 * b]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[first + 2 * b + 1]) or '0')
  local limit = tonumber(ARGV[3 + 3 * b])
  local weight = tonumber(ARGV[4 + 3 * b])
  counts[#counts + 1] = cur
  counts[#counts + 1] = prev
  if prev * weight + cur + 1 > limit then
    local res = {2, false, false, false, false}
    for _, v in ipairs(counts) do res[#res + 1] = v end
    return res
  end
end
for b = 0, nb - 1 do
  local key = KEYS[first + 2 * b]
  redis.call('INCR', key)
  redis.call('PEXPIRE', key, tonumber(ARGV[5 + 3 * b]))
end
local res = {1, false, false, false, false}
for _, v in ipairs(counts) do res[#res + 1] = v end
return res
"""


class RedisRateLimiter:
    """Sliding-window counters in Redis; given a token, also the revocation check of
    :class:`~mcpward.revocation.redis.RedisRevocations`, in the same script."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = "mcpward:rl:",
        revocation_prefix: str = REVOCATION_PREFIX,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._revocation_prefix = revocation_prefix
        self._script = redis.register_script(_SCRIPT)
        self.round_trips = 0

    def covers(self, view: object) -> bool:
        return isinstance(view, RedisRevocations) and view.prefix == self._revocation_prefix

    async def hit(self, buckets: Sequence[Bucket], token: TokenRef | None, now: float) -> Decision:
        keys: list[str] = []
        args: list[Any] = []
        if token is not None:
            keys.extend(revocation_keys(token, self._revocation_prefix))
            # A missing iat is treated as "issued before any revocation".
            args.extend([1, repr(token.issued_at if token.issued_at is not None else -1.0)])
        else:
            args.extend([0, "0"])
        for bucket in buckets:
            window = bucket.limit.window
            index = math.floor(now / window)
            elapsed = now - index * window
            base = f"{self.prefix}{bucket.key}:{window:g}:"
            keys.extend([base + str(index), base + str(index - 1)])
            args.extend(
                [bucket.limit.requests, repr((window - elapsed) / window), int(window * 2000)]
            )
        self.round_trips += 1
        result = await self._script(keys=keys, args=args)
        status = int(result[0])
        if status == 0 and token is not None:
            revoked = decide(token, [_text(v) for v in result[1:5]])
            if revoked:
                return Decision(allowed=False, revoked=True)
        counts = [int(v) for v in result[5:]]
        tightest: Decision | None = None
        for i, bucket in enumerate(buckets[: len(counts) // 2]):
            current, previous = counts[2 * i], counts[2 * i + 1]
            estimate, retry = window_state(previous, current, bucket.limit, now)
            if status == 2 and retry > 0:
                return Decision(
                    allowed=False, limit=bucket.limit, retry_after=retry, policy=bucket.policy
                )
            remaining = int(bucket.limit.requests - estimate - 1)
            if tightest is None or remaining < tightest.remaining:
                tightest = Decision(
                    allowed=True,
                    limit=bucket.limit,
                    remaining=max(remaining, 0),
                    policy=bucket.policy,
                    reset=window_reset(bucket.limit.window, now),
                )
        if status == 2:
            last = buckets[len(counts) // 2 - 1]
            return Decision(
                allowed=False, limit=last.limit, retry_after=last.limit.window, policy=last.policy
            )
        return tightest or Decision(allowed=True)


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
