"""The guard in front of a real ``mcp`` SDK server, driven by the real ``mcp`` SDK client
over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.audit import AuditLog, MemorySink
from mcpward.demo import build_protected_demo
from mcpward.guard import StaticKeys

from .support import Minter, bearer_client, eventually, free_port, serve


@pytest.fixture(scope="module")
def demo() -> Iterator[tuple[str, Minter, MemorySink]]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(resource=resource)
    sink = MemorySink()
    app = build_protected_demo(
        issuer=minter.issuer,
        resource=resource,
        keys=StaticKeys(minter.jwks()),
        audit=AuditLog([sink]),
    )
    with serve(app, port) as base:
        yield base, minter, sink


def client(base: str, token: str | None, mode: str = "auto") -> Client:
    transport = streamable_http_client(f"{base}/mcp", http_client=bearer_client(token))
    return Client(transport, mode=mode)


# "auto" negotiates MCP 2026-07-28 (no session); "legacy" is a 2025-11-25 client (a
# session; this server answers with SSE events): the list is annotated either way.
@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_list_shows_every_tool_with_its_scopes(demo: Any, mode: str) -> None:
    base, minter, _ = demo
    async with client(base, minter.mint("orders.read"), mode) as c:
        tools = {
            t.name: (t.meta or {}).get("io.mcpward/scopes") for t in (await c.list_tools()).tools
        }
    assert tools == {
        "search_orders": {"required": ["orders.read"], "granted": True},
        "export_orders": {"required": ["orders.read"], "granted": True},
        "whoami": {"required": [], "granted": True},
        "refund_order": {"required": ["orders.write", "refund.admin"], "granted": False},
    }
    async with client(base, minter.mint("orders.read orders.write refund.admin"), mode) as c:
        granted = {
            t.name: (t.meta or {})["io.mcpward/scopes"]["granted"]
            for t in (await c.list_tools()).tools
        }
    assert granted == dict.fromkeys(
        ("search_orders", "export_orders", "whoami", "refund_order"), True
    )


async def test_allowed_tool_call_succeeds_and_tool_sees_the_caller(demo: Any) -> None:
    base, minter, sink = demo
    token = minter.mint("orders.read", sub="alice", client_id="agent-7")
    async with client(base, token) as c:
        result = await c.call_tool("search_orders", {"query": "acme"})
        assert not result.is_error
        assert "ord_1001" in str(result.structured_content)
        who = await c.call_tool("whoami", {})
    assert who.structured_content == {
        "subject": "alice",
        "client_id": "agent-7",
        "scopes": ["orders.read"],
    }

    def calls_of_alice() -> list[dict[str, Any]]:
        return [
            e for e in sink.events() if e["event"] == "mcp.tool_call" and e["subject"] == "alice"
        ]

    await eventually(lambda: len(calls_of_alice()) == 2)
    calls = calls_of_alice()
    assert {e["tool"] for e in calls} == {"search_orders", "whoami"}
    assert all(e["outcome"] == "ok" and e["client_id"] == "agent-7" for e in calls)
    assert all("duration_ms" in e and "request_id" in e and e["jti"] for e in calls)
    assert all(token not in line for line in sink.lines)


async def test_per_tool_denial_is_http_403_not_a_tool_error(demo: Any) -> None:
    base, minter, sink = demo
    token = minter.mint("orders.read", sub="bob")
    async with client(base, token) as c:
        with pytest.raises(MCPError) as excinfo:
            await c.call_tool("refund_order", {"order_id": "ord_1001"})
    assert "lacks scopes" in str(excinfo.value)
    await eventually(lambda: any(e.get("subject") == "bob" for e in sink.events()))
    denied = [e for e in sink.events() if e.get("tool") == "refund_order" and e["subject"] == "bob"]
    assert denied[0]["outcome"] == "forbidden"

    # The same call over plain HTTP: the status and challenge a client steps up from.
    body = {
        "jsonrpc": "2.0",
        "id": 7,
        "method": "tools/call",
        "params": {"name": "refund_order", "arguments": {"order_id": "ord_1001"}},
    }
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{base}/mcp",
            json=body,
            headers={
                "authorization": f"Bearer {token}",
                "accept": "application/json, text/event-stream",
            },
        )
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    # Accumulated: what the call needs plus what the token already holds.
    assert 'scope="orders.read orders.write refund.admin"' in challenge
    assert f'resource_metadata="{base}/.well-known/oauth-protected-resource/mcp"' in challenge
    assert r.json()["id"] == 7


async def test_refund_with_both_scopes(demo: Any) -> None:
    base, minter, sink = demo
    token = minter.mint("orders.write refund.admin", sub="carol")
    async with client(base, token) as c:
        result = await c.call_tool("refund_order", {"order_id": "ord_1003"})
        failed = await c.call_tool("refund_order", {"order_id": "no-such-order"})
    assert result.structured_content == {"order_id": "ord_1003", "refunded": 980.0, "by": "carol"}
    assert failed.is_error

    def outcomes() -> list[str]:
        return [
            e["outcome"]
            for e in sink.events()
            if e["event"] == "mcp.tool_call" and e["subject"] == "carol"
        ]

    # A tool that fails is audited as "error", though the HTTP exchange was a 200.
    await eventually(lambda: len(outcomes()) == 2)
    assert outcomes() == ["ok", "error"]


async def test_progress_streams_over_sse(demo: Any) -> None:
    base, minter, _ = demo
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with client(base, minter.mint("orders.read")) as c:
        result = await c.call_tool("export_orders", {"batches": 3}, progress_callback=on_progress)
    assert not result.is_error
    assert [p for p, _, _ in seen] == [1, 2, 3]


async def test_without_token_401_points_at_metadata(demo: Any) -> None:
    base, _, _ = demo
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{base}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert r.status_code == 401
        where = f"{base}/.well-known/oauth-protected-resource/mcp"
        # Bearer first (what clients that speak only Bearer read), then DPoP (RFC 9449 §7.1).
        assert r.headers["www-authenticate"] == (
            f'Bearer resource_metadata="{where}", '
            f'DPoP algs="ES256 ES384 EdDSA RS256 PS256", resource_metadata="{where}"'
        )
        prm = await http.get(f"{base}/.well-known/oauth-protected-resource/mcp")
    assert prm.status_code == 200
    doc = prm.json()
    assert doc["resource"] == f"{base}/mcp"
    assert doc["authorization_servers"] == ["https://as.example.test"]
    assert doc["bearer_methods_supported"] == ["header"]
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
    assert doc["dpop_bound_access_tokens_required"] is False
    assert set(doc["scopes_supported"]) == {"orders.read", "orders.write", "refund.admin"}


async def test_sdk_client_without_token_fails_cleanly(demo: Any) -> None:
    base, _, _ = demo
    with pytest.raises(Exception) as excinfo:  # noqa: PT011 - the SDK's error type varies
        async with client(base, None) as c:
            await c.list_tools()
    assert "500" not in str(excinfo.value)


async def test_a_session_stays_with_the_principal_that_opened_it(demo: Any) -> None:
    """The guard hands the SDK the verified principal in its own shape, so the SDK's
    session binding applies: another caller's token cannot ride a stolen session id."""
    base, minter, _ = demo
    headers = {"accept": "application/json, text/event-stream"}
    init = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }
    call = {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami"}}
    alice, mallory = minter.mint(sub="alice"), minter.mint(sub="mallory")
    async with httpx.AsyncClient(base_url=base) as http:
        r = await http.post(
            "/mcp", json=init, headers={**headers, "authorization": f"Bearer {alice}"}
        )
        assert r.status_code == 200
        session = r.headers["mcp-session-id"]
        own = {**headers, "mcp-session-id": session, "mcp-protocol-version": "2025-11-25"}
        r = await http.post("/mcp", json=call, headers={**own, "authorization": f"Bearer {alice}"})
        assert r.status_code == 200
        r = await http.post(
            "/mcp", json=call, headers={**own, "authorization": f"Bearer {mallory}"}
        )
        assert r.status_code in (403, 404)
