"""One-time-use keys (proof and assertion jtis, nonces): first use wins, on one process
and across replicas sharing a real redis-server; expiry frees the key."""

from __future__ import annotations

import asyncio
import time

import pytest
from redis.asyncio import Redis

from mcpward._clock import FrozenClock
from mcpward.errors import StateUnavailable
from mcpward.state import MemoryReplayCache, open_redis, over_redis
from mcpward.state.redis import RedisReplayCache
from tests.services import restartable_redis


async def test_memory_first_use_then_refused_until_expiry() -> None:
    clock = FrozenClock(1000.0)
    cache = MemoryReplayCache(clock)
    assert await cache.first_use("jti-1", 1010.0)
    assert not await cache.first_use("jti-1", 1010.0)
    assert await cache.first_use("jti-2", 1010.0)
    clock.advance(11)
    assert await cache.first_use("jti-1", 1030.0)  # expired: may be used again


async def test_memory_full_of_live_keys_refuses_rather_than_forgets() -> None:
    clock = FrozenClock(1000.0)
    cache = MemoryReplayCache(clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert await cache.first_use(key, 2000.0)
    assert not await cache.first_use("d", 2000.0)
    clock.advance(1001)  # all expired: room again
    assert await cache.first_use("d", 4000.0)


@pytest.mark.redis
async def test_redis_one_winner_among_concurrent_replicas(redis_url: str) -> None:
    """Two replicas (two connections) race 50 presentations of one key: exactly one wins."""
    a, b = Redis.from_url(redis_url), Redis.from_url(redis_url)
    try:
        caches = [RedisReplayCache(a, prefix="t-replay:"), RedisReplayCache(b, prefix="t-replay:")]
        expires = time.time() + 30
        results = await asyncio.gather(
            *(caches[i % 2].first_use("proof-jti", expires) for i in range(50))
        )
        assert results.count(True) == 1
        # The key expires with its validity: Redis forgets it at expires_at.
        ttl = await a.pttl("t-replay:proof-jti")
        assert 0 < ttl <= 30_000
    finally:
        await a.aclose()
        await b.aclose()


@pytest.mark.redis
async def test_redis_unreachable_is_state_unavailable_and_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Redis killed: every check raises StateUnavailable (callers fail closed), logged once
    for the outage; Redis back on the same port: answers again without a restart."""
    with restartable_redis() as redis:
        shared = over_redis(open_redis(redis.url))
        try:
            assert await shared.replay.first_use("k1", time.time() + 30)
            redis.stop()
            for _ in range(5):
                with pytest.raises(StateUnavailable):
                    await shared.replay.first_use("k2", time.time() + 30)
            errors = [r for r in caplog.records if r.name == "mcpward.state"]
            assert len(errors) == 1 and "redis unreachable" in errors[0].getMessage()
            redis.start()
            assert await shared.replay.first_use("k2", time.time() + 30)
            assert "reachable again after 5 failures" in caplog.text
        finally:
            await shared.aclose()
