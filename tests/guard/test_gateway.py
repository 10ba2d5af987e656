"""The gateway in front of a real ``mcp`` SDK server (standing in for a server in any
language), driven by the real SDK client: sessions, SSE streaming, no token passthrough."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio
import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError

from mcpward.audit import AuditLog, MemorySink
from mcpward.demo import create_demo_server, demo_manifest
from mcpward.guard import Manifest, StaticKeys, make_guard
from mcpward.guard.gateway import create_gateway

from .support import Minter, bearer_client, eventually, free_port, serve

UPSTREAM_KEY = "upstream-service-key"


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, Minter, MemorySink]]:
    server = create_demo_server(progress_delay=0.2)

    @server.tool(description="What the upstream server saw")
    def upstream_view(ctx: Context) -> dict[str, Any]:
        headers = ctx.headers or {}
        return {"authorization": headers.get("authorization"), "dpop": headers.get("dpop")}

    manifest_dict = demo_manifest().to_dict()
    manifest_dict["tools"].append({"name": "upstream_view", "scopes_required": []})
    manifest = Manifest.from_dict(manifest_dict)

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(resource=resource)
    sink = MemorySink()
    with serve(server.streamable_http_app()) as upstream:
        guard = make_guard(
            issuer=minter.issuer,
            resource=resource,
            manifest=manifest,
            keys=StaticKeys(minter.jwks()),
            audit=AuditLog([sink]),
        )
        app = create_gateway(
            f"{upstream}/mcp", guard, upstream_headers={"Authorization": f"Bearer {UPSTREAM_KEY}"}
        )
        with serve(app, port) as base:
            yield f"{base}/mcp", minter, sink


async def test_session_tools_and_no_token_passthrough(gateway: Any) -> None:
    url, minter, sink = gateway
    token = minter.mint("orders.read")
    async with Client(streamable_http_client(url, http_client=bearer_client(token))) as c:
        granted = {
            t.name: (t.meta or {})["io.mcpward/scopes"]["granted"]
            for t in (await c.list_tools()).tools
        }
        assert granted == {
            "search_orders": True,
            "export_orders": True,
            "whoami": True,
            "upstream_view": True,
            "refund_order": False,
        }
        result = await c.call_tool("search_orders", {"query": "paid"})
        assert "ord_1003" in str(result.structured_content)
        seen = await c.call_tool("upstream_view", {})
    # The upstream saw the injected credential, never the client's token.
    assert seen.structured_content == {"authorization": f"Bearer {UPSTREAM_KEY}", "dpop": None}
    await eventually(lambda: any(e.get("method") == "server/discover" for e in sink.events()))


async def test_handshake_era_client_session_through_the_gateway(gateway: Any) -> None:
    """A 2025-11-25 client: initialize, a session (Mcp-Session-Id both ways), the GET
    stream, and the DELETE that ends the session, all through the gateway."""
    url, minter, sink = gateway
    token = minter.mint("orders.read", sub="ivy")
    http = bearer_client(token)
    async with Client(streamable_http_client(url, http_client=http), mode="legacy") as c:
        assert c.protocol_version == "2025-11-25"
        result = await c.call_tool("search_orders", {"query": "paid"})
        assert not result.is_error

    def methods() -> list[tuple[str, str]]:
        return [
            (e["method"], e["outcome"])
            for e in sink.events()
            if e.get("subject") == "ivy" and e["event"] == "mcp.request"
        ]

    await eventually(lambda: ("DELETE", "ok") in methods())
    assert ("initialize", "ok") in methods()
    assert ("tools/call", "ok") in methods()


async def test_sse_progress_streams_through_as_it_arrives(gateway: Any) -> None:
    """Progress events arrive one by one (0.2 s apart upstream), not in one lump at the
    end: each is seen before the tool's result."""
    url, minter, _ = gateway
    import time

    arrivals: list[float] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        arrivals.append(time.monotonic())

    token = minter.mint("orders.read")
    async with Client(streamable_http_client(url, http_client=bearer_client(token))) as c:
        result = await c.call_tool("export_orders", {"batches": 3}, progress_callback=on_progress)
        done = time.monotonic()
    assert not result.is_error
    assert len(arrivals) == 3
    # Streamed: the first event came well before the result (>= one 0.2 s step).
    assert done - arrivals[0] >= 0.3


async def test_gateway_denies_per_tool_with_403(gateway: Any) -> None:
    url, minter, sink = gateway
    token = minter.mint("orders.read", sub="mallory")
    async with Client(streamable_http_client(url, http_client=bearer_client(token))) as c:
        with pytest.raises(MCPError):
            await c.call_tool("refund_order", {"order_id": "ord_1001"})
    await eventually(lambda: any(e.get("subject") == "mallory" for e in sink.events()))
    events = [e for e in sink.events() if e.get("subject") == "mallory" and e.get("tool")]
    assert [e["outcome"] for e in events] == ["forbidden"]


async def test_gateway_without_token_and_prm(gateway: Any) -> None:
    url, _, _ = gateway
    base = url.removesuffix("/mcp")
    async with httpx.AsyncClient() as http:
        r = await http.get(url, headers={"accept": "text/event-stream"})
        assert r.status_code == 401
        prm = (await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")).json()
    assert prm["resource"] == url


async def test_upstream_down_is_502(minter: Minter) -> None:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    m = Minter(resource=resource)
    guard = make_guard(
        issuer=m.issuer,
        resource=resource,
        manifest=demo_manifest(),
        keys=StaticKeys(m.jwks()),
    )
    app = create_gateway(f"http://127.0.0.1:{free_port()}/mcp", guard)
    with serve(app, port) as base:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{base}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"authorization": f"Bearer {m.mint()}"},
            )
    assert r.status_code == 502


async def test_upstream_refusing_the_gateway_credential_is_502_not_401() -> None:
    """Were the upstream's 401 passed on, the client would re-authorize in vain."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def refuse(request: Request) -> Response:
        challenge = {"www-authenticate": 'Bearer error="invalid_token"'}
        return Response("no", status_code=401, headers=challenge)

    refusing = Starlette(routes=[Route("/mcp", refuse, methods=["POST"])])

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    m = Minter(resource=resource)
    guard = make_guard(
        issuer=m.issuer, resource=resource, manifest=demo_manifest(), keys=StaticKeys(m.jwks())
    )
    with serve(refusing) as upstream:
        app = create_gateway(f"{upstream}/mcp", guard)
        with serve(app, port) as base:
            async with httpx.AsyncClient() as http:
                r = await http.post(
                    f"{base}/mcp",
                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                    headers={"authorization": f"Bearer {m.mint()}"},
                )
    assert r.status_code == 502
    assert "www-authenticate" not in r.headers


async def test_client_dropping_mid_sse_leaves_the_gateway_working(gateway: Any) -> None:
    """Real HTTP both sides: a client that goes away in the middle of an SSE-streamed tool
    call (connection closed after the first progress event) does not break the gateway;
    the next requests are served, and the dropped call is still audited."""
    url, minter, sink = gateway
    token = minter.mint("orders.read", sub="dropper")
    headers = {
        "authorization": f"Bearer {token}",
        "accept": "application/json, text/event-stream",
        "content-type": "application/json",
        "mcp-protocol-version": "2025-11-25",
    }
    for attempt in range(2):
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            init = await http.post(
                url,
                json={
                    "jsonrpc": "2.0",
                    "id": 0,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "dropper", "version": "1"},
                    },
                },
            )
            assert init.status_code == 200
            session = {"mcp-session-id": init.headers["mcp-session-id"]}
            note = {"jsonrpc": "2.0", "method": "notifications/initialized"}
            assert (await http.post(url, json=note, headers=session)).status_code == 202
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "export_orders",
                    "arguments": {"batches": 20},  # 20 x 0.2 s: far from done when we drop
                    "_meta": {"progressToken": f"p{attempt}"},
                },
            }
            async with http.stream("POST", url, json=call, headers=session) as r:
                assert r.status_code == 200
                assert r.headers["content-type"].startswith("text/event-stream")
                async for line in r.aiter_lines():
                    if "notifications/progress" in line:
                        break  # one progress event seen: now drop the connection
        # The client (and its connection) is gone mid-stream.

        # The gateway still answers, promptly, on fresh connections.
        async with Client(streamable_http_client(url, http_client=bearer_client(token))) as c:
            with anyio.fail_after(5):
                result = await c.call_tool("search_orders", {"query": "paid"})
        assert not result.is_error
        assert "ord_1003" in str(result.structured_content)

    def dropped_calls() -> list[dict[str, Any]]:
        return [
            e
            for e in sink.events()
            if e.get("subject") == "dropper"
            and e["event"] == "mcp.tool_call"
            and e.get("tool") == "export_orders"
        ]

    # Each dropped call still got its audit event once the gateway noticed.
    await eventually(lambda: len(dropped_calls()) == 2)


async def test_upstream_body_limit_is_413(minter: Minter) -> None:
    """The forwarding side bounds the body too (the guard's 4 MiB unless told otherwise):
    a body within the guard's limit but over the upstream's is refused with 413, and never
    reaches the upstream server."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    reached: list[bytes] = []

    async def answer(request: Request) -> JSONResponse:
        reached.append(await request.body())
        return JSONResponse({"jsonrpc": "2.0", "id": 2, "result": {}})

    upstream_app = Starlette(routes=[Route("/mcp", answer, methods=["POST"])])

    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    m = Minter(resource=resource)
    guard = make_guard(
        issuer=m.issuer, resource=resource, manifest=demo_manifest(), keys=StaticKeys(m.jwks())
    )
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "search_orders", "arguments": {"query": "x" * 200}},
    }
    with serve(upstream_app) as upstream:
        app = create_gateway(f"{upstream}/mcp", guard, max_body=128)
        with serve(app, port) as base:
            async with httpx.AsyncClient() as http:
                r = await http.post(
                    f"{base}/mcp", json=call, headers={"authorization": f"Bearer {m.mint()}"}
                )
                small = await http.post(
                    f"{base}/mcp",
                    json={"jsonrpc": "2.0", "id": 2, "method": "ping"},
                    headers={"authorization": f"Bearer {m.mint()}"},
                )
    assert (r.status_code, r.text) == (413, "the request body is too large")
    assert small.status_code == 200
    assert len(reached) == 1 and b'"ping"' in reached[0]  # only the small one went upstream


async def test_a_dpop_bound_token_through_the_gateway(gateway: Any) -> None:
    """The gateway checks the proof like the guard does, and passes neither the token nor
    the proof upstream."""
    from mcpward.dpop import ProofKey

    url, minter, _ = gateway
    key = ProofKey.generate()
    token = minter.mint("orders.read", cnf={"jkt": key.jkt})

    async def prove(request: Any) -> None:
        request.headers["authorization"] = f"DPoP {token}"
        request.headers["dpop"] = key.proof(request.method, str(request.url), access_token=token)

    http = bearer_client(None, event_hooks={"request": [prove]})
    async with Client(streamable_http_client(url, http_client=http)) as c:
        seen = await c.call_tool("upstream_view", {})
    assert seen.structured_content == {"authorization": f"Bearer {UPSTREAM_KEY}", "dpop": None}
    async with httpx.AsyncClient() as plain:
        downgraded = await plain.post(
            url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"authorization": f"Bearer {token}"},
        )
    assert downgraded.status_code == 401
