"""First-start provisioning of the demo that ``make run`` serves: the demo resource (the
orders MCP server at ``<issuer>/mcp``), a demo user and a demo machine-to-machine client,
whose credentials are shown once and written to ``data_dir/demo.json`` (mode 0600)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mcpward._secrets import new_id
from mcpward.demo import demo_manifest
from mcpward.server import AuthorizationServer
from mcpward.server.pages import hash_password
from mcpward.storage.records import ClientRecord, ResourceRecord, UserRecord

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

    password = new_id(12)
    await server.store.users.create(
        UserRecord(
            id=new_id(12),
            username=DEMO_USER,
            email="demo@example.com",
            display_name="Demo User",
            password_hash=hash_password(password),
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
