"""A third-party OAuth client library (Authlib) completes client_credentials and refresh
flows against the server, with no knowledge of mcpward."""

from __future__ import annotations

import secrets

from authlib.integrations.httpx_client import AsyncOAuth2Client

from tests.server.conftest import RESOURCE, Running
from tests.server.support import REDIRECT, get_code, public_client


async def test_authlib_client_credentials(running: Running) -> None:
    secret = await running.confidential_client()
    async with AsyncOAuth2Client(
        "agent", secret, token_endpoint_auth_method="client_secret_basic", scope="orders.read"
    ) as client:
        token = await client.fetch_token(
            running.url + "/token", grant_type="client_credentials", resource=RESOURCE
        )
    assert token["token_type"] == "Bearer" and token["scope"] == "orders.read"


async def test_authlib_code_exchange_and_refresh(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    code = await get_code(running, verifier)
    async with AsyncOAuth2Client(
        "cli",
        token_endpoint_auth_method="none",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    ) as client:
        token = await client.fetch_token(
            running.url + "/token", code=code, code_verifier=verifier, resource=RESOURCE
        )
        assert token["refresh_token"].startswith("mcpw_rt_")
        refreshed = await client.refresh_token(
            running.url + "/token", refresh_token=token["refresh_token"]
        )
    assert refreshed["refresh_token"] != token["refresh_token"]
    assert refreshed["access_token"] != token["access_token"]
