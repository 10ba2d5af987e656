"""The outage matrix on a running topology (2 replicas, 2 gateways, Redis, PostgreSQL, a
Loki receiver, HAProxy): each dependency is stopped for real, every component is asked,
and each answers what the README's outage table specifies — 503 with Retry-After and an
OAuth, JSON-RPC or HTML body where it cannot answer, the usual answer where it needs
nothing that is down, never a 500 or a traceback — with one log line per outage per
process and subsystem; everything recovers without a restart and nothing is lost
(revocations made during or before a Redis outage are refused after it; audit events
made during a Loki outage reach Loki after it). Then a replica is killed (kill -9) and the
others serve on (rolling restarts: test_rolling_restart.py)."""

from __future__ import annotations

import asyncio
import base64
import html
import json
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from urllib.parse import urlencode

import httpx
import pytest

from tests.topology import Spec, Topology, topology, wait_for
from tests.topology._clients import McpSession, agent_token, refresh_form, revoke, sign_in

pytestmark = [pytest.mark.postgres, pytest.mark.redis]


@pytest.fixture(scope="module")
def topo() -> Iterator[Topology]:
    with topology(Spec(replicas=2, gateways=2, kind="redis", loki=True)) as running:
        yield running


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: bool
    body: str  # "oauth:<error>", "jsonrpc:<error>", "html", "json" or ""

    def __str__(self) -> str:
        return f"{self.status}{' RA' if self.retry_after else ''} {self.body}".strip()


def answer(resp: httpx.Response) -> Answer:
    kind = resp.headers.get("content-type", "").split(";")[0]
    body = ""
    if kind == "application/json":
        data = resp.json()
        if isinstance(data, dict) and "jsonrpc" in data:
            body = "jsonrpc:" + str(data.get("error", {}).get("data", {}).get("error", "ok"))
        elif isinstance(data, dict) and "error" in data:
            body = "oauth:" + str(data["error"])
        else:
            body = "json"
    elif kind == "text/html":
        body = "html"
    elif kind == "text/event-stream":
        body = "sse"
    return Answer(resp.status_code, "retry-after" in resp.headers, body)


class Probe:
    """Asks every component once; sessions and tokens are made while all is well."""

    def __init__(self, topo: Topology, http: httpx.AsyncClient) -> None:
        self.topo = topo
        self.http = http
        self.replica = topo.replicas[0].url

    async def prepare(self) -> None:
        topo = self.topo
        self.refresh_token = (await sign_in(topo))["refresh_token"]
        guard_token = await agent_token(topo, topo.demo_resource)
        gateway_token = await agent_token(topo, topo.resource)
        self.guard = await McpSession.open(self.http, self.replica + "/mcp", guard_token)
        self.gateway = await McpSession.open(self.http, topo.gateways[0].mcp, gateway_token)
        # Every process is asked during an outage, so each has something to log.
        self.others = [
            await McpSession.open(self.http, topo.gateways[1].mcp, gateway_token),
            await McpSession.open(self.http, topo.replicas[1].url + "/mcp", guard_token),
        ]

    async def ask(self) -> dict[str, Answer]:
        topo, http, base = self.topo, self.http, self.replica
        agent = (topo.credentials.agent_id, topo.credentials.agent_secret)
        cc = {"grant_type": "client_credentials", "resource": topo.resource}
        found: dict[str, httpx.Response] = {
            "metadata": await http.get(base + "/.well-known/oauth-authorization-server"),
            "jwks": await http.get(base + "/jwks.json"),
            "token": await http.post(base + "/token", data=cc, auth=agent),
            "revoke": await http.post(base + "/revoke", data={"token": "x"}, auth=agent),
            "register": await http.post(
                base + "/register",
                json={"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "probe"},
            ),
            "readyz": await http.get(base + "/readyz"),
            "healthz": await http.get(base + "/healthz"),
            "sign-in page": await http.get(
                base + "/authorize?" + urlencode(self.authorize_params())
            ),
            "sign-in": await self._sign_in_post(),
        }
        refreshed = await http.post(base + "/token", data=refresh_form(topo, self.refresh_token))
        if refreshed.status_code == 200:
            self.refresh_token = refreshed.json()["refresh_token"]
        found["refresh"] = refreshed
        found["guard"] = await self.guard.send("ping")
        found["gateway"] = await self.gateway.send("ping")
        found["balancer"] = await http.get(topo.issuer + "/.well-known/oauth-authorization-server")
        return {name: answer(resp) for name, resp in found.items()}

    def authorize_params(self) -> dict[str, str]:
        return {
            "response_type": "code",
            "client_id": self.topo.public_client,
            "redirect_uri": self.topo.redirect_uri,
            "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
            "code_challenge_method": "S256",
            "state": "s",
            "resource": self.topo.demo_resource,
        }

    async def _sign_in_post(self) -> httpx.Response:
        """A sign-in with a wrong password (the throttle and the user store are asked)."""
        async with httpx.AsyncClient(base_url=self.replica, timeout=30) as browser:
            page = await browser.get("/authorize?" + urlencode(self.authorize_params()))
            if page.status_code != 200:
                return page
            found = re.findall(r'name="(csrf|request)" value="([^"]*)"', page.text)
            fields = {name: html.unescape(value) for name, value in found}
            return await browser.post(
                "/login",
                data={**fields, "username": "nobody", "password": "not the password 1"},
            )


ALL_WELL = {
    "metadata": "200 json",
    "jwks": "200 json",
    "token": "200 json",
    "revoke": "200",
    "register": "201 json",
    "readyz": "200 json",
    "healthz": "200 json",
    "sign-in page": "200 html",
    "sign-in": "401 html",  # the form again, saying the password is wrong
    "refresh": "200 json",
    "guard": "200 sse",
    "gateway": "200 sse",
    "balancer": "200 json",
}
UNAVAILABLE = "503 RA oauth:temporarily_unavailable"
GUARD_UNAVAILABLE = "503 RA jsonrpc:temporarily_unavailable"
REDIS_DOWN = {
    **ALL_WELL,
    "register": UNAVAILABLE,  # the per-address registration limit lives in Redis
    "sign-in": "503 RA html",  # the sign-in throttle lives in Redis
    "guard": GUARD_UNAVAILABLE,  # revocations cannot be checked: fail closed
    "gateway": GUARD_UNAVAILABLE,
}
POSTGRES_DOWN = {
    **ALL_WELL,
    "token": UNAVAILABLE,
    "revoke": UNAVAILABLE,
    "register": UNAVAILABLE,
    "readyz": "503 json",
    "sign-in page": "503 RA html",
    "sign-in": "503 RA html",
    "refresh": UNAVAILABLE,
    # No replica is ready: the balancer answers like a replica would.
    "balancer": UNAVAILABLE,
}


def table(answers: dict[str, Answer]) -> dict[str, str]:
    return {name: str(a) for name, a in answers.items()}


def outage_lines(text: str, what: str) -> list[str]:
    return [line for line in text.splitlines() if f"{what} unreachable" in line]


def logs(topo: Topology) -> dict[str, str]:
    found = {f"replica {r.index}": r.log() for r in topo.replicas}
    found.update({f"gateway {g.index}": g.log() for g in topo.gateways})
    return found


def print_matrix(title: str, answers: dict[str, str]) -> None:
    print(f"\n{title}: " + "; ".join(f"{k} {v}" for k, v in answers.items()))


async def test_everything_answers_when_all_is_well(topo: Topology) -> None:
    async with httpx.AsyncClient(timeout=30) as http:
        probe = Probe(topo, http)
        await probe.prepare()
        assert table(await probe.ask()) == ALL_WELL


async def test_redis_outage(topo: Topology) -> None:
    assert topo.redis is not None
    async with httpx.AsyncClient(timeout=30) as http:
        probe = Probe(topo, http)
        await probe.prepare()
        before = await agent_token(topo, topo.resource)  # revoked before the outage
        await revoke(topo, before, base=topo.replicas[0].url)
        during = await agent_token(topo, topo.resource)
        marks = {name: len(text) for name, text in logs(topo).items()}

        topo.redis.stop()
        try:
            answers = table(await probe.ask())
            for _ in range(20):  # many failing requests, still one line each
                for session in [probe.gateway, probe.guard, *probe.others]:
                    assert await alive(topo, session.probe()) == 503
            # Revoked while Redis is down: durable in the log, published later by the relay.
            await revoke(topo, during, base=topo.replicas[1].url)
        finally:
            outage_logs = logs(topo)
            topo.redis.start()  # empty: it kept nothing of what it held
        print_matrix("Redis down", answers)
        assert answers == REDIS_DOWN
        for name, text in outage_logs.items():
            fresh = text[marks[name] :]
            assert "Traceback" not in fresh, name
            assert len(outage_lines(fresh, "redis")) == 1, (name, fresh)

        async def gateway_back() -> bool:
            return await probe.gateway.probe() == 200

        await eventually(gateway_back, "gateway recovery")
        assert table(await probe.ask()) == {**ALL_WELL, "register": "201 json"}
        for token in (before, during):  # nothing lost
            session = McpSession(http, topo.gateways[1].mcp, token)

            async def refused(s: McpSession = session) -> bool:
                return await s.probe() == 401

            await eventually(refused, "the revocation republished")


async def alive(topo: Topology, answer: Awaitable[int]) -> int:
    """The status, or which process of the topology died if nothing answered."""
    try:
        return await answer
    except httpx.TransportError:
        topo.check_alive()
        raise


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + 60
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_postgres_outage(topo: Topology) -> None:
    assert topo.postgres is not None
    async with httpx.AsyncClient(timeout=30) as http:
        probe = Probe(topo, http)
        await probe.prepare()
        marks = {name: len(r.log()) for name, r in zip(["0", "1"], topo.replicas, strict=True)}
        topo.postgres.stop()
        try:
            answers = await _while_postgres_is_down(topo, http, probe)
        finally:
            outage_logs = [r.log() for r in topo.replicas]
            topo.postgres.start()
        print_matrix("PostgreSQL down", answers)
        assert answers == POSTGRES_DOWN
        for name, text in zip(["0", "1"], outage_logs, strict=True):
            fresh = text[marks[name] :]
            assert "Traceback" not in fresh
            assert len(outage_lines(fresh, "storage")) == 1, fresh

        async def ready() -> bool:
            urls = [r.url for r in topo.replicas] + [topo.issuer]
            statuses = [(await http.get(u + "/readyz")).status_code for u in urls]
            return statuses == [200] * len(urls)

        await eventually(ready, "readiness after PostgreSQL returned")
        assert table(await probe.ask()) == ALL_WELL
        for replica in topo.replicas:
            assert "storage reachable again" in replica.log()


async def _while_postgres_is_down(
    topo: Topology, http: httpx.AsyncClient, probe: Probe
) -> dict[str, str]:
    # Client lookups are cached for 2 s: wait until the pages and the token endpoint
    # need storage.
    agent = (topo.credentials.agent_id, topo.credentials.agent_secret)
    cc = {"grant_type": "client_credentials", "resource": topo.resource}
    authorize = probe.replica + "/authorize?" + urlencode(probe.authorize_params())

    async def cache_expired() -> bool:
        token = await http.post(probe.replica + "/token", data=cc, auth=agent)
        page = await http.get(authorize)
        return (token.status_code, page.status_code) == (503, 503)

    await eventually(cache_expired, "the client cache to expire")
    return table(await probe.ask())


def jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


async def test_loki_outage_loses_no_audit_event(topo: Topology) -> None:
    loki = topo.loki
    assert loki is not None
    async with httpx.AsyncClient(timeout=30) as http:
        probe = Probe(topo, http)
        await probe.prepare()
        marks = {name: len(text) for name, text in logs(topo).items()}
        loki.stop()
        try:
            answers = table(await probe.ask())
            issued = [await agent_token(topo, topo.resource, base=r.url) for r in topo.replicas * 3]
            for _ in range(5):
                assert await probe.gateway.probe() == 200
            # Each process notices on its next flush (every second).
            for name in marks:
                wait_for(
                    lambda n=name: len(outage_lines(logs(topo)[n][marks[n] :], "Loki")) == 1,
                    what=f"{name} logging the Loki outage",
                )
        finally:
            loki.start()
        print_matrix("Loki down", answers)
        assert answers == ALL_WELL
        wanted = {jti(t) for t in issued}
        wait_for(
            lambda: wanted <= {e.get("jti") for e in loki.lines()}, what="queued events delivered"
        )
        gateway_events = [e for e in loki.lines() if e["labels"]["service"] == "mcpward-gateway"]
        assert gateway_events
        for name, text in logs(topo).items():
            fresh = text[marks[name] :]
            assert "Traceback" not in fresh
            assert len(outage_lines(fresh, "Loki")) == 1, (name, fresh)
        for token in issued:
            assert all(token not in json.dumps(line) for line in loki.lines())


async def test_a_killed_replica_leaves_the_others_serving(topo: Topology) -> None:
    agent = (topo.credentials.agent_id, topo.credentials.agent_secret)
    cc = {"grant_type": "client_credentials", "resource": topo.resource}
    async with httpx.AsyncClient(base_url=topo.issuer, timeout=30) as http:
        topo.replicas[0].kill()
        statuses = [(await http.post("/token", data=cc, auth=agent)).status_code for _ in range(40)]
        topo.replicas[0].start()
    assert statuses == [200] * 40
