"""The source document's example MCP server: orders, read and refund, behind the guard.

``search_orders`` needs ``orders.read``; ``refund_order`` needs ``orders.write`` and
``refund.admin``; ``export_orders`` streams progress over SSE; ``whoami`` returns the
verified caller as the tool sees it. With a ``Downstream`` (``mcpward.demo.inventory``),
``check_stock`` asks the inventory API on the caller's behalf, through a token exchange.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from mcp.server.mcpserver import Context, MCPServer
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpward.audit import AuditLog
from mcpward.demo.inventory import Downstream
from mcpward.demo.inventory import with_check_stock as _with_check_stock
from mcpward.guard import (
    Guard,
    KeySource,
    Manifest,
    RateLimiter,
    RateLimits,
    identity_of,
    make_guard,
    protect,
)
from mcpward.revocation import RevocationView
from mcpward.state import ReplayCache

_ORDERS: list[dict[str, Any]] = [
    {"id": "ord_1001", "customer": "acme", "status": "paid", "amount": 120.0},
    {"id": "ord_1002", "customer": "acme", "status": "refunded", "amount": 35.5},
    {"id": "ord_1003", "customer": "globex", "status": "paid", "amount": 980.0},
    {"id": "ord_1004", "customer": "initech", "status": "pending", "amount": 12.25},
]


def demo_manifest() -> Manifest:
    text = resources.files(__package__).joinpath("manifest.json").read_text(encoding="utf-8")
    return Manifest.from_dict(json.loads(text), source="mcpward.demo/manifest.json")


def create_demo_server(
    *, progress_delay: float = 0.05, downstream: Downstream | None = None, **server_kwargs: Any
) -> MCPServer:
    """The demo server; ``server_kwargs`` go to ``MCPServer`` (the benchmark uses them to
    configure the SDK's own bearer auth as a point of comparison)."""
    server: MCPServer = MCPServer(
        "orders", instructions="Search and refund orders.", **server_kwargs
    )

    @server.tool(description="Search orders by customer or status")
    def search_orders(query: str = "") -> list[dict[str, Any]]:
        q = query.lower()
        return [o for o in _ORDERS if not q or q in o["customer"] or q in o["status"]]

    @server.tool(description="Refund an order")
    def refund_order(order_id: str, ctx: Context) -> dict[str, Any]:
        who = identity_of(ctx)
        for order in _ORDERS:
            if order["id"] == order_id:
                return {
                    "order_id": order_id,
                    "refunded": order["amount"],
                    "by": who.subject if who else None,
                }
        raise ValueError(f"no order {order_id}")

    @server.tool(description="Export orders, streaming progress")
    async def export_orders(ctx: Context, batches: int = 3) -> str:
        batches = max(1, min(batches, 20))
        for i in range(batches):
            await ctx.report_progress(i + 1, batches, f"batch {i + 1}/{batches}")
            await asyncio.sleep(progress_delay)
        return f"exported {len(_ORDERS)} orders in {batches} batches"

    @server.tool(description="The verified caller")
    def whoami(ctx: Context) -> dict[str, Any]:
        who = identity_of(ctx)
        if who is None:
            return {"subject": None}
        return {"subject": who.subject, "client_id": who.client_id, "scopes": sorted(who.scopes)}

    if downstream is not None:

        @server.tool(description="Stock for an order")
        async def check_stock(order_id: str, ctx: Context) -> dict[str, Any]:
            # A token of its own for the inventory API, never the caller's (no passthrough).
            return await downstream.stock(ctx, order_id)

    @server.resource("orders://recent", description="The most recent orders")
    def recent_orders() -> str:
        return json.dumps(_ORDERS[-2:])

    return server


def create_demo_app(**app_kwargs: Any) -> tuple[ASGIApp, Manifest]:
    """The unprotected demo app (for benchmarks and the gateway's upstream) and its
    manifest."""
    return create_demo_server().streamable_http_app(**app_kwargs), demo_manifest()


class ProtectedDemo:
    """The guarded demo as one ASGI app, with what a host application needs to mount it.

    Standalone, it runs its own lifespan. Mounted inside another Starlette app (whose
    sub-app lifespans do not run), add :meth:`routes` to the host's routes and enter
    :meth:`lifespan` in the host's lifespan: it runs the ``mcp`` SDK's session manager.
    """

    def __init__(self, app: ASGIApp, server: MCPServer, guard: Guard) -> None:
        self.app = app
        self.server = server
        self.guard = guard

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        await self.guard.start()
        try:
            async with self.server.session_manager.run():
                yield
        finally:
            await self.guard.aclose()

    def routes(self, mcp_path: str = "/mcp", cors_origins: Sequence[str] = ()) -> list[BaseRoute]:
        """``/mcp``, its Protected Resource Metadata paths and ``/metrics``. With
        ``cors_origins``, browser-based MCP clients (MCP Inspector) may call it: CORS sits
        outside the guard, so 401 challenges are readable by the page too."""
        app: ASGIApp = self.app
        if cors_origins:
            app = CORSMiddleware(
                app,
                allow_origins=list(cors_origins),
                allow_methods=["GET", "POST", "DELETE", "OPTIONS"],
                allow_headers=MCP_REQUEST_HEADERS,
                expose_headers=MCP_RESPONSE_HEADERS,
                max_age=600,
            )
        paths = [mcp_path, *self.guard.metadata.paths, "/metrics"]
        return [Route(path, endpoint=app) for path in dict.fromkeys(paths)]


# What a browser-based MCP client sends and must be allowed to read (streamable HTTP).
MCP_REQUEST_HEADERS = [
    "authorization",
    "content-type",
    "mcp-protocol-version",
    "mcp-session-id",
    "last-event-id",
    "dpop",
]
MCP_RESPONSE_HEADERS = [
    "www-authenticate",
    "mcp-session-id",
    "mcp-protocol-version",
    "ratelimit",
    "ratelimit-policy",
    "retry-after",
    "dpop-nonce",
]


def build_protected_demo(
    *,
    issuer: str,
    resource: str,
    keys: KeySource | None = None,
    revocations: RevocationView | None = None,
    rate_limiter: RateLimiter | None = None,
    rate_limits: RateLimits | None = None,
    audit: AuditLog | None = None,
    guard: Guard | None = None,
    replay: ReplayCache | None = None,
    progress_delay: float = 0.05,
    downstream: Downstream | None = None,
    **app_kwargs: Any,
) -> ProtectedDemo:
    """The demo behind the guard, served at ``resource``'s path (``/mcp``). ``keys``
    defaults to discovery of ``issuer``'s JWKS; in embedded mode pass
    ``LocalKeys(server.keys.public_key)`` and the server's :class:`InProcessRevocations`.
    ``replay`` is where DPoP proofs' ``jti``s are spent (the shared state's cache).
    ``app_kwargs`` go to the SDK's ``streamable_http_app()`` (e.g. ``host`` for its DNS
    rebinding protection). With ``downstream``, the ``check_stock`` tool calls the
    inventory API (``mcpward.demo.inventory``) with exchanged tokens."""
    server = create_demo_server(progress_delay=progress_delay, downstream=downstream)
    app = server.streamable_http_app(**app_kwargs)
    if guard is None:
        manifest = demo_manifest()
        guard = make_guard(
            issuer=issuer,
            resource=resource,
            manifest=_with_check_stock(manifest) if downstream is not None else manifest,
            keys=keys,
            revocations=revocations,
            rate_limiter=rate_limiter,
            rate_limits=rate_limits,
            audit=audit,
            replay=replay,
        )
    return ProtectedDemo(protect(app, guard), server, guard)


__all__ = [
    "MCP_REQUEST_HEADERS",
    "MCP_RESPONSE_HEADERS",
    "Downstream",
    "ProtectedDemo",
    "build_protected_demo",
    "create_demo_app",
    "create_demo_server",
    "demo_manifest",
]
