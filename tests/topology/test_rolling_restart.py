"""Rolling restarts behind a balancer that never retries (HAProxy with retries off, as
kube-proxy would route): SIGTERM turns a replica's or a gateway's readiness to 503 while it
keeps serving (``shutdown_drain``, ``--shutdown-drain``), the balancer's health check takes
it out of rotation, then uvicorn's graceful shutdown lets in-flight requests finish.
Restarting every replica, or every gateway, in turn under load loses no request; a
replica exits 0 after draining."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator, Sequence
from typing import Protocol

import httpx
import pytest

from tests.topology import Spec, Topology, topology
from tests.topology._clients import McpSession, agent_token, refresh_form, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    spec = Spec(replicas=2, gateways=2, kind="redis", drain=1.0, balancer_retries=False)
    with topology(spec) as running:
        yield running


class Restartable(Protocol):
    def restart(self) -> None: ...


async def restart_each(processes: Sequence[Restartable], done: asyncio.Event) -> None:
    """Restart each process in turn (SIGTERM, drain, start, ready) while the load runs."""
    await asyncio.sleep(0.5)  # the clients are under way
    for process in processes:
        await asyncio.to_thread(process.restart)
        await asyncio.sleep(0.5)  # let the balancer's next check put it back
    done.set()


def none_lost(what: str, outcomes: list[int | str], started: float) -> None:
    failed = [o for o in outcomes if o != 200]
    print(
        f"\nrolling restart of {what} under load: {len(outcomes)} requests in "
        f"{time.monotonic() - started:.1f} s, {len(failed)} not 200"
    )
    assert len(outcomes) > 100
    assert failed == []


async def test_sigterm_drains_then_exits_cleanly(topo: Topology) -> None:
    """A replica told to stop answers /readyz 503 "draining" while it still serves, then
    exits 0 (the signal is not re-raised: storage closed, audit flushed)."""
    replica = topo.replicas[1]
    stopping = asyncio.create_task(asyncio.to_thread(replica.proc.terminate))
    seen: list[tuple[int, str]] = []
    async with httpx.AsyncClient(base_url=replica.url, timeout=5) as http:
        while not stopping.done():
            try:
                resp = await http.get("/readyz")
            except httpx.TransportError:
                break
            seen.append((resp.status_code, resp.json()["status"]))
            if seen[-1] == (503, "draining"):
                metadata = await http.get("/.well-known/oauth-authorization-server")
                assert metadata.status_code == 200  # still serving while it drains
                break
            await asyncio.sleep(0.01)
    assert await stopping == 0
    assert (503, "draining") in seen, seen
    assert "Traceback" not in replica.log()
    replica.start()


async def test_rolling_restart_under_load_loses_no_request(topo: Topology) -> None:
    """Every replica, one after the other: SIGTERM (readiness 503, drain, graceful
    shutdown), start, ready; meanwhile 8 clients keep asking for tokens and metadata
    through the balancer, and a person keeps refreshing."""
    agent = (topo.credentials.agent_id, topo.credentials.agent_secret)
    cc = {"grant_type": "client_credentials", "resource": topo.demo_resource}
    refresh_token = (await sign_in(topo))["refresh_token"]
    done = asyncio.Event()
    outcomes: list[int | str] = []

    async def client(i: int) -> None:
        nonlocal refresh_token
        async with httpx.AsyncClient(base_url=topo.issuer, timeout=60) as http:
            while not done.is_set():
                try:
                    if i == 0:
                        resp = await http.post("/token", data=refresh_form(topo, refresh_token))
                        if resp.status_code == 200:
                            refresh_token = resp.json()["refresh_token"]
                    elif i % 2:
                        resp = await http.post("/token", data=cc, auth=agent)
                    else:
                        resp = await http.get("/.well-known/oauth-authorization-server")
                    outcomes.append(resp.status_code)
                except httpx.TransportError as exc:
                    outcomes.append(type(exc).__name__)

    started = time.monotonic()
    await asyncio.gather(restart_each(topo.replicas, done), *[client(i) for i in range(8)])
    none_lost(f"{len(topo.replicas)} replicas", outcomes, started)


async def test_rolling_restart_of_the_gateways_loses_no_tool_call(topo: Topology) -> None:
    """Every gateway, one after the other: SIGTERM, drain, start, ready; meanwhile 6 MCP
    sessions keep calling a tool through the balancer (each request may land on either
    gateway; the session lives at the upstream behind both)."""
    token = await agent_token(topo, topo.resource)
    done = asyncio.Event()
    outcomes: list[int | str] = []

    async def caller() -> None:
        async with httpx.AsyncClient(timeout=60) as http:
            session = await McpSession.open(http, topo.resource, token)
            while not done.is_set():
                try:
                    resp = await session.call("search_orders", {"query": "acme"})
                    ok = resp.status_code == 200 and "ord_1001" in resp.text
                    outcomes.append(200 if ok else resp.status_code)
                except httpx.TransportError as exc:
                    outcomes.append(type(exc).__name__)

    started = time.monotonic()
    await asyncio.gather(restart_each(topo.gateways, done), *[caller() for _ in range(6)])
    none_lost(f"{len(topo.gateways)} gateways", outcomes, started)
    assert all("Traceback" not in g.log() for g in topo.gateways)
