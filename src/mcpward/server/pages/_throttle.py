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


def _keys(username: str, address: str) -> tuple[str, str]:
    return "account:" + username.strip().lower()[:200], "address:" + address[:100]


class MemoryThrottle:
    def __init__(self, limits: LoginLimits, clock: Clock) -> None:
        self.limits = limits
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._totp_steps: dict[str, int] = {}

    async def check(self, username: str, address: str) -> Verdict:
        now = self._clock()
        account, addr = _keys(username, address)
        for key, scope in ((account, "account"), (addr, "address")):
            until = self._locked_until.get(key, 0.0)
            if until > now:
                return Verdict(False, until - now, scope)
        return Verdict(True)

    async def failed(self, username: str, address: str) -> Verdict:
        now = self._clock()
        limits = self.limits
        account, addr = _keys(username, address)
        verdict = Verdict(True)
        for key, limit, scope in (
            (account, limits.account_failures, "account"),
            (addr, limits.address_failures, "address"),
        ):
            if len(self._failures) > MAX_KEYS:
                self._failures.clear()
            times = self._failures.setdefault(key, deque())
            while times and times[0] <= now - limits.window:
                times.popleft()
            times.append(now)
            if len(times) >= limit:
                self._locked_until[key] = now + limits.lockout
                times.clear()
                if verdict.allowed:
                    verdict = Verdict(False, limits.lockout, scope)
        return verdict

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
        import redis.asyncio

        return cls(redis.asyncio.from_url(url), limits, clock)

    def _k(self, kind: str, key: str) -> str:
        return f"{self._prefix}{kind}:{key}"

    async def check(self, username: str, address: str) -> Verdict:
        now = self._clock()
        account, addr = _keys(username, address)
        values = await self._redis.mget(self._k("lock", account), self._k("lock", addr))
        for value, scope in zip(values, ("account", "address"), strict=True):
            if value is not None and float(value) > now:
                return Verdict(False, float(value) - now, scope)
        return Verdict(True)

    async def failed(self, username: str, address: str) -> Verdict:
        now = self._clock()
        limits = self.limits
        account, addr = _keys(username, address)
        verdict = Verdict(True)
        for key, limit, scope in (
            (account, limits.account_failures, "account"),
            (addr, limits.address_failures, "address"),
        ):
            locked = await self._fail(
                keys=[self._k("fail", key), self._k("lock", key)],
                args=[repr(now), limits.window, limit, limits.lockout, secrets.token_hex(8)],
            )
            if int(locked) and verdict.allowed:
                verdict = Verdict(False, limits.lockout, scope)
        return verdict

    async def succeeded(self, username: str) -> None:
        account, _ = _keys(username, "")
        await self._redis.delete(self._k("fail", account), self._k("lock", account))

    async def advance_totp_step(self, user_id: str, step: int) -> bool:
        ok = await self._totp(keys=[self._k("totp", user_id)], args=[step, int(TOTP_MEMORY)])
        return bool(int(ok))
