"""Issue 14's findings 3 and 4 and the table-polling fixes, against the real processes, so
that the same tests run against any checkout (``MCPWARD_TOPOLOGY_PYTHON``):

- finding 3: non-ASCII bytes in ``Authorization: Basic`` are ``invalid_client``, not a 500;
- finding 4: a client id that is no registered client (a secret pasted there) never
  reaches the audit trail;
- a gateway polling the revocations table sees a revocation whose sequence number was
  committed after a higher one (two PostgreSQL transactions committing out of order);
- a gateway polling the table fails closed (503) once it has not read it for 60 s, and
  serves again when the database returns.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from mcpward.storage.database import open_engine
from mcpward.storage.schema import revocations
from tests.topology import Spec, Topology, topology
from tests.topology._clients import McpSession, agent_token

MAX_STALENESS = 60.0


@pytest.fixture(scope="module")
def embedded() -> Iterator[Topology]:
    with topology(Spec(kind="embedded")) as topo:
        yield topo


@pytest.fixture(scope="module")
def polled() -> Iterator[Topology]:
    with topology(Spec(replicas=1, gateways=1, kind="table")) as topo:
        yield topo


@pytest.mark.parametrize("endpoint", ["/token", "/revoke", "/introspect"])
async def test_non_ascii_basic_credentials_are_invalid_client(
    embedded: Topology, endpoint: str
) -> None:
    form = {"grant_type": "client_credentials", "token": "x"}
    async with httpx.AsyncClient(base_url=embedded.issuer, timeout=30) as http:
        for header in (b"Basic \xff\xfe\xfd", b"Basic " + base64.b64encode(b"\xff:\xfe")):
            resp = await http.post(endpoint, data=form, headers={b"authorization": header})
            assert resp.status_code == 401, resp.text
            assert resp.json()["error"] == "invalid_client"


async def test_an_unregistered_client_id_never_reaches_the_audit_trail(
    embedded: Topology,
) -> None:
    secret = embedded.credentials.agent_secret
    async with httpx.AsyncClient(base_url=embedded.issuer, timeout=30) as http:
        in_form = await http.post(
            "/token", data={"grant_type": "client_credentials", "client_id": secret}
        )
        as_basic = await http.post(
            "/token", data={"grant_type": "client_credentials"}, auth=(secret, secret)
        )
        assert (in_form.status_code, as_basic.status_code) == (401, 401)
    audit = embedded.replicas[0].audit_path.read_text()
    assert "client.authentication_failed" in audit
    assert secret not in audit


def jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


async def until_status(session: McpSession, status: int, within: float) -> float:
    started = time.monotonic()
    while (got := await session.probe()) != status:
        assert got in (200, 401, 503), got
        assert time.monotonic() - started < within, f"still {got} after {within} s"
        await asyncio.sleep(0.02)
    return time.monotonic() - started


@pytest.mark.postgres
async def test_a_revocation_committed_out_of_sequence_order_is_seen(polled: Topology) -> None:
    gateway = polled.gateways[0].mcp
    tokens = [await agent_token(polled, polled.resource) for _ in range(2)]
    engine = open_engine(polled.database_url)
    now = time.time()
    try:
        async with (
            httpx.AsyncClient(timeout=30) as http,
            engine.connect() as a,
            engine.connect() as b,
        ):
            sessions = [await McpSession.open(http, gateway, t) for t in tokens]
            rows = [
                {"kind": "jti", "key": jti(t), "revoked_at": now, "expires_at": now + 3600}
                for t in tokens
            ]
            await a.begin()
            await a.execute(sa.insert(revocations).values(**rows[0]))  # takes seq n
            await b.begin()
            await b.execute(sa.insert(revocations).values(**rows[1]))  # takes seq n + 1
            await b.commit()
            await until_status(sessions[1], 401, 10)  # the gateway has read past n
            await a.commit()  # n appears only now
            delay = await until_status(sessions[0], 401, 10)
    finally:
        await engine.dispose()
    print(f"\nrevocation committed out of order reached the gateway in {delay * 1000:.0f} ms")


@pytest.mark.postgres
async def test_a_polling_gateway_fails_closed_when_the_table_cannot_be_read(
    polled: Topology,
) -> None:
    assert polled.postgres is not None
    token = await agent_token(polled, polled.resource)
    async with httpx.AsyncClient(timeout=30) as http:
        session = await McpSession.open(http, polled.gateways[0].mcp, token)
        polled.postgres.stop()
        try:
            # What it read stays in force for a while ...
            assert await session.probe() == 200
            # ... then it refuses rather than miss revocations it cannot see.
            waited = await until_status(session, 503, MAX_STALENESS + 30)
            resp = await session.send("ping")
            assert resp.headers["retry-after"]
            assert resp.json()["error"]["data"]["error"] == "temporarily_unavailable"
        finally:
            polled.postgres.start()
        await until_status(session, 200, 30)
    print(f"\npolling gateway failed closed {waited:.1f} s after the database stopped")
    log = polled.gateways[0].log()
    assert "Traceback" not in log
    assert log.count("revocation poll failed") == 1
