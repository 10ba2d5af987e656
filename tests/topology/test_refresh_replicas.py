"""Benign concurrency across two real ``mcpward serve`` replicas sharing PostgreSQL (issue
14, finding 5): a race of 50 refreshes of one token rotates it once and gives all 50 the
same successor; a rotation that committed on a replica killed (kill -9) before its answer
reached the client is retried at the other replica and gets that successor; 16 clients
refreshing while a replica is killed all keep their grants; a replay of a spent token
after the retry window still revokes the family.

The replicas run with a 10 s retry window (``MCPWARD_REFRESH_RETRY_WINDOW``) so the
replay test need not wait the default 30 s."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlencode, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward._secrets import credential_hash
from mcpward.storage.database import open_engine
from mcpward.storage.schema import refresh_tokens
from tests.topology import Spec, Topology, topology, wait_for
from tests.topology._clients import refresh_form, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]

WINDOW = 10.0


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    spec = Spec(replicas=2, gateways=0, env={"MCPWARD_REFRESH_RETRY_WINDOW": str(WINDOW)})
    with topology(spec) as running:
        yield running


@pytest.fixture
async def engine(topo: Topology) -> AsyncIterator[AsyncEngine]:
    engine = open_engine(topo.database_url)
    yield engine
    await engine.dispose()


@pytest.fixture(autouse=True)
def replicas_up(topo: Topology) -> Iterator[None]:
    """Every test starts with both replicas serving (a test may have killed one)."""
    yield
    for replica in topo.replicas:
        if not replica.proc.running:
            replica.start()


def events(topo: Topology, name: str) -> list[dict[str, object]]:
    return [e for r in topo.replicas for e in r.events(name)]


async def post_refresh(base: str, topo: Topology, token: str) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        return await http.post("/token", data=refresh_form(topo, token))


async def test_a_race_of_fifty_across_two_replicas_rotates_once(topo: Topology) -> None:
    token = (await sign_in(topo))["refresh_token"]
    before = len(events(topo, "token.refreshed"))
    limits = httpx.Limits(max_connections=25)
    async with (
        httpx.AsyncClient(base_url=topo.replicas[0].url, limits=limits, timeout=60) as one,
        httpx.AsyncClient(base_url=topo.replicas[1].url, limits=limits, timeout=60) as two,
    ):
        form = refresh_form(topo, token)
        answers = await asyncio.gather(
            *[(one if i % 2 else two).post("/token", data=form) for i in range(50)]
        )
    statuses = [a.status_code for a in answers]
    successors = {a.json().get("refresh_token") for a in answers}
    print(f"\nrace of 50 across 2 replicas: statuses {sorted(set(statuses))}, ", end="")
    print(f"{len(successors)} distinct successor(s)")
    assert statuses == [200] * 50, [a.text for a in answers if a.status_code != 200]
    assert len(successors) == 1
    assert len({a.json()["access_token"] for a in answers}) == 50
    wait_for(lambda: len(events(topo, "token.refreshed")) == before + 1, what="one rotation")
    [successor] = successors
    # The one successor is live and rotates once more.
    assert (await post_refresh(topo.issuer, topo, str(successor))).status_code == 200
    assert not events(topo, "refresh.reuse_detected")


def send_without_reading(base: str, form: dict[str, str]) -> socket.socket:
    """An HTTP request whose answer nobody reads: the client is gone, or its connection is
    about to break."""
    parts = urlsplit(base)
    body = urlencode(form).encode()
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80))
    sock.sendall(
        b"POST /token HTTP/1.1\r\nHost: " + (parts.netloc).encode() + b"\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    return sock


async def spent_at(engine: AsyncEngine, token: str) -> float | None:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(refresh_tokens.c.used_at).where(
                    refresh_tokens.c.token_hash == credential_hash(token)
                )
            )
        ).one()
    return row.used_at  # type: ignore[no-any-return]


async def successor_hash(engine: AsyncEngine, token: str) -> str:
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(refresh_tokens.c.token_hash).where(
                    refresh_tokens.c.parent_hash == credential_hash(token)
                )
            )
        ).one()
    return str(row.token_hash)


async def test_a_lost_answer_after_commit_is_retried_at_the_other_replica(
    topo: Topology, engine: AsyncEngine
) -> None:
    token = (await sign_in(topo))["refresh_token"]
    victim, survivor = topo.replicas
    sock = send_without_reading(victim.url, refresh_form(topo, token))
    try:
        deadline = time.monotonic() + 30
        while await spent_at(engine, token) is None:
            assert time.monotonic() < deadline, "the rotation never committed"
            await asyncio.sleep(0.01)
        victim.kill()  # committed; whatever answer it had is lost with it
    finally:
        sock.close()
    retried = await post_refresh(survivor.url, topo, token)
    assert retried.status_code == 200, retried.text
    successor = retried.json()["refresh_token"]
    assert credential_hash(successor) == await successor_hash(engine, token)
    assert (await post_refresh(survivor.url, topo, successor)).status_code == 200
    assert [e["client_id"] for e in survivor.events("refresh.retried")][-1] == topo.public_client
    assert not events(topo, "refresh.reuse_detected")


async def test_sixteen_clients_keep_their_grants_when_a_replica_is_killed(
    topo: Topology,
) -> None:
    """The issue's run: clients refreshing through both replicas, one replica killed
    mid-load; a client whose request failed retries (same token) at the other."""
    tokens = [(await sign_in(topo))["refresh_token"] for _ in range(16)]
    victim, survivor = topo.replicas
    killed = asyncio.Event()
    retried_after_error = 0

    async def client(i: int) -> None:
        nonlocal retried_after_error
        token = tokens[i]
        for round_ in range(6):
            base = (victim if (i + round_) % 2 == 0 and not killed.is_set() else survivor).url
            try:
                resp = await post_refresh(base, topo, token)
            except httpx.TransportError:
                retried_after_error += 1
                resp = await post_refresh(survivor.url, topo, token)
            assert resp.status_code == 200, resp.text
            token = resp.json()["refresh_token"]
        tokens[i] = token

    async def killer() -> None:
        await asyncio.sleep(0.3)
        victim.kill()
        killed.set()

    await asyncio.gather(killer(), *[client(i) for i in range(16)])
    print(f"\n16 clients, replica killed mid-load: {retried_after_error} retried after an error")
    assert not events(topo, "refresh.reuse_detected")
    for token in tokens:  # every grant is alive
        assert (await post_refresh(survivor.url, topo, token)).status_code == 200


def family_of(access_token: str) -> str:
    payload = access_token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["sid"])


async def test_a_replay_after_the_window_revokes_the_family(topo: Topology) -> None:
    signed_in = await sign_in(topo)
    token, family = signed_in["refresh_token"], family_of(signed_in["access_token"])
    rotated = await post_refresh(topo.replicas[0].url, topo, token)
    assert rotated.status_code == 200
    legit = rotated.json()["refresh_token"]
    # Wait until the window is certainly closed (the server's clock started it before
    # it answered), then the attacker replays the spent token at the other replica.
    await asyncio.sleep(WINDOW + 1)
    replay = await post_refresh(topo.replicas[1].url, topo, token)
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    assert "refresh_token" not in replay.json()
    dead = await post_refresh(topo.replicas[0].url, topo, legit)
    assert dead.json()["error"] == "invalid_grant"
    reuses = [
        e for e in events(topo, "refresh.reuse_detected") if e["detail"] == {"family": family}
    ]
    assert len(reuses) == 1
