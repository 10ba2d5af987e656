"""The guard with mcpward's own authorization server, both over real HTTP: tokens from
its token endpoint, keys found by RFC 8414 discovery, revocation through ``/revoke``,
introspection for the same tokens; and the testing kit in the way a server author uses
it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.demo import build_protected_demo, create_demo_server, demo_manifest
from mcpward.guard import ByFormat, IntrospectionVerifier, InvalidToken, protect_mcp_server
from mcpward.server import create_app
from mcpward.storage.records import ClientRecord
from mcpward.testing import TestAuthority, authorization_server
from tests.conftest import serve as serve_in_loop

from .support import bearer_client, free_port, serve


@dataclass
class Stack:
    authority: TestAuthority
    issuer: str
    mcp_url: str
    http: httpx.AsyncClient


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    """AS on one port, guarded demo on another (the guard finds the keys by discovery,
    and learns of revocations in-process, as in the embedded default)."""
    as_port, mcp_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with authorization_server(tmp_path, issuer=issuer) as authority:
        await authority.add_resource(resource, ["orders.read", "orders.write", "refund.admin"])
        app = build_protected_demo(
            issuer=issuer, resource=resource, revocations=authority.revocations
        )
        async with serve_in_loop(create_app(authority.server), as_port):
            with serve(app, mcp_port) as base:
                async with httpx.AsyncClient(base_url=issuer) as http:
                    yield Stack(authority, issuer, f"{base}/mcp", http)


async def agent_token(stack: Stack, scope: str, client_id: str = "agent") -> tuple[str, str]:
    """A client_credentials client, and a token from the token endpoint: (token, secret)."""
    secret = await stack.authority.server.clients.create(
        ClientRecord(
            client_id=client_id,
            name=client_id,
            source="preregistered",
            token_endpoint_auth_method="client_secret_basic",
            grant_types=("client_credentials",),
            redirect_uris=(),
            allowed_scope="orders.read orders.write refund.admin",
        )
    )
    assert secret is not None
    r = await stack.http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "scope": scope,
            "resource": stack.mcp_url,
        },
        auth=(client_id, secret.secret),
    )
    assert r.status_code == 200, r.text
    token: str = r.json()["access_token"]
    return token, secret.secret


async def test_token_from_the_token_endpoint_then_revoked(stack: Stack) -> None:
    token, secret = await agent_token(stack, "orders.read")
    http = bearer_client(token)
    async with Client(streamable_http_client(stack.mcp_url, http_client=http)) as c:
        result = await c.call_tool("search_orders", {"query": "globex"})
        assert "ord_1003" in str(result.structured_content)
        with pytest.raises(MCPError):
            await c.call_tool("refund_order", {"order_id": "ord_1003"})
    # The client revokes its token (RFC 7009); the very next request is refused.
    r = await stack.http.post("/revoke", data={"token": token}, auth=("agent", secret))
    assert r.status_code == 200
    async with httpx.AsyncClient() as plain:
        r = await plain.post(
            stack.mcp_url,
            json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
            headers={"authorization": f"Bearer {token}", "accept": "application/json"},
        )
    assert r.status_code == 401
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


async def test_disabling_a_client_stops_its_tokens(stack: Stack) -> None:
    token, _ = await agent_token(stack, "orders.read", client_id="leaky-agent")
    http = bearer_client(token)
    async with Client(streamable_http_client(stack.mcp_url, http_client=http)) as c:
        await c.call_tool("search_orders", {})
        await stack.authority.server.disable_client("leaky-agent")
        with pytest.raises(MCPError):
            await c.call_tool("search_orders", {})


async def test_introspection_path_with_the_real_server(stack: Stack) -> None:
    """Opaque-token path: the guard asks the AS's introspection endpoint (RFC 7662)."""
    token, _ = await agent_token(stack, "orders.read")
    rs_secret = await stack.authority.server.clients.create(
        ClientRecord(
            client_id="orders-rs",
            name="orders resource server",
            source="preregistered",
            token_endpoint_auth_method="client_secret_basic",
            grant_types=(),
            redirect_uris=(),
            introspects_resource=stack.mcp_url,
        )
    )
    assert rs_secret is not None
    async with httpx.AsyncClient() as http:
        verifier = IntrospectionVerifier(
            endpoint=f"{stack.issuer}/introspect",
            client_id="orders-rs",
            client_secret=rs_secret.secret,
            issuer=stack.issuer,
            audience=stack.mcp_url,
            http=http,
            cache_ttl=0.0,
        )
        identity = await verifier.verify(token)
        assert identity.client_id == "agent"
        assert identity.scopes == {"orders.read"}
        await stack.authority.revoke(token)
        with pytest.raises(InvalidToken, match="not active"):
            await verifier.verify(token)
        # Routed by format: an opaque string goes to introspection, which says inactive.
        routed = ByFormat(jwt=verifier, opaque=verifier)
        with pytest.raises(InvalidToken, match="not active"):
            await routed.verify("mcpw_opaque_" + "x" * 40)


async def test_testing_kit_in_a_few_lines(mcpward_authority: TestAuthority) -> None:
    """What a server author writes to test their own per-tool rules."""
    resource = "http://127.0.0.1/mcp"
    guard = mcpward_authority.guard(demo_manifest(), resource=resource)
    app = protect_mcp_server(create_demo_server(), guard, stateless_http=True, json_response=True)
    reader = mcpward_authority.token("orders.read", resource=resource)
    admin = mcpward_authority.token("orders.write refund.admin", resource=resource)
    refund = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "refund_order", "arguments": {"order_id": "ord_1001"}},
    }
    with serve(app) as base:
        async with httpx.AsyncClient(base_url=base) as http:
            headers = {"accept": "application/json, text/event-stream"}
            r = await http.post(
                "/mcp", json=refund, headers={**headers, "authorization": f"Bearer {reader}"}
            )
            assert r.status_code == 403
            r = await http.post(
                "/mcp", json=refund, headers={**headers, "authorization": f"Bearer {admin}"}
            )
            assert r.status_code == 200, r.text
            await mcpward_authority.revoke(admin)
            r = await http.post(
                "/mcp", json=refund, headers={**headers, "authorization": f"Bearer {admin}"}
            )
            assert r.status_code == 401


async def test_embedded_one_process_mount(tmp_path: Path) -> None:
    """The way ``mcpward serve --demo`` mounts it: authorization server routes and the
    guarded demo in one Starlette app, keys read from the key ring in-process, revocations
    published into the guard's view (zero delay)."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette

    from mcpward.guard import LocalKeys
    from mcpward.server import routes

    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = f"{issuer}/mcp"
    async with authorization_server(tmp_path, issuer=issuer) as authority:
        await authority.add_resource(resource, ["orders.read", "orders.write", "refund.admin"])
        demo = build_protected_demo(
            issuer=issuer,
            resource=resource,
            keys=LocalKeys(authority.server.keys.public_key),
            revocations=authority.revocations,
        )

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            async with demo.lifespan():
                yield

        app = Starlette(routes=[*routes(authority.server), *demo.routes()], lifespan=lifespan)
        with serve(app, port) as base:
            async with httpx.AsyncClient(base_url=base) as http:
                prm = (await http.get("/.well-known/oauth-protected-resource/mcp")).json()
                assert prm["authorization_servers"] == [issuer]
                meta = (await http.get("/.well-known/oauth-authorization-server")).json()
                assert meta["issuer"] == issuer
            token = authority.token("orders.read", resource=resource, subject="hana")
            async with Client(
                streamable_http_client(f"{base}/mcp", http_client=bearer_client(token))
            ) as c:
                assert (await c.call_tool("whoami", {})).structured_content == {
                    "subject": "hana",
                    "client_id": "test-client",
                    "scopes": ["orders.read"],
                }
                await authority.offboard("hana")
                with pytest.raises(MCPError):
                    await c.call_tool("whoami", {})
