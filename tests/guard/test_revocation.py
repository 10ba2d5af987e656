"""Revocation honoured at the next request: in-process, by polling the ``revocations``
table (SQLite and a real PostgreSQL), and through a real redis-server. Each test states the
propagation delay it observes."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from mcpward.guard import Guard, RateLimits, StaticKeys, make_guard, manifest_from_code, protect
from mcpward.revocation import (
    InProcessRevocations,
    Revocation,
    RevocationView,
    TokenRef,
    matches,
)
from mcpward.revocation.table import TablePollingRevocations
from mcpward.state.redis import RedisRateLimiter, RedisRevocations
from mcpward.storage.schema import metadata
from mcpward.storage.schema import revocations as revocations_table
from mcpward.storage.sql import SqlRevocationLog

from .support import ISSUER, RESOURCE, Minter
from .test_attacks import CALL, ok_app

MANIFEST = manifest_from_code("t", {"search_orders": ["orders.read"]})


def guarded(minter: Minter, view: RevocationView, **kwargs: Any) -> tuple[httpx.AsyncClient, Guard]:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        revocations=view,
        **kwargs,
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1"), guard


async def status(client: httpx.AsyncClient, token: str) -> int:
    r = await client.post("/mcp", json=CALL, headers={"authorization": f"Bearer {token}"})
    return r.status_code


def revocation(kind: Any, key: str, at: float | None = None) -> Revocation:
    now = time.time() if at is None else at
    return Revocation(kind=kind, key=key, revoked_at=now, expires_at=now + 3600)


async def test_in_process_every_kind_stops_the_next_request(minter: Minter) -> None:
    """Embedded mode: the authorization server publishes into the guard's view; delay 0."""
    view = InProcessRevocations()
    client, _ = guarded(minter, view)
    async with client:
        by_jti = minter.mint(jti="j-1")
        by_family = minter.mint(sid="fam-1")
        by_subject = minter.mint(sub="leaver", iat=int(time.time()) - 10)
        by_client = minter.mint(client_id="bad-client", iat=int(time.time()) - 10)
        for token in (by_jti, by_family, by_subject, by_client):
            assert await status(client, token) == 200  # and now cached as verified
        await view.publish(
            [
                revocation("jti", "j-1"),
                revocation("family", "fam-1"),
                revocation("subject", "leaver"),
                revocation("client", "bad-client"),
            ]
        )
        for token in (by_jti, by_family, by_subject, by_client):
            assert await status(client, token) == 401
        # A user re-admitted later gets new tokens that work: subject and client
        # revocations cut at revoked_at.
        fresh = minter.mint(sub="leaver", iat=int(time.time()) + 5)
        assert await status(client, fresh) == 200
        assert await status(client, minter.mint()) == 200


async def test_revoked_response_is_invalid_token(minter: Minter) -> None:
    view = InProcessRevocations()
    client, _ = guarded(minter, view)
    async with client:
        token = minter.mint(jti="j-2")
        await view.publish([revocation("jti", "j-2")])
        r = await client.post("/mcp", json=CALL, headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def engine(request: pytest.FixtureRequest, tmp_path: Any) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'as.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
    eng = create_async_engine(url)
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    yield eng
    await eng.dispose()


async def insert(engine: AsyncEngine, r: Revocation) -> None:
    async with engine.begin() as conn:
        await conn.execute(
            sa.insert(revocations_table).values(
                kind=r.kind, key=r.key, revoked_at=r.revoked_at, expires_at=r.expires_at
            )
        )


async def test_table_polling_reaches_a_separate_guard(minter: Minter, engine: AsyncEngine) -> None:
    """A guard in another process shares only the database: the revocation applies from
    its next poll (interval 0.1 s here; the delay is printed, at most interval + query)."""
    # Rows from before the guard started, one of them already expired, are loaded once.
    old = time.time() - 7200
    await insert(engine, Revocation("jti", "stale", old, old + 60))
    await insert(engine, revocation("jti", "pre-existing"))
    view = TablePollingRevocations(SqlRevocationLog(create_async_engine(engine.url)), interval=0.1)
    async with view:
        assert view.last_seq == 2
        assert await view.is_revoked(TokenRef("pre-existing", None, "u", "c", None))
        assert not await view.is_revoked(TokenRef("stale", None, "u", "c", None))
        client, _ = guarded(minter, view)
        async with client:
            token = minter.mint(sid="fam-9")
            assert await status(client, token) == 200
            await insert(engine, revocation("family", "fam-9"))
            committed = time.perf_counter()
            while await status(client, token) == 200:
                assert time.perf_counter() - committed < 5
            delay = time.perf_counter() - committed
    print(f"table-polling propagation delay ({engine.dialect.name}): {delay * 1000:.0f} ms")
    assert delay < 1.0


async def test_table_polling_keeps_what_it_knows_when_the_database_fails(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    eng = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'as.db'}")
    async with eng.begin() as conn:
        await conn.run_sync(metadata.create_all)
    await insert(eng, revocation("jti", "known"))
    view = TablePollingRevocations(SqlRevocationLog(eng), interval=0.02)
    async with view:
        async with eng.begin() as conn:
            await conn.execute(sa.text("DROP TABLE revocations"))
        await asyncio.sleep(0.1)  # several failed polls
        assert await view.is_revoked(TokenRef("known", None, "u", "c", None))
    await eng.dispose()
    assert "revocation poll failed: OperationalError" in caplog.text


@pytest.mark.redis
async def test_redis_revocation_is_immediate_and_shares_the_rate_limit_round_trip(
    minter: Minter, redis_url: str
) -> None:
    """The authorization server publishes through its own Redis connection; the guard's
    revocation check rides in the rate-limit script: one EVALSHA per request, delay 0."""
    as_redis = Redis.from_url(redis_url)
    guard_redis = Redis.from_url(redis_url)
    publisher = RedisRevocations(as_redis, prefix="t1:rev:")
    view = RedisRevocations(guard_redis, prefix="t1:rev:")
    limiter = RedisRateLimiter(guard_redis, prefix="t1:rl:", revocations=view)
    client, _ = guarded(minter, view, rate_limiter=limiter, rate_limits=RateLimits(per_client=None))
    try:
        async with client:
            token = minter.mint(sub="dave", iat=int(time.time()) - 5)
            assert await status(client, token) == 200  # loads the script once
            before = await _calls(as_redis)
            assert await status(client, token) == 200
            assert await status(client, token) == 200
            after = await _calls(as_redis)
            assert after["evalsha"] - before["evalsha"] == 2
            assert after["mget"] == before["mget"]
            assert limiter.round_trips == 3
            await publisher.publish([revocation("subject", "dave")])
            assert await status(client, token) == 401
            # Expiry travels with the key: Redis forgets it when no token can match.
            ttl = await as_redis.pttl("t1:rev:subject:dave")
            assert 3_500_000 < ttl <= 3_600_000
            # Standalone view (no Redis limiter): one MGET.
            assert await view.is_revoked(TokenRef(None, None, "dave", "c", time.time() - 5))
            assert not await view.is_revoked(TokenRef(None, None, "dave", "c", time.time() + 5))
    finally:
        await as_redis.aclose()
        await guard_redis.aclose()


async def _calls(redis: Redis) -> dict[str, int]:
    stats = await redis.info("commandstats")
    out = {}
    for name in ("evalsha", "mget"):
        entry = stats.get(f"cmdstat_{name}", {})
        out[name] = int(entry.get("calls", 0)) if isinstance(entry, dict) else 0
    return out


_ids = st.sampled_from(["a", "b", "c"])


@settings(max_examples=300, deadline=None)
@given(
    revs=st.lists(
        st.builds(
            Revocation,
            kind=st.sampled_from(["jti", "family", "subject", "client"]),
            key=_ids,
            revoked_at=st.floats(0, 100),
            expires_at=st.just(1e12),
        ),
        max_size=6,
    ),
    token=st.builds(
        TokenRef,
        jti=st.none() | _ids,
        family=st.none() | _ids,
        subject=_ids,
        client_id=_ids,
        issued_at=st.none() | st.floats(0, 100),
    ),
)
def test_the_indexed_view_applies_the_documented_rule(
    revs: list[Revocation], token: TokenRef
) -> None:
    """The in-memory view (indexed by kind and key) decides exactly as ``matches``, the
    rule written down next to :class:`Revocation`, applied to every revocation."""
    view = InProcessRevocations()
    view.add(revs)
    assert view.check(token) == any(matches(r, token) for r in revs)
