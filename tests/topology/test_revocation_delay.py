"""How long a revocation takes to reach every guard, per topology, measured on the real CLI
processes (``mcpward serve`` replicas, ``mcpward gateway`` processes, the operator CLI)
over 50 trials each. Printed as p50/p99 (nearest rank: over 50 trials p99 is the slowest)
and tabled in the README.

A trial: an agent's access token opens an MCP session at one guard (a gateway, or a
replica's in-process guard), a ping is accepted, the token is revoked (RFC 7009 through
the balancer, or ``mcpward tokens revoke``), and pings follow back to back until one is
refused with 401. The delay runs from the revocation's answer (it is durable then) to that
refusal; its resolution is one ping (pings go 10 ms apart).

What each topology promises, and what is asserted:

- Redis: the replica publishes before it answers, so not one ping after the answer is
  accepted, at any gateway or replica; the CLI publishes too.
- Table polling: within one poll interval (0.5 s) plus one query.
- Embedded: at once in the process that revoked; a revocation by another process (the
  CLI) within one poll interval.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.topology import Spec, Topology, topology
from tests.topology._clients import McpSession, agent_token, revoke

TRIALS = 50
POLL = 0.5
PING_SPACING = 0.01


@dataclass
class Trial:
    delay: float  # seconds from the revocation's answer to the first refusal
    accepted_after: int  # pings accepted after the answer


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def report(label: str, trials: list[Trial]) -> tuple[float, float]:
    delays = [t.delay for t in trials]
    p50, p99 = quantile(delays, 0.5), quantile(delays, 0.99)
    print(
        f"\nrevocation delay, {label}: {len(trials)} trials, p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(delays) * 1000:.1f} ms"
    )
    return p50, p99


async def trial(
    topo: Topology, guard_url: str, resource: str, revoke_via: str, cli: bool = False
) -> Trial:
    try:
        return await _trial(topo, guard_url, resource, revoke_via, cli)
    except httpx.TransportError:
        topo.check_alive()  # a process that died is named, with its log's tail
        raise


async def _trial(
    topo: Topology, guard_url: str, resource: str, revoke_via: str, cli: bool
) -> Trial:
    token = await agent_token(topo, resource)
    async with httpx.AsyncClient(timeout=30) as http:
        session = await McpSession.open(http, guard_url, token)
        assert await session.probe() == 200
        if cli:
            jti = _jti(token)
            topo.cli("tokens", "revoke", "--jti", jti)
        else:
            await revoke(topo, token, base=revoke_via)
        revoked = time.perf_counter()
        accepted = 0
        deadline = revoked + 10
        while True:
            status = await session.probe()
            if status == 401:
                return Trial(time.perf_counter() - revoked, accepted)
            assert status == 200, status
            accepted += 1
            assert time.perf_counter() < deadline, "the revocation never arrived"
            # Pings 10 ms apart: the resolution, and below the guards' per-token rate limit.
            await asyncio.sleep(PING_SPACING)


def _jti(token: str) -> str:
    import base64
    import json

    payload = token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return str(claims["jti"])


@pytest.fixture(scope="module")
def redis_topology() -> Iterator[Topology]:
    with topology(Spec(replicas=2, gateways=2, kind="redis")) as topo:
        yield topo


@pytest.fixture(scope="module")
def table_topology() -> Iterator[Topology]:
    # The gateways' default poll interval (0.5 s) is what is measured.
    with topology(Spec(replicas=2, gateways=2, kind="table")) as topo:
        yield topo


@pytest.fixture(scope="module")
def embedded_topology() -> Iterator[Topology]:
    with topology(Spec(kind="embedded")) as topo:
        yield topo


async def run_trials(
    topo: Topology, targets: list[tuple[str, str]], revoke_at: list[str], trials: int = TRIALS
) -> list[Trial]:
    """``targets``: (guard URL, its resource), taken in turn; revocations made at the
    replicas in ``revoke_at`` in turn."""
    results = []
    for i in range(trials):
        url, resource = targets[i % len(targets)]
        results.append(await trial(topo, url, resource, revoke_at[i % len(revoke_at)]))
    return results


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_every_guard_refuses_at_once(redis_topology: Topology) -> None:
    topo = redis_topology
    gateways = [(g.mcp, topo.resource) for g in topo.gateways]
    replicas = [(r.url + "/mcp", topo.demo_resource) for r in topo.replicas]
    # Revoked at one replica, checked at gateways and at the other replica's guard.
    revokers = [r.url for r in topo.replicas]
    through_gateways = await run_trials(topo, gateways, revokers)
    across_replicas = await run_trials(topo, replicas[::-1], revokers)
    report("Redis, gateways (--redis)", through_gateways)
    report("Redis, replicas' in-process guards", across_replicas)
    assert all(t.accepted_after == 0 for t in through_gateways + across_replicas)


@pytest.mark.redis
@pytest.mark.postgres
async def test_redis_revocations_by_the_cli_reach_the_gateways(redis_topology: Topology) -> None:
    """Finding 1: ``mcpward tokens revoke`` (another process) publishes to Redis too."""
    topo = redis_topology
    results = [
        await trial(topo, topo.gateways[i % 2].mcp, topo.resource, "", cli=True) for i in range(10)
    ]
    report("Redis, gateways, revoked by the CLI (10 trials)", results)
    assert all(t.accepted_after == 0 for t in results)


@pytest.mark.postgres
async def test_table_polling_within_one_interval(table_topology: Topology) -> None:
    topo = table_topology
    gateways = [(g.mcp, topo.resource) for g in topo.gateways]
    # The replicas' in-process guards: the revoking replica's at once, the other's by
    # polling; revoked at the first, checked at the second.
    replicas = [(topo.replicas[1].url + "/mcp", topo.demo_resource)]
    through_gateways = await run_trials(topo, gateways, [topo.replicas[0].url])
    across_replicas = await run_trials(topo, replicas, [topo.replicas[0].url])
    _, p99_gateways = report(f"table polling every {POLL} s, gateways", through_gateways)
    _, p99_replicas = report(f"table polling every {POLL} s, other replica", across_replicas)
    # The goal: p99 within a second (before issue 14: 1,011 ms at the 1 s default).
    assert max(p99_gateways, p99_replicas) <= 1.0


def test_the_gateways_poll_every_half_second_by_default() -> None:
    """Finding 6: the default interval is what puts table polling's p99 under a second."""
    import subprocess

    from tests.topology._topology import default_python

    out = subprocess.run(
        [default_python(), "-m", "mcpward", "gateway", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    text = " ".join(out.split())  # click wraps the help
    assert "Seconds between revocation polls. [default: 0.5]" in text, text


async def test_embedded_at_once_and_from_the_cli_within_one_interval(
    embedded_topology: Topology,
) -> None:
    topo = embedded_topology
    own = await run_trials(topo, [(topo.issuer + "/mcp", topo.demo_resource)], [topo.issuer])
    report("embedded, revoked by the process itself", own)
    assert all(t.accepted_after == 0 for t in own)
    from_cli = [
        await trial(topo, topo.issuer + "/mcp", topo.demo_resource, "", cli=True) for _ in range(10)
    ]
    report(f"embedded, revoked by the CLI (polled every {POLL} s, 10 trials)", from_cli)
    assert all(t.delay < POLL + 0.5 for t in from_cli)
