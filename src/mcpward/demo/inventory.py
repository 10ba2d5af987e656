"""A downstream API for the demo: stock levels, behind a guard of its own (its tokens'
audience is the inventory API, not the orders MCP server). The orders server's
``check_stock`` tool calls it with a token from a token exchange (RFC 8693), never with
the token its own caller sent."""

from __future__ import annotations

from dataclasses import dataclass, replace

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcpward.audit import AuditLog
from mcpward.guard import (
    DownstreamTokens,
    GuardMiddleware,
    Identity,
    KeySource,
    Manifest,
    make_guard,
    protect,
    www_authenticate,
)
from mcpward.revocation import RevocationView

INVENTORY_SCOPES = {"inventory.read": "Read stock levels"}
STOCK = {"ord_1001": 3, "ord_1002": 0, "ord_1003": 12, "ord_1004": 1}


def create_inventory_app(resource_metadata: str | None = None) -> Starlette:
    async def stock(request: Request) -> JSONResponse:
        identity = request.scope.get("mcpward.identity")
        assert isinstance(identity, Identity)  # the guard let the request through
        if "inventory.read" not in identity.scopes:
            challenge = www_authenticate(
                resource_metadata=resource_metadata,
                error="insufficient_scope",
                scope=["inventory.read"],
            )
            return JSONResponse(
                {"error": "insufficient_scope"},
                status_code=403,
                headers={"WWW-Authenticate": challenge},
            )
        order_id = request.path_params["order_id"]
        return JSONResponse(
            {
                "order_id": order_id,
                "in_stock": STOCK.get(order_id, 0),
                "for": identity.subject,
                "acting": list(identity.actors),
            }
        )

    return Starlette(routes=[Route("/api/stock/{order_id}", stock, methods=["GET"])])


def build_protected_inventory(
    *,
    issuer: str,
    resource: str,
    keys: KeySource | None = None,
    revocations: RevocationView | None = None,
    audit: AuditLog | None = None,
) -> GuardMiddleware:
    """The inventory API at ``resource`` (its path is ``/api``), behind its own guard."""
    guard = make_guard(
        issuer=issuer,
        resource=resource,
        manifest=Manifest(name="inventory"),
        keys=keys,
        revocations=revocations,
        audit=audit,
    )
    return protect(create_inventory_app(guard.resource_metadata_url), guard)


@dataclass(frozen=True)
class Downstream:
    """How the orders server reaches the inventory API: where it is (``url``, the base
    under which ``/stock/{id}`` lives), its resource identifier, and the exchanger."""

    url: str
    resource: str
    tokens: DownstreamTokens
    http: httpx.AsyncClient | None = None

    async def stock(self, source: object, order_id: str) -> dict[str, object]:
        token = await self.tokens.token_for(source, self.resource, ["inventory.read"])
        http = self.http or httpx.AsyncClient(timeout=10.0)
        try:
            response = await http.get(
                f"{self.url}/stock/{order_id}", headers={"Authorization": f"Bearer {token}"}
            )
        finally:
            if self.http is None:
                await http.aclose()
        response.raise_for_status()
        body: dict[str, object] = response.json()
        return body


def with_check_stock(manifest: Manifest) -> Manifest:
    """The orders manifest with ``check_stock``, which needs what searching needs."""
    tools = {**manifest.tools, "check_stock": frozenset({"orders.read"})}
    descriptions = {**manifest.descriptions, "check_stock": "Stock for an order"}
    return replace(manifest, tools=tools, descriptions=descriptions)
