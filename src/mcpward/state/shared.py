"""One handle on the state every replica must agree on, in memory or in Redis.

The composition root opens one :class:`SharedState` per process from the deployment's
``redis_url`` (empty: this process's memory) and hands its parts to whoever needs them:
the token endpoint's registration limit and replay caches, the sign-in throttle, the
revocation publisher, and the guard's rate limits and revocation checks. With Redis every
part shares one connection pool and one outage log.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcpward._clock import Clock, system_clock
from mcpward.revocation import InProcessRevocations, Resync, RevocationPublisher, RevocationView
from mcpward.state._contracts import RateLimiter, ReplayCache
from mcpward.state.memory import MemoryRateLimiter, MemoryReplayCache

if TYPE_CHECKING:
    from redis.asyncio import Redis

# Redis calls fail fast when Redis is unreachable, so that requests answer 503 at once
# instead of hanging (redis-py's defaults wait 5 s); a URL's own options win.
REDIS_TIMEOUT = 1.0


@dataclass
class SharedState:
    rate_limiter: RateLimiter
    replay: ReplayCache
    # Revocations: what guards in this process read, and where the server publishes.
    revocations: RevocationView
    publisher: RevocationPublisher
    redis: Redis | None = None
    shared: bool = False
    # Tells the log relay when the backend lost what was published (Redis restarted).
    resync: Resync | None = None

    async def aclose(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()


def in_memory(clock: Clock = system_clock) -> SharedState:
    """This process only: exact for one process, not shared with any other."""
    revocations = InProcessRevocations(clock)
    return SharedState(
        rate_limiter=MemoryRateLimiter(),
        replay=MemoryReplayCache(clock),
        revocations=revocations,
        publisher=revocations,
    )


def open_redis(url: str) -> Redis:
    """A Redis client (redis://, rediss://, unix://; Valkey and Upstash speak the same)."""
    try:
        from redis.asyncio import Redis
    except ImportError as exc:  # pragma: no cover - redis is a runtime dependency
        raise RuntimeError("Redis support needs the redis package: pip install redis") from exc
    return Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)


def over_redis(redis: Redis) -> SharedState:
    from mcpward.state._outage import Outage
    from mcpward.state.redis import RedisRateLimiter, RedisReplayCache, RedisRevocations

    outage = Outage("redis")
    revocations = RedisRevocations(redis, outage=outage)
    replay = RedisReplayCache(redis, outage=outage)
    return SharedState(
        # The limiter answers revocation and replay checks in its own round trip too.
        rate_limiter=RedisRateLimiter(redis, revocations=revocations, replay=replay, outage=outage),
        replay=replay,
        revocations=revocations,
        publisher=revocations,
        redis=redis,
        shared=True,
        resync=revocations,
    )


def open_shared_state(url: str | None, clock: Clock = system_clock) -> SharedState:
    """Redis when ``url`` is given, else this process's memory."""
    return over_redis(open_redis(url)) if url else in_memory(clock)
