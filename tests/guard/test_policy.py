"""Casbin policies inside the guard: the shipped example policies, deny-wins, hot reload."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path
from typing import Any

import httpx

from mcpward.audit import AuditLog, MemorySink
from mcpward.guard import (
    KEYCLOAK,
    CasbinPolicy,
    StaticKeys,
    make_guard,
    manifest_from_code,
    protect,
)

from .support import ISSUER, RESOURCE, Minter
from .test_attacks import ok_app

MANIFEST = manifest_from_code(
    "t", {"search_orders": ["orders.read"], "refund_order": ["orders.read"]}
)
SHIPPED = resources.files("mcpward.guard") / "policies"


def call(tool: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": tool}}


def client(minter: Minter, policy_file: Path, sink: MemorySink) -> httpx.AsyncClient:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        # Roles come from a "roles" claim (KEYCLOAK reads realm_access.roles and roles).
        claims=KEYCLOAK,
        policy=CasbinPolicy(policy_file, reload_interval=0),
        audit=AuditLog([sink]),
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


async def post(http: httpx.AsyncClient, token: str, tool: str) -> httpx.Response:
    return await http.post("/mcp", json=call(tool), headers={"authorization": f"Bearer {token}"})


async def test_a_tool_only_for_a_role(minter: Minter, tmp_path: Path) -> None:
    policy = tmp_path / "policy.csv"
    shutil.copy(str(SHIPPED / "role_only_tool.csv"), policy)
    sink = MemorySink()
    async with client(minter, policy, sink) as http:
        clerk = minter.mint(sub="bob", roles=["support"])
        finance = minter.mint(sub="fay", roles=["finance"])
        assert (await post(http, clerk, "search_orders")).status_code == 200
        denied = await post(http, clerk, "refund_order")
        assert (await post(http, finance, "refund_order")).status_code == 200
    # Not fixable by a broader token: no insufficient_scope challenge.
    assert denied.status_code == 403
    assert "www-authenticate" not in denied.headers
    assert denied.json()["error"]["data"]["error"] == "access_denied"
    outcomes = [
        (e["subject"], e["outcome"]) for e in sink.events() if e.get("tool") == "refund_order"
    ]
    assert outcomes == [("bob", "forbidden"), ("fay", "ok")]


async def test_tenant_isolation_and_deny_wins(minter: Minter, tmp_path: Path) -> None:
    policy = tmp_path / "policy.csv"
    shutil.copy(str(SHIPPED / "tenant_isolation.csv"), policy)
    async with client(minter, policy, MemorySink()) as http:
        acme = minter.mint(roles=["agent"], tenant="acme")
        globex = minter.mint(roles=["agent"], tenant="globex")
        suspended = minter.mint(roles=["agent"], tenant="acme", client_id="suspended-agent")
        assert (await post(http, acme, "search_orders")).status_code == 200
        assert (await post(http, globex, "search_orders")).status_code == 403
        assert (await post(http, suspended, "search_orders")).status_code == 403


async def test_policy_file_reloads_while_running(minter: Minter, tmp_path: Path) -> None:
    policy = tmp_path / "policy.csv"
    policy.write_text("p, user:*, tool:search_orders, tenant:*, allow\n")
    async with client(minter, policy, MemorySink()) as http:
        token = minter.mint(sub="gus")
        assert (await post(http, token, "search_orders")).status_code == 200
        policy.write_text("p, user:*, tool:search_orders, tenant:*, allow\n"
                          "p, user:gus, tool:*, tenant:*, deny\n")  # fmt: skip
        assert (await post(http, token, "search_orders")).status_code == 403
