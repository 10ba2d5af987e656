"""The guard trusting a real third-party authorization server, found by discovery: the
npm package oidc-provider (a certified OpenID provider) run locally with Node, issuing
RFC 9068 JWT access tokens for client_credentials with resource indicators."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.demo import build_protected_demo

from .support import bearer_client, free_port, serve

NODE_DIR = Path(__file__).parents[1] / "node"
NODE = NODE_DIR / "node_modules" / ".bin" / "node"
SCRIPT = Path(__file__).resolve().parents[1] / "node" / "oidc_provider_m2m.mjs"
SECRET = "agent-secret-for-tests-only"

pytestmark = pytest.mark.node


@contextmanager
def oidc_provider(access_tokens: str = "jwt") -> Iterator[tuple[str, str]]:
    """(issuer, resource): oidc-provider on one port, the resource it issues tokens for
    on another; ``access_tokens`` "opaque" for opaque access tokens."""
    if not (NODE_DIR / "node_modules" / "oidc-provider").exists():
        pytest.skip("tests/node/node_modules/oidc-provider is not installed")
    node = str(NODE) if NODE.exists() else "node"
    port, resource_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{resource_port}/mcp"
    proc = subprocess.Popen(
        [node, str(SCRIPT), str(port), resource],
        cwd=NODE_DIR,
        env={**os.environ, "TOKEN_FORMAT": access_tokens},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("ready"), line
        yield f"http://127.0.0.1:{port}", resource
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="module")
def provider() -> Iterator[tuple[str, str]]:
    with oidc_provider() as found:
        yield found


def token(issuer: str, resource: str, scope: str) -> str:
    r = httpx.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials", "scope": scope, "resource": resource},
        auth=("agent", SECRET),
    )
    assert r.status_code == 200, r.text
    value: str = r.json()["access_token"]
    return value


async def test_sdk_client_with_tokens_from_oidc_provider(provider: tuple[str, str]) -> None:
    issuer, resource = provider
    port = int(resource.split(":")[2].split("/")[0])
    app = build_protected_demo(issuer=issuer, resource=resource)  # keys by discovery
    reader = token(issuer, resource, "orders.read")
    admin = token(issuer, resource, "orders.read orders.write refund.admin")
    with serve(app, port) as base:
        async with Client(
            streamable_http_client(f"{base}/mcp", http_client=bearer_client(reader))
        ) as c:
            tools = {t.name: t.meta or {} for t in (await c.list_tools()).tools}
            assert tools["refund_order"]["io.mcpward/scopes"]["granted"] is False
            result = await c.call_tool("whoami", {})
            assert result.structured_content == {
                "subject": "agent",
                "client_id": "agent",
                "scopes": ["orders.read"],
            }
            with pytest.raises(MCPError):
                await c.call_tool("refund_order", {"order_id": "ord_1001"})
        async with Client(
            streamable_http_client(f"{base}/mcp", http_client=bearer_client(admin))
        ) as c:
            result = await c.call_tool("refund_order", {"order_id": "ord_1001"})
            assert not result.is_error


async def test_oidc_provider_token_for_another_audience_is_refused(
    provider: tuple[str, str],
) -> None:
    issuer, resource = provider
    # The guard protects a different resource than the one the token names.
    other = f"http://127.0.0.1:{free_port()}/mcp"
    app = build_protected_demo(issuer=issuer, resource=other)
    t = token(issuer, resource, "orders.read")
    port = int(other.split(":")[2].split("/")[0])
    with serve(app, port) as base:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{base}/mcp",
                json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                headers={"authorization": f"Bearer {t}"},
            )
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
