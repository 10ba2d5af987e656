"""Rate limits per token, client and subject, with per-tool overrides: in memory, and in a
real redis-server shared by two guards (two replicas)."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from mcpward._clock import FrozenClock
from mcpward.guard import (
    Limit,
    MemoryRateLimiter,
    RateLimiter,
    RateLimits,
    StaticKeys,
    make_guard,
    manifest_from_code,
    protect,
)
from mcpward.state import Bucket
from mcpward.state.redis import RedisRateLimiter

from .support import ISSUER, RESOURCE, Minter
from .test_attacks import ok_app

MANIFEST = manifest_from_code("t", {"search_orders": ["orders.read"], "refund_order": []})


def window_clock(offset: float) -> FrozenClock:
    """A frozen clock ``offset`` seconds into a 60 s window, near the real time."""
    return FrozenClock(math.floor(time.time() / 60) * 60 - 600 + offset)


def mint(minter: Minter, clock: FrozenClock, **claims: Any) -> str:
    return minter.mint(iat=int(clock.now), exp=int(clock.now) + 3600, **claims)


def call(tool: str = "search_orders") -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool}}


def client_for(
    minter: Minter, limiter: RateLimiter, limits: RateLimits, clock: FrozenClock
) -> httpx.AsyncClient:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        rate_limiter=limiter,
        rate_limits=limits,
        clock=clock,
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def post(
    client: httpx.AsyncClient, token: str, tool: str = "search_orders"
) -> httpx.Response:
    return await client.post("/mcp", json=call(tool), headers={"authorization": f"Bearer {token}"})


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
async def limiter(request: pytest.FixtureRequest) -> AsyncIterator[RateLimiter]:
    if request.param == "memory":
        yield MemoryRateLimiter()
        return
    redis = Redis.from_url(request.getfixturevalue("redis_url"))
    await redis.flushdb()
    yield RedisRateLimiter(redis)
    await redis.aclose()


async def test_per_token_limit_answers_429_with_headers(
    minter: Minter, limiter: RateLimiter
) -> None:
    clock = window_clock(20)  # 20 s into a 60 s window
    limits = RateLimits(per_token=Limit(3, 60))
    async with client_for(minter, limiter, limits, clock) as client:
        token, other = mint(minter, clock), mint(minter, clock)
        assert [(await post(client, token)).status_code for _ in range(3)] == [200, 200, 200]
        r = await post(client, token)
        assert r.status_code == 429
        # Sliding window: the 40 s left of this window, then 20 s more until this window's
        # 3 requests, weighted by the part of them still in the sliding window, fall to 2.
        assert r.headers["retry-after"] == "60"
        assert r.headers["ratelimit-policy"] == '"token";q=3;w=60'
        assert r.headers["ratelimit"] == '"token";r=0;t=60'
        assert "www-authenticate" not in r.headers
        assert (await post(client, other)).status_code == 200  # per token
        # Just after the window turns, last window's 3 still weigh ~3 ...
        clock.advance(41)
        assert (await post(client, token)).status_code == 429
        # ... and at Retry-After they weigh 2: one more fits, and only one.
        clock.advance(19)
        assert (await post(client, token)).status_code == 200
        assert (await post(client, token)).status_code == 429


async def test_ratelimit_headers_on_answers_that_pass(minter: Minter, limiter: RateLimiter) -> None:
    """draft-ietf-httpapi-ratelimit-headers on every answer, from the limiter's own
    decision (for Redis, the same single round trip)."""
    clock = window_clock(20)
    limits = RateLimits(per_token=Limit(3, 60))
    async with client_for(minter, limiter, limits, clock) as client:
        token = mint(minter, clock)
        round_trips = getattr(limiter, "round_trips", None)
        seen = []
        for _ in range(3):
            r = await post(client, token)
            assert r.status_code == 200
            assert r.headers["ratelimit-policy"] == '"token";q=3;w=60'
            seen.append(r.headers["ratelimit"])
        # Remaining counts down; t is the 40 s left in this window.
        assert seen == ['"token";r=2;t=40', '"token";r=1;t=40', '"token";r=0;t=40']
        if round_trips is not None:
            assert limiter.round_trips == round_trips + 3  # type: ignore[attr-defined]
        # The tightest bucket is the one named.
    tight = RateLimits(per_token=Limit(100, 60), per_client=Limit(5, 10))
    async with client_for(minter, MemoryRateLimiter(), tight, window_clock(3)) as client:
        r = await post(client, mint(minter, clock))
        assert r.headers["ratelimit-policy"] == '"client";q=5;w=10'
        assert r.headers["ratelimit"] == '"client";r=4;t=7'


async def test_per_client_and_per_tool(minter: Minter, limiter: RateLimiter) -> None:
    clock = window_clock(0)
    limits = RateLimits(
        per_token=Limit(100, 60), per_client=Limit(4, 60), tools={"refund_order": Limit(1, 60)}
    )
    async with client_for(minter, limiter, limits, clock) as client:
        token = mint(minter, clock, client_id="agent-a")
        assert (await post(client, token, "refund_order")).status_code == 200
        r = await post(client, token, "refund_order")
        assert r.status_code == 429
        assert r.headers["ratelimit-policy"] == '"tool";q=1;w=60'
        assert (await post(client, token, "search_orders")).status_code == 200
        # Fresh tokens of the same client share the client's budget: 4 in all, and the
        # refused request did not count.
        assert (await post(client, mint(minter, clock, client_id="agent-a"))).status_code == 200
        assert (await post(client, mint(minter, clock, client_id="agent-a"))).status_code == 200
        assert (await post(client, mint(minter, clock, client_id="agent-a"))).status_code == 429
        assert (await post(client, mint(minter, clock, client_id="agent-b"))).status_code == 200


@pytest.mark.redis
async def test_redis_limit_holds_across_replicas_under_concurrency(
    minter: Minter, redis_url: str
) -> None:
    """Two guards (replicas) on one Redis, 40 concurrent requests, limit 10: exactly 10
    pass, because the check-and-increment is one atomic script."""
    clock = window_clock(0)
    limits = RateLimits(per_token=Limit(10, 60))
    r1, r2 = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await r1.flushdb()
    try:
        a = client_for(minter, RedisRateLimiter(r1), limits, clock)
        b = client_for(minter, RedisRateLimiter(r2), limits, clock)
        async with a, b:
            token = mint(minter, clock)
            results = await asyncio.gather(*(post(a if i % 2 else b, token) for i in range(40)))
        codes = sorted(r.status_code for r in results)
        assert codes.count(200) == 10
        assert codes.count(429) == 30
    finally:
        await r1.aclose()
        await r2.aclose()


async def test_memory_limiter_forgets_old_windows() -> None:
    limiter = MemoryRateLimiter(sweep_every=1)
    bucket = Bucket("k", Limit(5, 10))
    for t in range(0, 100, 2):
        await limiter.hit([bucket], 1000.0 + t)
    assert len(limiter) <= 3
