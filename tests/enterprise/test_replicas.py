"""One-time use across replicas: two authorization servers sharing a database and a real
Redis accept an ID-JAG or a workload JWT once between them; with Redis down the grant
fails closed (503 with Retry-After) and works again once Redis is back, no restart."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from mcpward.state import open_redis, over_redis
from tests.enterprise.conftest import Enterprise, federation, provision
from tests.enterprise.support import Issuer, jwt_bearer, serve_issuer
from tests.server.conftest import RESOURCE, Running, start
from tests.services import restartable_redis

pytestmark = pytest.mark.redis


@asynccontextmanager
async def replica(
    database_url: str, tmp_path: Path, redis_url: str, idp: Issuer, platform: Issuer
) -> AsyncIterator[Running]:
    shared = over_redis(open_redis(redis_url))
    async for r in start(database_url, tmp_path, shared=shared, **federation(idp, platform)):
        yield r


async def test_an_assertion_is_redeemed_once_across_replicas(
    database_url: str, tmp_path: Path, redis_url: str
) -> None:
    async with (
        serve_issuer() as idp,
        serve_issuer() as platform,
        replica(database_url, tmp_path, redis_url, idp, platform) as a,
        replica(database_url, tmp_path, redis_url, idp, platform) as b,
    ):
        e = Enterprise(a, idp, platform, await provision(a))
        id_jag = idp.id_jag(a.clock())
        first = await a.http.post("/token", data=jwt_bearer(id_jag), auth=e.basic("mcp-client"))
        assert first.status_code == 200, first.text
        again = await b.http.post("/token", data=jwt_bearer(id_jag), auth=e.basic("mcp-client"))
        assert again.status_code == 400
        assert again.json()["error_description"] == "the assertion was already used"

        workload = platform.workload(a.clock())
        form = jwt_bearer(workload, resource=RESOURCE)
        assert (await b.http.post("/token", data=form)).status_code == 200
        replay = await a.http.post("/token", data=form)
        assert replay.json()["error_description"] == "the assertion was already used"


async def test_with_redis_down_the_grant_fails_closed_then_recovers(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'replicas.db'}"
    with restartable_redis() as redis:
        async with (
            serve_issuer() as idp,
            serve_issuer() as platform,
            replica(url, tmp_path, redis.url, idp, platform) as a,
        ):
            e = Enterprise(a, idp, platform, await provision(a))
            redis.stop()
            id_jag = jwt_bearer(idp.id_jag(a.clock()))
            workload = jwt_bearer(platform.workload(a.clock()), resource=RESOURCE)
            for down in (
                await a.http.post("/token", data=id_jag, auth=e.basic("mcp-client")),
                await a.http.post("/token", data=workload),
            ):
                assert down.status_code == 503, down.text
                assert down.json()["error"] == "temporarily_unavailable"
                assert down.headers["retry-after"] == "5"
            redis.start()
            back = await a.http.post(
                "/token", data=jwt_bearer(idp.id_jag(a.clock())), auth=e.basic("mcp-client")
            )
            assert back.status_code == 200, back.text
