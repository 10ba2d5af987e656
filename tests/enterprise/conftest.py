"""An authorization server that trusts an enterprise IdP (ID-JAGs) and a workload
platform (workload JWTs), with an exchange policy from the orders MCP server to a
downstream inventory API; over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcpward.storage.records import JWT_BEARER, TOKEN_EXCHANGE, GrantType, ResourceRecord
from tests.enterprise.support import Issuer, serve_issuer
from tests.server.conftest import RESOURCE, Running, start

DOWNSTREAM = "https://inventory.example/api"
WAREHOUSE = "https://warehouse.example/api"
UNREGISTERED = "https://unregistered.example/api"
INVENTORY_SCOPES = {"inventory.read": "Read stock", "inventory.write": "Change stock"}
WORKLOAD_SUBJECT = "system:serviceaccount:batch:backfill"


@dataclass
class Enterprise:
    r: Running
    idp: Issuer
    platform: Issuer
    secrets: dict[str, str]

    def basic(self, client_id: str) -> tuple[str, str]:
        return client_id, self.secrets[client_id]


def federation(idp: Issuer, platform: Issuer, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "trusted_issuers": [
            {"issuer": idp.url, "profiles": ["id-jag"]},
            {"issuer": platform.url, "profiles": ["workload"]},
        ],
        "workload_rules": [
            {
                "name": "backfill",
                "issuer": platform.url,
                "subject": WORKLOAD_SUBJECT,
                "claims": {"namespace": "batch"},
                "client_id": "backfill",
                "scopes": ["orders.read"],
            }
        ],
        "token_exchange": [
            {
                "client_id": "orders-mcp",
                "from_resource": RESOURCE,
                "to_resource": DOWNSTREAM,
                "scopes": ["inventory.read"],
                "lifetime": 120,
            },
            # The inventory API calls on, for the same person: a chain of two actors.
            {
                "client_id": "inventory-api",
                "from_resource": DOWNSTREAM,
                "to_resource": WAREHOUSE,
                "scopes": ["stock.reserve"],
            },
            {
                "client_id": "orders-mcp",
                "from_resource": RESOURCE,
                "to_resource": UNREGISTERED,
                "scopes": ["anything"],
            },
        ],
    }
    config.update(extra)
    return config


async def provision(r: Running) -> dict[str, str]:
    """The clients: an MCP client that redeems ID-JAGs, a public one, the workload's
    client (no secret: the workload rule is its credential), and two MCP servers'
    own clients, one with an exchange policy."""
    await r.server.register_resource(
        ResourceRecord(uri=DOWNSTREAM, name="Inventory", scopes=INVENTORY_SCOPES)
    )
    await r.server.register_resource(
        ResourceRecord(uri=WAREHOUSE, name="Warehouse", scopes={"stock.reserve": "Reserve"})
    )
    secrets: dict[str, str] = {}
    confidential: list[tuple[str, tuple[GrantType, ...], str | None]] = [
        ("mcp-client", (JWT_BEARER,), None),
        ("mcp-client-limited", (JWT_BEARER,), "orders.read"),
        ("orders-mcp", (TOKEN_EXCHANGE, "client_credentials"), None),
        ("other-mcp", (TOKEN_EXCHANGE,), None),
        ("inventory-api", (TOKEN_EXCHANGE,), None),
    ]
    for client_id, grants, allowed in confidential:
        secret = await r.confidential_client(client_id, grant_types=grants, allowed_scope=allowed)
        assert secret is not None
        secrets[client_id] = secret
    await r.confidential_client("public-app", method="none", grant_types=(JWT_BEARER,))
    await r.confidential_client(
        "backfill",
        method="none",
        grant_types=(JWT_BEARER, "client_credentials"),
        allowed_scope="orders.read orders.write",
    )
    return secrets


@pytest.fixture
async def enterprise(database_url: str, tmp_path: Path) -> AsyncIterator[Enterprise]:
    async with serve_issuer() as idp, serve_issuer() as platform:
        async for r in start(database_url, tmp_path, **federation(idp, platform)):
            yield Enterprise(r, idp, platform, await provision(r))
