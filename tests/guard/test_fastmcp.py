"""The guard in front of a real FastMCP server (the ``fastmcp`` package, ``http_app()``),
driven by the real ``mcp`` SDK client over HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastmcp import Context, FastMCP
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.guard import Manifest, StaticKeys, identity_of, make_guard, protect_fastmcp

from .support import Minter, bearer_client, free_port, serve

MANIFEST = {
    "name": "orders-fastmcp",
    "tools": [
        {"name": "search_orders", "scopes_required": ["orders.read"]},
        {"name": "refund_order", "scopes_required": ["orders.write", "refund.admin"]},
        {"name": "whoami", "scopes_required": []},
    ],
}


@pytest.fixture(scope="module")
def fastmcp_app() -> Iterator[tuple[str, Minter]]:
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(resource=resource)
    server: FastMCP[Any] = FastMCP("orders-fastmcp")

    @server.tool()
    def search_orders(query: str) -> str:
        return f"3 orders match {query}"

    @server.tool()
    def refund_order(order_id: str) -> str:
        return f"refunded {order_id}"

    @server.tool()
    def whoami(ctx: Context) -> str:
        identity = identity_of(ctx)
        return f"{identity.subject} via {identity.client_id}" if identity else "nobody"

    guard = make_guard(
        issuer=minter.issuer,
        resource=resource,
        manifest=Manifest.from_dict(MANIFEST),
        keys=StaticKeys(minter.jwks()),
    )
    with serve(protect_fastmcp(server, guard), port) as base:
        yield base, minter


def client(base: str, token: str | None) -> Client:
    return Client(streamable_http_client(f"{base}/mcp", http_client=bearer_client(token)))


async def test_fastmcp_tool_calls_are_authorized_per_tool(fastmcp_app: Any) -> None:
    base, minter = fastmcp_app
    async with client(base, minter.mint("orders.read")) as c:
        granted = {
            t.name: (t.meta or {})["io.mcpward/scopes"]["granted"]
            for t in (await c.list_tools()).tools
        }
        assert granted == {"search_orders": True, "whoami": True, "refund_order": False}
        result = await c.call_tool("search_orders", {"query": "acme"})
        assert not result.is_error
        with pytest.raises(MCPError):
            await c.call_tool("refund_order", {"order_id": "A-1"})
    async with client(base, minter.mint("orders.read", sub="alice", client_id="cli")) as c:
        whoami = await c.call_tool("whoami", {})
        assert whoami.content[0].text == "alice via cli"  # type: ignore[union-attr]
    async with client(base, minter.mint("orders.read orders.write refund.admin")) as c:
        assert not (await c.call_tool("refund_order", {"order_id": "A-1"})).is_error


async def test_fastmcp_challenges(fastmcp_app: Any) -> None:
    base, minter = fastmcp_app
    async with httpx.AsyncClient(base_url=base) as http:
        anonymous = await http.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert anonymous.status_code == 401
        assert "resource_metadata=" in anonymous.headers["www-authenticate"]
        call = {
            "jsonrpc": "2.0",
            "id": 2,
            "method": "tools/call",
            "params": {"name": "refund_order", "arguments": {"order_id": "A-1"}},
        }
        denied = await http.post(
            "/mcp",
            json=call,
            headers={
                "authorization": f"Bearer {minter.mint('orders.read')}",
                "accept": "application/json, text/event-stream",
                "mcp-protocol-version": "2025-11-25",
            },
        )
        assert denied.status_code == 403
        challenge = denied.headers["www-authenticate"]
        assert 'error="insufficient_scope"' in challenge
        assert "refund.admin" in challenge and "orders.write" in challenge
