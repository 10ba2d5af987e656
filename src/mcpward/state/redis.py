"""Shared state in Redis (or Valkey, Upstash), shared by every replica.

Rate limits: one Lua script, one round trip. The script reads every bucket's two window
counters and, when given a token, the four revocation keys it could match, and when given
a one-time-use key (a DPoP proof's ``jti``) sets it if absent; it increments the counters
only when the request is neither revoked, nor a replay, nor over any limit. So a request
costs exactly one ``EVALSHA`` whatever the number of buckets, and the revocation and
replay checks ride along. One-time-use keys on their own: one ``SET NX PXAT``.

Every Redis failure surfaces as :class:`~mcpward.state.StateUnavailable`, logged once per
outage (not once per request).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcpward.revocation import Revocation, TokenRef
from mcpward.state._outage import Outage
from mcpward.state._window import Bucket, Decision, window_reset, window_state

if TYPE_CHECKING:
    from redis.asyncio import Redis


# -- revocations ------------------------------------------------------------------------

DEFAULT_PREFIX = "mcpward:rev:"


def revocation_keys(token: TokenRef, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The keys to read, in the order jti, family, subject, client (empty id: unused)."""
    return [
        f"{prefix}jti:{token.jti or ''}",
        f"{prefix}family:{token.family or ''}",
        f"{prefix}subject:{token.subject}",
        f"{prefix}client:{token.client_id}",
    ]


def decide(token: TokenRef, values: Sequence[Any]) -> bool:
    jti, family, subject, client = values
    if token.jti and jti is not None:
        return True
    if token.family and family is not None:
        return True
    for value in (subject, client):
        if value is not None and (token.issued_at is None or token.issued_at <= float(value)):
            return True
    return False


class RedisRevocations:
    """A revocation publisher and view over one Redis: ``mcpward:rev:{kind}:{key}`` holds
    the ``revoked_at`` time and expires at ``expires_at``, so Redis forgets a revocation
    when no token it matches can still be valid. A guard reads the (at most four) keys a
    token could match in one ``MGET`` or, with :class:`RedisRateLimiter`, inside the rate
    limit script."""

    def __init__(
        self, redis: Redis, *, prefix: str = DEFAULT_PREFIX, outage: Outage | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._outage = outage or Outage("redis")

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        async def send() -> None:
            async with self.redis.pipeline(transaction=False) as pipe:
                for r in revocations:
                    key = f"{self.prefix}{r.kind}:{r.key}"
                    # A later revocation of the same key replaces the earlier one: its
                    # revoked_at is later, so it covers every token the earlier one did.
                    pipe.set(key, repr(r.revoked_at), pxat=max(1, int(r.expires_at * 1000)))
                await pipe.execute()

        await self._outage.guard(send)

    # Resync: a marker written after a full load; a Redis restarted empty lacks it.
    async def lost(self) -> bool:
        marker = self.prefix + "loaded"
        return not await self._outage.guard(lambda: self.redis.exists(marker))

    async def restored(self) -> None:
        marker = self.prefix + "loaded"
        await self._outage.guard(lambda: self.redis.set(marker, "1"))

    async def is_revoked(self, token: TokenRef) -> bool:
        keys = revocation_keys(token, self.prefix)
        values = await self._outage.guard(lambda: self.redis.mget(keys))
        return decide(token, values)


# -- rate limits ------------------------------------------------------------------------

# KEYS: 4 revocation keys (or none), a one-time-use key (or none), then for each bucket:
# current, previous.
# ARGV: has_revocation(0|1), iat, has_once(0|1), once expiry (ms since the epoch), then
# for each bucket: limit, weight(previous), ttl_ms.
# Returns {status, revocation values..., then per bucket: current, previous}; status 0:
# revoked, 1: counted, 2: over a limit, 3: the one-time-use key was spent before.
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
if tonumber(ARGV[3]) == 1 then
  if not redis.call('SET', KEYS[first], '1', 'NX', 'PXAT', ARGV[4]) then
    return {3, false, false, false, false}
  end
  first = first + 1
end
local nb = (#KEYS - first + 1) / 2
local counts = {}
for b = 0, nb - 1 do
  local cur = tonumber(redis.call('GET', KEYS[first + 2 * b]) or '0')
  local prev = tonumber(redis.call('GET', KEYS[first + 2 * b + 1]) or '0')
  local limit = tonumber(ARGV[5 + 3 * b])
  local weight = tonumber(ARGV[6 + 3 * b])
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
  redis.call('PEXPIRE', key, tonumber(ARGV[7 + 3 * b]))
end
local res = {1, false, false, false, false}
for _, v in ipairs(counts) do res[#res + 1] = v end
return res
"""


class RedisRateLimiter:
    """Sliding-window counters in Redis and, in the same script, the revocation check of
    ``revocations`` (:meth:`hit_unless_revoked`) and the first use of a key of ``replay``
    (:meth:`hit_first_use`)."""

    def __init__(
        self,
        redis: Redis,
        *,
        revocations: RedisRevocations | None = None,
        replay: RedisReplayCache | None = None,
        prefix: str = "mcpward:rl:",
        outage: Outage | None = None,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._outage = outage or Outage("redis")
        self._revocations = revocations or RedisRevocations(redis, outage=self._outage)
        self._replay = replay or RedisReplayCache(redis, outage=self._outage)
        self._script = redis.register_script(_SCRIPT)
        self.round_trips = 0

    @property
    def revocations(self) -> RedisRevocations:
        return self._revocations

    @property
    def replay(self) -> RedisReplayCache:
        return self._replay

    async def hit(self, buckets: Sequence[Bucket], now: float) -> Decision:
        return await self._run(buckets, None, now)

    async def hit_unless_revoked(
        self, buckets: Sequence[Bucket], token: TokenRef, now: float
    ) -> Decision:
        return await self._run(buckets, token, now)

    async def hit_first_use(
        self,
        buckets: Sequence[Bucket],
        token: TokenRef | None,
        key: str,
        expires_at: float,
        now: float,
    ) -> Decision:
        return await self._run(buckets, token, now, (key, expires_at))

    async def _run(
        self,
        buckets: Sequence[Bucket],
        token: TokenRef | None,
        now: float,
        once: tuple[str, float] | None = None,
    ) -> Decision:
        keys: list[str] = []
        args: list[Any] = []
        if token is not None:
            keys.extend(revocation_keys(token, self._revocations.prefix))
            # A missing iat is treated as "issued before any revocation".
            args.extend([1, repr(token.issued_at if token.issued_at is not None else -1.0)])
        else:
            args.extend([0, "0"])
        if once is not None:
            keys.append(self._replay.prefix + once[0])
            args.extend([1, max(1, int(once[1] * 1000))])
        else:
            args.extend([0, 0])
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
        result = await self._outage.guard(lambda: self._script(keys=keys, args=args))
        status = int(result[0])
        if status == 3:
            return Decision(allowed=False, replayed=True)
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


# -- one-time use -----------------------------------------------------------------------


class RedisReplayCache:
    """One-time-use keys as ``SET key 1 NX PXAT expires_at``: atomic across replicas."""

    def __init__(
        self, redis: Redis, *, prefix: str = "mcpward:once:", outage: Outage | None = None
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self._outage = outage or Outage("redis")

    async def first_use(self, key: str, expires_at: float) -> bool:
        name = self.prefix + key
        stamp = max(1, int(expires_at * 1000))
        created = await self._outage.guard(lambda: self.redis.set(name, b"1", nx=True, pxat=stamp))
        return bool(created)


def _text(value: Any) -> str | None:
    if value is None or value is False:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)
