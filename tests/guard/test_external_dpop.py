"""The guard in front of a real third-party authorization server issuing DPoP-bound
tokens: node ``oidc-provider`` (DPoP on, client_credentials with resource indicators),
as ES256 JWTs found by discovery and as opaque tokens read through its introspection
endpoint (whose answer carries ``cnf``). oidc-provider verifies the token request's
proof, which our client-side ``ProofKey`` makes; the ``mcp`` SDK's client then calls the
demo through the guard with a fresh proof per request."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward.demo import build_protected_demo, demo_manifest
from mcpward.dpop import ProofKey
from mcpward.guard import IntrospectionVerifier, make_guard
from tests.conftest import serve as serve_in_loop

from .support import serve
from .test_external_issuer import SECRET, oidc_provider

pytestmark = pytest.mark.node


@pytest.fixture(scope="module")
def jwt_provider() -> Iterator[tuple[str, str]]:
    with oidc_provider("jwt") as found:
        yield found


@pytest.fixture(scope="module")
def opaque_provider() -> Iterator[tuple[str, str]]:
    with oidc_provider("opaque") as found:
        yield found


def bound_token(issuer: str, resource: str, key: ProofKey) -> str:
    response = httpx.post(
        f"{issuer}/token",
        data={"grant_type": "client_credentials", "scope": "orders.read", "resource": resource},
        auth=("agent", SECRET),
        headers={"DPoP": key.proof("POST", f"{issuer}/token")},
    )
    assert response.status_code == 200, response.text
    assert response.json()["token_type"] == "DPoP"
    token: str = response.json()["access_token"]
    return token


def dpop_client(token: str, key: ProofKey) -> httpx2.AsyncClient:
    """The mcp SDK's HTTP client sending the token with the DPoP scheme and a fresh proof
    for each request it makes (POST, GET, DELETE alike)."""

    async def prove(request: httpx2.Request) -> None:
        request.headers["authorization"] = f"DPoP {token}"
        request.headers["dpop"] = key.proof(request.method, str(request.url), access_token=token)

    return httpx2.AsyncClient(event_hooks={"request": [prove]}, timeout=httpx2.Timeout(30.0))


def port_of(resource: str) -> int:
    return int(resource.split(":")[2].split("/")[0])


async def check_bound_token_flow(base: str, token: str, key: ProofKey) -> None:
    """The key's holder gets in through the mcp SDK; the same token as a bearer token, or
    with a proof of another key, does not."""
    async with Client(
        streamable_http_client(f"{base}/mcp", http_client=dpop_client(token, key))
    ) as c:
        result = await c.call_tool("whoami", {})
        assert result.structured_content == {
            "subject": "agent",
            "client_id": "agent",
            "scopes": ["orders.read"],
        }
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    async with httpx.AsyncClient() as http:
        as_bearer = await http.post(
            f"{base}/mcp", json=ping, headers={"authorization": f"Bearer {token}"}
        )
        assert as_bearer.status_code == 401  # RFC 9449 §7.2
        thief = ProofKey.generate()  # a stolen token, proved with the thief's own key
        stolen = await http.post(
            f"{base}/mcp",
            json=ping,
            headers={
                "authorization": f"DPoP {token}",
                "dpop": thief.proof("POST", f"{base}/mcp", access_token=token),
            },
        )
        assert stolen.status_code == 401
        assert 'DPoP error="invalid_dpop_proof"' in stolen.headers["www-authenticate"]


async def test_dpop_bound_jwts_from_oidc_provider(jwt_provider: tuple[str, str]) -> None:
    issuer, resource = jwt_provider
    key = ProofKey.generate()
    token = bound_token(issuer, resource, key)
    app = build_protected_demo(issuer=issuer, resource=resource)  # keys by discovery
    with serve(app, port_of(resource)) as base:
        await check_bound_token_flow(base, token, key)


async def test_opaque_dpop_tokens_through_introspection(
    opaque_provider: tuple[str, str],
) -> None:
    issuer, resource = opaque_provider
    key = ProofKey.generate()
    token = bound_token(issuer, resource, key)
    assert token.count(".") == 0  # opaque: only introspection can tell what it is bound to
    async with httpx.AsyncClient(timeout=10) as http:
        metadata = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
        introspection = IntrospectionVerifier(
            endpoint=metadata["introspection_endpoint"],
            client_id="agent",
            client_secret=SECRET,
            issuer=issuer,
            audience=resource,
            http=http,
        )
        guard = make_guard(
            issuer=issuer, resource=resource, manifest=demo_manifest(), verifier=introspection
        )
        app = build_protected_demo(issuer=issuer, resource=resource, guard=guard)
        # In this loop, where the introspection client lives.
        async with app.lifespan(), serve_in_loop(app, port_of(resource)) as base:
            await check_bound_token_flow(base, token, key)
