"""DPoP proofs across guard replicas sharing a real Redis: a proof used at one replica is
refused at every other; its ``jti`` is spent in the same script (one round trip) as the
rate limit and the revocation check; with Redis gone the request fails closed, even when
rate limits may fail open, and service resumes when Redis returns."""

from __future__ import annotations

from typing import Any

import pytest
from redis.asyncio import Redis

from mcpward.guard import RateLimits
from mcpward.state import Limit, MemoryRateLimiter, SharedState, open_redis, over_redis
from tests.dpop_proofs import Prover
from tests.services import RedisProcess, restartable_redis

from .support import RESOURCE, Minter
from .test_dpop import Guarded, bound, refused

pytestmark = pytest.mark.redis

LIMITS = RateLimits(per_token=Limit(1000, 60))


def replica(minter: Minter, shared: SharedState, **kwargs: Any) -> Guarded:
    options: dict[str, Any] = {
        "revocations": shared.revocations,
        "rate_limiter": shared.rate_limiter,
        "replay": shared.replay,
        "rate_limits": LIMITS,
        **kwargs,
    }
    return Guarded(minter, **options)


@pytest.fixture
def redis() -> Any:
    with restartable_redis() as process:
        yield process


async def test_a_proof_replayed_to_another_replica_is_refused(
    minter: Minter, redis_url: str
) -> None:
    one_state, two_state = over_redis(open_redis(redis_url)), over_redis(open_redis(redis_url))
    one, two = replica(minter, one_state), replica(minter, two_state)
    prover = Prover()
    token = bound(minter, prover)
    proof = prover.proof(RESOURCE, access_token=token)
    async with one.http, two.http:
        assert (await one.call(token, proof)).status_code == 200
        replayed = await two.call(token, proof)
        refused(replayed, "invalid_dpop_proof")
        assert "already used" in replayed.json()["error"]["message"]
        # A fresh proof is fine on either.
        fresh = prover.proof(RESOURCE, access_token=token)
        assert (await two.call(token, fresh)).status_code == 200
    await one_state.aclose()
    await two_state.aclose()


async def test_the_proof_rides_in_the_rate_limit_round_trip(minter: Minter, redis_url: str) -> None:
    """Redis MONITOR shows what the guard sends per request: one EVALSHA, inside which
    the revocation keys are read, the proof's jti set (NX) and the counter incremented."""
    shared = over_redis(open_redis(redis_url))
    g = replica(minter, shared)
    prover = Prover()
    token = bound(minter, prover)
    watcher, marker = Redis.from_url(redis_url), Redis.from_url(redis_url)
    await marker.ping()  # its connection set up before watching
    async with g.http:
        assert (await g.call(token, prover.proof(RESOURCE, access_token=token))).status_code == 200
        async with watcher.monitor() as monitor:
            answer = await g.call(token, prover.proof(RESOURCE, access_token=token))
            await marker.echo("end of request")
            seen: list[dict[str, Any]] = []
            async for command in monitor.listen():
                if "end of request" in command["command"]:
                    break
                seen.append(command)
    assert answer.status_code == 200
    sent = [c["command"].split()[0] for c in seen if c["client_type"] != "lua"]
    assert sent == ["EVALSHA"]
    inside = [c["command"] for c in seen if c["client_type"] == "lua"]
    assert any(c.startswith("SET mcpward:once:dpop:rs:" + prover.jkt) and "NX" in c for c in inside)
    assert any(c.startswith("INCR ") for c in inside)
    await watcher.aclose()
    await marker.aclose()
    await shared.aclose()


async def test_proof_checks_fail_closed_without_redis(minter: Minter, redis: RedisProcess) -> None:
    shared = over_redis(open_redis(redis.url))
    # Even where the operator lets rate limits fail open, a replay check never does.
    g = replica(minter, shared, rate_limit_failure="open")
    # Rate limits in memory, proofs in Redis: a separate replay round trip, closed too.
    separate = replica(minter, shared, rate_limiter=MemoryRateLimiter(), revocations=None)
    prover = Prover()
    token = bound(minter, prover)
    async with g.http, separate.http:
        assert (await g.call(token, prover.proof(RESOURCE, access_token=token))).status_code == 200
        redis.stop()
        for guard in (g, separate):
            answer = await guard.call(token, prover.proof(RESOURCE, access_token=token))
            assert answer.status_code == 503 and answer.headers["retry-after"]
            assert "www-authenticate" not in answer.headers
        redis.start()
        assert (await g.call(token, prover.proof(RESOURCE, access_token=token))).status_code == 200
        answer = await separate.call(token, prover.proof(RESOURCE, access_token=token))
        assert answer.status_code == 200
    await shared.aclose()
