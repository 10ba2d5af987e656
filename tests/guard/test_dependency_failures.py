"""The guard when its shared state fails: a real redis-server killed and started again.

Revocation checks fail closed (503, Retry-After, a JSON-RPC error naming why; never a 500
or a traceback); rate limits fail closed by default and open when the operator says so;
one log line per outage; service resumes without a restart when Redis returns.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from mcpward.guard import RateLimits, StaticKeys, make_guard, manifest_from_code, protect
from mcpward.revocation import InProcessRevocations, RevocationView
from mcpward.state import Limit, RateLimiter, open_redis, over_redis
from tests.services import RedisProcess, restartable_redis

from .support import ISSUER, RESOURCE, Minter
from .test_attacks import CALL, ok_app

pytestmark = pytest.mark.redis

MANIFEST = manifest_from_code("t", {"search_orders": ["orders.read"]})
LIMITS = RateLimits(per_token=Limit(1000, 60))


def client(
    minter: Minter, revocations: RevocationView, limiter: RateLimiter, **kwargs: Any
) -> httpx.AsyncClient:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        revocations=revocations,
        rate_limiter=limiter,
        rate_limits=LIMITS,
        **kwargs,
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def call(http: httpx.AsyncClient, token: str) -> httpx.Response:
    return await http.post("/mcp", json=CALL, headers={"authorization": f"Bearer {token}"})


@pytest.fixture
def redis() -> Any:
    with restartable_redis() as process:
        yield process


async def test_revocations_in_redis_fail_closed_and_recover(
    minter: Minter, redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    shared = over_redis(open_redis(redis.url))
    token = minter.mint()
    async with client(minter, shared.revocations, shared.rate_limiter) as http:
        assert (await call(http, token)).status_code == 200
        redis.stop()
        with caplog.at_level(logging.WARNING):
            answers = [await call(http, token) for _ in range(20)]
        for answer in answers:
            assert answer.status_code == 503
            assert answer.headers["retry-after"] == "5"
            assert answer.headers["content-type"] == "application/json"
            assert "www-authenticate" not in answer.headers  # not an authentication failure
            body = answer.json()
            assert body["id"] == 1 and body["error"]["data"]["error"] == "temporarily_unavailable"
        assert "Traceback" not in caplog.text
        outage_lines = [r for r in caplog.records if r.name == "mcpward.state"]
        assert len(outage_lines) == 1
        redis.start()
        assert (await call(http, token)).status_code == 200
    await shared.aclose()


async def test_rate_limits_fail_open_only_when_chosen(minter: Minter, redis: RedisProcess) -> None:
    """Revocations elsewhere (here in-process), rate limits in Redis: with Redis down the
    default refuses, ``rate_limit_failure="open"`` lets requests through unlimited."""
    shared = over_redis(open_redis(redis.url))
    view = InProcessRevocations()
    token = minter.mint()
    closed = client(minter, view, shared.rate_limiter)
    opened = client(minter, view, shared.rate_limiter, rate_limit_failure="open")
    async with closed, opened:
        assert (await call(closed, token)).status_code == 200
        redis.stop()
        assert (await call(closed, token)).status_code == 503
        answer = await call(opened, token)
        assert answer.status_code == 200
        assert "ratelimit" not in answer.headers  # nothing was counted
    await shared.aclose()


async def test_fail_open_never_skips_a_revocation_check(
    minter: Minter, redis: RedisProcess
) -> None:
    """With Redis holding the revocations too, "open" still refuses: the revocation
    check cannot run, and it always fails closed."""
    shared = over_redis(open_redis(redis.url))
    token = minter.mint()
    async with client(
        minter, shared.revocations, shared.rate_limiter, rate_limit_failure="open"
    ) as http:
        assert (await call(http, token)).status_code == 200
        redis.stop()
        assert (await call(http, token)).status_code == 503
    await shared.aclose()
