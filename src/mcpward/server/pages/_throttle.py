"""Throttling of failed sign-ins, per account and per client address, and the TOTP replay
guard: the state every replica must share.

A sliding window of failure times per key. A key that reaches its limit is locked for the
lockout time. Keys are the username as typed (known or not: the limiter must not reveal
which accounts exist) and the client address.

``MemoryThrottle`` is for one process (the embedded server); ``RedisThrottle`` shares the
counts and locks between replicas, each step one atomic Lua script.
"""

from __future__ import annotations

import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from mcpward._clock import Clock
from mcpward.server.pages.settings import LoginLimits

MAX_KEYS = 100_000
TOTP_MEMORY = 300.0  # seconds a used time step is remembered (covers the drift window)


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    retry_after: float = 0.0
    scope: str = ""  # "account" | "address"


class Throttle(Protocol):
    async def check(self, username: str, address: str) -> Verdict:
        """Whether a sign-in attempt may be made now."""
        ...

    async def failed(self, username: str, address: str) -> Verdict:
        """Count a failure; the verdict says whether this one caused a lock."""
        ...

    async def succeeded(self, username: str) -> None:
        """Forget the account's failures."""
        ...

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        """Record ``step`` as the user's last accepted TOTP time step, unless it is not
        newer than the one recorded (a replayed or older code)."""
        ...

    async def aclose(self) -> None:
        """Release what the throttle holds open (a Redis connection)."""
        ...


def _keys(username: str, address: str) -> tuple[str, str]:
    return "account:" + username.strip().lower()[:200], "address:" + address[:100]


def _first_lock(now: float, locks: Iterable[tuple[float | None, str]]) -> Verdict:
    """The verdict given each key's lock (the time it ends, if any) and its scope."""
    for until, scope in locks:
        if until is not None and until > now:
            return Verdict(False, until - now, scope)
    return Verdict(True)


async def _count_failure(
    limits: LoginLimits,
    username: str,
    address: str,
    count: Callable[[str, int], Awaitable[bool]],
) -> Verdict:
    """Count a failure against the account and the address; ``count(key, limit)`` records
    it and says whether the key is now locked."""
    account, addr = _keys(username, address)
    verdict = Verdict(True)
    for key, limit, scope in (
        (account, limits.account_failures, "account"),
        (addr, limits.address_failures, "address"),
    ):
        if await count(key, limit) and verdict.allowed:
            verdict = Verdict(False, limits.lockout, scope)
    return verdict


class MemoryThrottle:
    def __init__(self, limits: LoginLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._totp_steps: dict[str, int] = {}

    async def check(self, username: str, address: str) -> Verdict:
        account, addr = _keys(username, address)
        return _first_lock(
            self._clock(),
            (
                (self._locked_until.get(account), "account"),
                (self._locked_until.get(addr), "address"),
            ),
        )

    async def failed(self, username: str, address: str) -> Verdict:
        return await _count_failure(self.limits, username, address, self._count)

    async def _count(self, key: str, limit: int) -> bool:
        now = self._clock()
        limits = self.limits
        if len(self._failures) > MAX_KEYS:
            self._failures.clear()
        times = self._failures.setdefault(key, deque())
        while times and times[0] <= now - limits.window:
            times.popleft()
        times.append(now)
        if len(times) < limit:
            return False
        self._locked_until[key] = now + limits.lockout
        times.clear()
        return True

    async def succeeded(self, username: str) -> None:
        account, _ = _keys(username, "")
        self._failures.pop(account, None)
        self._locked_until.pop(account, None)

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        if step <= self._totp_steps.get(user_id, -1):
            return False
        if len(self._totp_steps) > MAX_KEYS:
            self._totp_steps.clear()
        self._totp_steps[user_id] = step
        return True

    async def aclose(self) -> None:
        return None


# KEYS[1] failures (sorted set), KEYS[2] lock; ARGV now, window, limit, lockout, member.
_FAIL = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[5])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])))
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  local untill = tonumber(ARGV[1]) + tonumber(ARGV[4])
  redis.call('SET', KEYS[2], tostring(untill), 'EX', math.ceil(tonumber(ARGV[4])))
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

# KEYS[1] last step; ARGV step, ttl.
_TOTP = """
local last = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) <= last then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


class RedisThrottle:
    """The same rules in Redis (or Valkey), shared by every replica."""

    def __init__(
        self, client: Any, limits: LoginLimits, clock: Clock, prefix: str = "mcpward:signin:"
    ) -> None:
        self._redis = client
        self.limits = limits
        self._clock = clock
        self._prefix = prefix
        self._fail = client.register_script(_FAIL)
        self._totp = client.register_script(_TOTP)

    @classmethod
    def from_url(cls, url: str, limits: LoginLimits, clock: Clock) -> RedisThrottle:
        from mcpward.state import open_redis

        # Short timeouts: a Redis that hangs makes sign-in answer 503 at once, not wait.
        return cls(open_redis(url), limits, clock)

    def _k(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def check(self, username: str, address: str) -> Verdict:
        account, addr = _keys(username, address)
        values = await self._redis.mget(self._k("lock", account), self._k("lock", addr))
        return _first_lock(
            self._clock(),
            (
                (None if value is None else float(value), scope)
                for value, scope in zip(values, ("account", "address"), strict=True)
            ),
        )

    async def failed(self, username: str, address: str) -> Verdict:
        return await _count_failure(self.limits, username, address, self._count)

    async def _count(self, key: str, limit: int) -> bool:
        limits = self.limits
        locked = await self._fail(
            keys=[self._k("fail", key), self._k("lock", key)],
            args=[repr(self._clock()), limits.window, limit, limits.lockout, secrets.token_hex(8)],
        )
        return bool(int(locked))

    async def succeeded(self, username: str) -> None:
        account, _ = _keys(username, "")
        await self._redis.delete(self._k("fail", account), self._k("lock", account))

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        ok = await self._totp(keys=[self._k("totp", user_id)], args=[step, int(TOTP_MEMORY)])
        return bool(int(ok))

    async def aclose(self) -> None:
        await self._redis.aclose()
