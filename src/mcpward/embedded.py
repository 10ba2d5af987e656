"""The embedded default that ``make run`` starts: one process, SQLite under ``./.mcpward/``,
the authorization server, and (with ``demo=True``) the demo MCP server of the source
document behind the guard at ``/mcp``, a demo user and a demo machine-to-machine client."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from mcpward._secrets import new_id
from mcpward.demo import build_protected_demo, demo_manifest
from mcpward.guard import LocalKeys
from mcpward.revocation.table import TablePollingRevocations
from mcpward.server import AuthorizationServer, maintained, routes
from mcpward.server.app import token_fast_path
from mcpward.storage.records import ClientRecord, ResourceRecord, UserRecord

# Seconds between the embedded guard's polls for revocations made by other processes.
REVOCATION_POLL = 1.0

DEMO_USER = "demo"
DEMO_CLIENT = "demo-agent"
# Scope descriptions for the consent page; the tools come from the demo's manifest.
DEMO_SCOPES = {
    "orders.read": "Search and read orders",
    "orders.write": "Change orders",
    "refund.admin": "Issue refunds to customers",
}


def _demo_tools() -> list[dict[str, Any]]:
    manifest = demo_manifest()
    return [
        {
            "name": name,
            "scopes_required": sorted(scopes),
            "description": manifest.descriptions.get(name, ""),
        }
        for name, scopes in manifest.tools.items()
    ]


@dataclass(frozen=True, slots=True)
class DemoCredentials:
    issuer: str
    resource: str
    username: str
    password: str
    client_id: str
    client_secret: str

    def as_dict(self) -> dict[str, str]:
        return {
            "issuer": self.issuer,
            "resource": self.resource,
            "username": self.username,
            "password": self.password,
            "client_id": self.client_id,
            "client_secret": self.client_secret,
        }


def demo_resource_uri(issuer: str) -> str:
    return issuer + "/mcp"


async def ensure_demo(server: AuthorizationServer) -> DemoCredentials | None:
    """Register the demo resource; on first start create the demo user and client and
    return their credentials (shown once, and written to data_dir/demo.json, mode 0600)."""
    issuer = server.settings.issuer
    resource = demo_resource_uri(issuer)
    await server.register_resource(
        ResourceRecord(uri=resource, name="Orders (demo)", scopes=DEMO_SCOPES, tools=_demo_tools())
    )
    if await server.store.users.by_username(DEMO_USER) is not None:
        return None

    from argon2 import PasswordHasher

    password = new_id(12)
    await server.store.users.create(
        UserRecord(
            id=new_id(12),
            username=DEMO_USER,
            email="demo@example.com",
            display_name="Demo User",
            password_hash=PasswordHasher().hash(password),
            created_at=server.clock(),
        )
    )
    secret = await server.clients.create(
        ClientRecord(
            client_id=DEMO_CLIENT,
            name="Demo agent (client_credentials)",
            source="preregistered",
            token_endpoint_auth_method="client_secret_basic",
            grant_types=("client_credentials",),
            redirect_uris=(),
            allowed_scope="orders.read",
        )
    )
    assert secret is not None
    creds = DemoCredentials(issuer, resource, DEMO_USER, password, DEMO_CLIENT, secret.secret)
    write_private_json(server.settings.data_dir / "demo.json", creds.as_dict())
    return creds


def write_private_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.chmod(path, 0o600)


def build_app(server: AuthorizationServer, *, demo: bool) -> Starlette:
    """The authorization server and its pages; with ``demo`` also the guarded demo MCP
    server at ``/mcp``. The guard verifies with the key ring directly; it sees this
    process's revocations at once and those made elsewhere (``mcpward tokens revoke``,
    other replicas) at its next poll of the revocations table."""
    from mcpward.server.pages import page_routes

    pages = page_routes(server)
    table: list[BaseRoute] = [*routes(server), *pages.routes]
    protected = None
    revocations = None
    if demo:
        revocations = TablePollingRevocations(server.store.engine, interval=REVOCATION_POLL)
        server.publisher = revocations
        protected = build_protected_demo(
            issuer=server.settings.issuer,
            resource=demo_resource_uri(server.settings.issuer),
            keys=LocalKeys(server.keys.public_key),
            revocations=revocations,
            audit=server.audit,
        )
        table += protected.routes(cors_origins=server.settings.cors_allow_origins)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with maintained(server), contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(pages.aclose)
            if revocations is not None and protected is not None:
                await stack.enter_async_context(revocations)
                # Starlette runs no lifespan of mounted apps: the SDK's session manager
                # is started here.
                await stack.enter_async_context(protected.lifespan())
            yield

    return Starlette(routes=table, middleware=[token_fast_path(server)], lifespan=lifespan)
