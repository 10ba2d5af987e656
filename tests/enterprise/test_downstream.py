"""An MCP server calling a downstream API on its caller's behalf, end to end over real
HTTP: the real ``mcp`` SDK client calls the demo orders server's ``check_stock`` tool;
the tool gets a token of its own by token exchange at mcpward's server (as the MCP
server's own client) and calls the demo inventory API behind a second guard.

Every request the MCP server sends out goes through a capturing HTTP proxy (a real
server on 127.0.0.1 that records the bytes and forwards them): the canary is that the
caller's token appears in none of them except, as ``subject_token``, in the exchange
at the authorization server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mcpward._clock import FrozenClock
from mcpward.audit import AuditLog, MemorySink
from mcpward.demo import build_protected_demo
from mcpward.demo.inventory import Downstream, build_protected_inventory
from mcpward.guard import (
    DownstreamTokenError,
    DownstreamTokens,
    ExchangeRefused,
    ExchangeUnavailable,
    LocalKeys,
    Manifest,
    make_guard,
    protect,
)
from tests.conftest import serve
from tests.enterprise.conftest import DOWNSTREAM, Enterprise
from tests.enterprise.support import claims_of, dpop_proof
from tests.guard.support import bearer_client
from tests.server.conftest import RESOURCE
from tests.server.support import code_flow, public_client
from tests.services import free_port

ISSUER = "http://127.0.0.1:8400"


@dataclass
class Captured:
    method: str
    target: str
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def raw(self) -> bytes:
        head = f"{self.method} {self.target}\n".encode()
        return head + b"\n".join(k + b": " + v for k, v in self.headers) + b"\n\n" + self.body


@dataclass
class Proxy:
    """A real HTTP server that records each request, then forwards it by path prefix."""

    url: str
    requests: list[Captured] = field(default_factory=list)


@asynccontextmanager
async def capturing_proxy(routes: dict[str, str]) -> AsyncIterator[Proxy]:
    port = free_port()
    proxy = Proxy(f"http://127.0.0.1:{port}")
    forward = httpx.AsyncClient()

    async def relay(request: Request) -> Response:
        body = await request.body()
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        proxy.requests.append(Captured(request.method, target, list(request.headers.raw), body))
        prefix = next(p for p in routes if request.url.path.startswith(p))
        upstream = routes[prefix] + target[len(prefix) :]
        headers = {k: v for k, v in request.headers.items() if k not in ("host", "content-length")}
        answer = await forward.request(request.method, upstream, headers=headers, content=body)
        return Response(
            answer.content, answer.status_code, media_type=answer.headers.get("content-type")
        )

    app = Starlette(routes=[Route("/{path:path}", relay, methods=["GET", "POST"])])
    try:
        async with serve(app, port):
            yield proxy
    finally:
        await forward.aclose()


async def user_token(e: Enterprise, scope: str = "orders.read") -> dict[str, Any]:
    await public_client(e.r)
    response = await code_flow(
        e.r,
        "v" * 64,
        client_id="cli",
        redirect_uri="http://127.0.0.1:33418/callback",
        scope=scope,
    )
    return dict(response.json())


@dataclass
class Topology:
    e: Enterprise
    mcp_url: str
    proxy: Proxy
    inventory_url: str
    mcp_audit: MemorySink
    inventory_audit: MemorySink
    tokens: DownstreamTokens


@asynccontextmanager
async def topology(e: Enterprise) -> AsyncIterator[Topology]:
    keys = LocalKeys(e.r.server.keys.public_key)
    revocations = e.r.server.shared.revocations
    inventory_audit, mcp_audit = MemorySink(), MemorySink()
    inventory = build_protected_inventory(
        issuer=ISSUER,
        resource=DOWNSTREAM,
        keys=keys,
        revocations=revocations,
        audit=AuditLog([inventory_audit]),
    )
    inventory_port = free_port()
    async with (
        serve(inventory, inventory_port) as inventory_url,
        capturing_proxy({"/as": e.r.url, "/inventory": inventory_url}) as proxy,
    ):
        tokens = DownstreamTokens(
            token_endpoint=proxy.url + "/as/token",
            client_id="orders-mcp",
            client_secret=lambda: e.secrets["orders-mcp"],
        )
        protected = build_protected_demo(
            issuer=ISSUER,
            resource=RESOURCE,
            keys=keys,
            revocations=revocations,
            audit=AuditLog([mcp_audit]),
            downstream=Downstream(
                url=proxy.url + "/inventory/api", resource=DOWNSTREAM, tokens=tokens
            ),
        )
        async with protected.lifespan(), serve(protected) as mcp_base:
            try:
                yield Topology(
                    e, mcp_base + "/mcp", proxy, inventory_url, mcp_audit, inventory_audit, tokens
                )
            finally:
                await tokens.aclose()


async def call(url: str, token: str, tool: str, arguments: dict[str, Any]) -> Any:
    async with Client(streamable_http_client(url, http_client=bearer_client(token))) as client:
        return await client.call_tool(tool, arguments)


async def test_a_tool_calls_the_downstream_api_with_an_exchanged_token(
    enterprise: Enterprise,
) -> None:
    async with topology(enterprise) as t:
        inbound = (await user_token(enterprise))["access_token"]
        first = await call(t.mcp_url, inbound, "check_stock", {"order_id": "ord_1003"})
        second = await call(t.mcp_url, inbound, "check_stock", {"order_id": "ord_1001"})
        assert not first.is_error and not second.is_error, first
        assert first.structured_content == {
            "order_id": "ord_1003",
            "in_stock": 12,
            "for": "user-1",
            "acting": ["orders-mcp"],
        }
        assert second.structured_content["in_stock"] == 3

        exchanges = [c for c in t.proxy.requests if c.target == "/as/token"]
        api_calls = [c for c in t.proxy.requests if c.target.startswith("/inventory/")]
        # Cached per caller and audience: two calls, one exchange.
        assert len(exchanges) == 1 and len(api_calls) == 2
        form = {k: v[0] for k, v in parse_qs(exchanges[0].body.decode()).items()}
        assert form["subject_token"] == inbound
        assert form["resource"] == DOWNSTREAM and form["scope"] == "inventory.read"

        # The canary: the inbound token, whole or its claims or signature part, is in no
        # other request. (Its JOSE header is every token's of this server: not a secret.)
        _header, payload, signature = inbound.split(".")
        pieces = [inbound.encode(), payload.encode(), signature.encode()]
        for captured in t.proxy.requests:
            if captured is exchanges[0]:
                # Only as the form value, once, in the exchange at the authorization server.
                assert captured.raw.count(inbound.encode()) == 1
                continue
            assert not any(p in captured.raw for p in pieces), captured.target
        # The downstream API saw its own token: its audience, the MCP server acting.
        sent = next(v for k, v in api_calls[0].headers if k == b"authorization").decode()
        downstream = claims_of(sent.removeprefix("Bearer "))
        assert downstream["aud"] == DOWNSTREAM and downstream["act"] == {"sub": "orders-mcp"}
        assert downstream["sid"] == claims_of(inbound)["sid"]

        # Both guards audit the call; the inventory's names who acted.
        stock_events = [x for x in t.inventory_audit.events() if x["event"] == "mcp.request"]
        assert stock_events[0]["detail"] == {"actor_chain": "orders-mcp"}
        assert stock_events[0]["subject"] == "user-1"


async def test_revoking_the_persons_grant_stops_the_downstream_token(
    enterprise: Enterprise,
) -> None:
    async with topology(enterprise) as t:
        tokens = await user_token(enterprise)
        await call(t.mcp_url, tokens["access_token"], "check_stock", {"order_id": "ord_1003"})
        api_call = next(c for c in t.proxy.requests if c.target.startswith("/inventory/"))
        sent = next(v for k, v in api_call.headers if k == b"authorization").decode()
        async with httpx.AsyncClient() as http:
            before = await http.get(
                t.inventory_url + "/api/stock/ord_1003", headers={"authorization": sent}
            )
            assert before.status_code == 200
            revoked = await enterprise.r.http.post(
                "/revoke", data={"token": tokens["refresh_token"], "client_id": "cli"}
            )
            assert revoked.status_code == 200
            after = await http.get(
                t.inventory_url + "/api/stock/ord_1003", headers={"authorization": sent}
            )
        assert after.status_code == 401
        assert 'error="invalid_token"' in after.headers["www-authenticate"]


async def test_exchange_failures_reach_the_tool_code_as_typed_errors(
    enterprise: Enterprise,
) -> None:
    """Behind the real guard, a small app asks for tokens: refused by policy (an audience
    the policy does not name), the authorization server down, no verified caller."""
    e = enterprise
    keys = LocalKeys(e.r.server.keys.public_key)
    dead = f"http://127.0.0.1:{free_port()}/token"
    good = DownstreamTokens(
        token_endpoint=e.r.url + "/token",
        client_id="orders-mcp",
        client_secret=e.secrets["orders-mcp"],
    )
    down = DownstreamTokens(token_endpoint=dead, client_id="orders-mcp", client_secret="x")

    async def endpoint(request: Request) -> JSONResponse:
        try:
            if request.query_params.get("as") == "down":
                await down.token_for(request, DOWNSTREAM)
            else:
                await good.token_for(request, request.query_params["audience"])
        except ExchangeRefused as refused:
            return JSONResponse({"refused": refused.error, "status": refused.status})
        except ExchangeUnavailable as unavailable:
            return JSONResponse({"unavailable": str(unavailable)})
        return JSONResponse({"ok": True})

    guard = make_guard(issuer=ISSUER, resource=RESOURCE, manifest=Manifest(name="t"), keys=keys)
    app = protect(Starlette(routes=[Route("/t", endpoint)]), guard)
    inbound = (await user_token(e))["access_token"]
    async with (
        serve(app) as base,
        httpx.AsyncClient(headers={"authorization": f"Bearer {inbound}"}) as http,
    ):
        ok = await http.get(base + "/t", params={"audience": DOWNSTREAM})
        assert ok.json() == {"ok": True}
        refused = await http.get(base + "/t", params={"audience": "https://other.example/mcp"})
        assert refused.json() == {"refused": "invalid_target", "status": 400}
        unavailable = await http.get(base + "/t", params={"as": "down"})
        assert unavailable.json() == {
            "unavailable": "the authorization server is unreachable: ConnectError"
        }
    with pytest.raises(DownstreamTokenError, match="no request verified"):
        await good.token_for({"type": "http", "headers": []}, DOWNSTREAM)
    await good.aclose()
    await down.aclose()


async def test_one_exchange_for_concurrent_calls_and_a_new_one_near_expiry(
    enterprise: Enterprise,
) -> None:
    e = enterprise
    keys = LocalKeys(e.r.server.keys.public_key)
    clock = FrozenClock(e.r.clock())
    seen: list[str] = []

    async def record(request: httpx.Request) -> None:
        seen.append(request.url.path)

    http = httpx.AsyncClient(event_hooks={"request": [record]})
    tokens = DownstreamTokens(
        token_endpoint=e.r.url + "/token",
        client_id="orders-mcp",
        client_secret=e.secrets["orders-mcp"],
        http=http,
        clock=clock,
        refresh_before=30,
    )

    async def endpoint(request: Request) -> JSONResponse:
        got = await asyncio.gather(*(tokens.token_for(request, DOWNSTREAM) for _ in range(10)))
        return JSONResponse({"distinct": len(set(got))})

    guard = make_guard(issuer=ISSUER, resource=RESOURCE, manifest=Manifest(name="t"), keys=keys)
    app = protect(Starlette(routes=[Route("/t", endpoint)]), guard)
    inbound = (await user_token(e))["access_token"]
    async with (
        serve(app) as base,
        httpx.AsyncClient(headers={"authorization": f"Bearer {inbound}"}) as client,
    ):
        assert (await client.get(base + "/t")).json() == {"distinct": 1}
        assert len(seen) == 1
        clock.advance(60)  # 120 s lifetime, refreshed 30 s before: still cached
        await client.get(base + "/t")
        assert len(seen) == 1
        clock.advance(31)
        await client.get(base + "/t")
        assert len(seen) == 2
    await http.aclose()


async def test_a_dpop_bound_inbound_token_is_exchanged_too(enterprise: Enterprise) -> None:
    """The caller holds a DPoP-bound token and proves its key to the guard; the MCP server
    exchanges that token (it needs no proof of the caller's key to do so)."""
    e = enterprise
    key = ec.generate_private_key(ec.SECP256R1())
    proof, jkt = dpop_proof(key, ISSUER + "/token")
    bound = await e.r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=e.basic("orders-mcp"),
        headers={"DPoP": proof},
    )
    inbound = bound.json()["access_token"]
    assert claims_of(inbound)["cnf"] == {"jkt": jkt}
    tokens = DownstreamTokens(
        token_endpoint=e.r.url + "/token",
        client_id="orders-mcp",
        client_secret=e.secrets["orders-mcp"],
    )

    async def endpoint(request: Request) -> JSONResponse:
        token = await tokens.token_for(request, DOWNSTREAM)
        return JSONResponse({"aud": claims_of(token)["aud"]})

    keys = LocalKeys(e.r.server.keys.public_key)
    guard = make_guard(issuer=ISSUER, resource=RESOURCE, manifest=Manifest(name="t"), keys=keys)
    app = protect(Starlette(routes=[Route("/t", endpoint)]), guard)
    async with serve(app) as base, httpx.AsyncClient() as http:
        at_resource, _ = dpop_proof(key, "http://127.0.0.1:8400/t", "GET", inbound)
        answer = await http.get(
            base + "/t", headers={"authorization": f"DPoP {inbound}", "dpop": at_resource}
        )
    await tokens.aclose()
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"aud": DOWNSTREAM}
