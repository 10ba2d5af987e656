"""End to end with real parts: oidc-provider as the enterprise IdP (people sign in there
once; it exchanges their ID token for an ID-JAG) and as a workload platform (it issues
the JWT a workload holds); mcpward's authorization server; the demo orders MCP server
behind the guard; the `mcp` SDK client with mcpward's ``EnterpriseAuth`` and
``AgentAuth`` as its HTTP auth."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from mcpward.client import AgentAuth, EnterpriseAuth, FileSecret
from mcpward.demo import build_protected_demo
from mcpward.guard import LocalKeys
from mcpward.storage.records import JWT_BEARER, TOKEN_EXCHANGE, ResourceRecord
from tests.client.support import DevInteractionsBrowser
from tests.conftest import serve
from tests.enterprise.peers import enterprise_idp, workload_platform
from tests.enterprise.support import claims_of
from tests.server.conftest import SCOPES, Running, start
from tests.services import free_port

pytestmark = pytest.mark.node

IDP_SECRET = "idp-client-secret-for-tests-only"
PLATFORM_SECRET = "platform-secret-for-tests-only"


@asynccontextmanager
async def orders_server(r: Running) -> AsyncIterator[str]:
    """The demo MCP server behind the guard, registered as a resource; its URL."""
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    await r.server.register_resource(ResourceRecord(uri=resource, name="Orders", scopes=SCOPES))
    protected = build_protected_demo(
        issuer=r.server.settings.issuer,
        resource=resource,
        keys=LocalKeys(r.server.keys.public_key),
        revocations=r.server.shared.revocations,
    )
    async with protected.lifespan(), serve(protected, port):
        yield resource


async def sign_in_at_idp(idp: str, callback_port: int) -> str:
    """A person signs in at the IdP (its devInteractions pages, over HTTP) with the
    authorization code flow and PKCE; the client gets their ID token."""
    codes: list[str] = []

    async def callback(request: Request) -> PlainTextResponse:
        codes.append(request.query_params["code"])
        return PlainTextResponse("signed in")

    redirect = f"http://127.0.0.1:{callback_port}/callback"
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    url = httpx.URL(
        idp + "/auth",
        params={
            "client_id": "chat-app",
            "response_type": "code",
            "scope": "openid email",
            "redirect_uri": redirect,
            "code_challenge": challenge.decode(),
            "code_challenge_method": "S256",
            "state": "s",
            "nonce": "n",
        },
    )
    async with serve(Starlette(routes=[Route("/callback", callback)]), callback_port):
        await DevInteractionsBrowser(login="alice")(str(url))
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            idp + "/token",
            data={
                "grant_type": "authorization_code",
                "code": codes[0],
                "redirect_uri": redirect,
                "code_verifier": verifier,
            },
            auth=("chat-app", IDP_SECRET),
        )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id_token"])


async def test_a_person_signed_in_at_the_idp_uses_the_mcp_server_without_consent(
    tmp_path: Path,
) -> None:
    callback_port, as_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    idp_client = {
        "client_id": "chat-app",
        "client_secret": IDP_SECRET,
        "redirect_uris": [f"http://127.0.0.1:{callback_port}/callback"],
        "grant_types": ["authorization_code", TOKEN_EXCHANGE],
        "response_types": ["code"],
        "token_endpoint_auth_method": "client_secret_basic",
        "id_token_signed_response_alg": "ES256",
    }
    with enterprise_idp(
        [idp_client], audience=issuer, client_ids={"chat-app": "mcp-client"}
    ) as idp:
        url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
        trusted = [{"issuer": idp, "profiles": ["id-jag"]}]
        async for r in start(url, tmp_path, port=as_port, issuer=issuer, trusted_issuers=trusted):
            secret = await r.confidential_client(
                "mcp-client", grant_types=(JWT_BEARER,), allowed_scope="orders.read"
            )
            assert secret is not None
            async with orders_server(r) as mcp_url:
                id_token = await sign_in_at_idp(idp, callback_port)
                auth = EnterpriseAuth(
                    mcp_url,
                    id_token=id_token,
                    idp_token_endpoint=idp + "/token",
                    idp_client_id="chat-app",
                    idp_client_secret=IDP_SECRET,
                    client_id="mcp-client",
                    client_secret=secret,
                    scopes=["orders.read"],
                )
                try:
                    async with (
                        httpx2.AsyncClient(auth=auth) as http,
                        Client(streamable_http_client(mcp_url, http_client=http)) as client,
                    ):
                        who = await client.call_tool("whoami", {})
                        found = await client.call_tool("search_orders", {"query": "acme"})
                finally:
                    await auth.aclose()
            user = await r.server.store.users.by_upstream(idp, "alice")
            assert user is not None
            assert who.structured_content == {
                "subject": user.id,
                "client_id": "mcp-client",
                "scopes": ["orders.read"],
            }
            assert not found.is_error and "ord_1001" in str(found.structured_content)
            issued = next(
                x for x in r.audit.events() if x["event"] == "token.issued_from_assertion"
            )
            assert issued["detail"]["assertion_issuer"] == idp  # type: ignore[index]
            assert issued["detail"]["profile"] == "id-jag"  # type: ignore[index]
            assert not any(str(x["event"]).startswith("consent.") for x in r.audit.events())


async def platform_token(platform: str, audience: str) -> str:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            platform + "/token",
            data={"grant_type": "client_credentials", "resource": audience},
            auth=("backfill-sa", PLATFORM_SECRET),
        )
    assert answer.status_code == 200, answer.text
    return str(answer.json()["access_token"])


async def test_an_agent_with_a_projected_token_file_and_no_secret(tmp_path: Path) -> None:
    as_port = free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    with workload_platform(issuer, "backfill-sa", PLATFORM_SECRET) as platform:
        url = f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}"
        async for r in start(
            url,
            tmp_path,
            port=as_port,
            issuer=issuer,
            trusted_issuers=[
                {"issuer": platform, "profiles": ["workload"], "token_types": ["at+jwt"]}
            ],
            workload_rules=[
                {
                    "name": "backfill",
                    "issuer": platform,
                    "subject": "backfill-sa",
                    "client_id": "backfill",
                    "scopes": ["orders.read"],
                }
            ],
        ):
            await r.confidential_client("backfill", method="none", grant_types=(JWT_BEARER,))
            token_file = tmp_path / "token"  # where the platform projects the workload's JWT
            token_file.write_text(await platform_token(platform, issuer))
            first_jti = claims_of(token_file.read_text())["jti"]
            async with orders_server(r) as mcp_url:
                auth = AgentAuth(
                    mcp_url, client_id="backfill", workload_token=FileSecret(token_file)
                )
                try:
                    async with (
                        httpx2.AsyncClient(auth=auth) as http,
                        Client(streamable_http_client(mcp_url, http_client=http)) as client,
                    ):
                        who = await client.call_tool("whoami", {})
                        # The platform rotates the file; the access token is revoked: the
                        # agent's renewal reads the file again (the old JWT is spent).
                        token_file.write_text(await platform_token(platform, issuer))
                        access = claims_of(await auth.token())
                        await r.server.revoke_jti(access["jti"], access["exp"])
                        again = await client.call_tool("search_orders", {"query": "acme"})
                finally:
                    await auth.aclose()
            assert who.structured_content == {
                "subject": "backfill",
                "client_id": "backfill",
                "scopes": ["orders.read"],
            }
            assert not again.is_error, again
            issued = [x for x in r.audit.events() if x["event"] == "token.issued_from_assertion"]
            jtis = [x["detail"]["assertion_jti"] for x in issued]  # type: ignore[index]
            assert jtis == [first_jti, claims_of(token_file.read_text())["jti"]]
