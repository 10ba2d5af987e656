"""End to end with the real pieces: the ``mcp`` SDK's OAuth client connects to the
protected demo server (mcpward guard), is sent to the authorization server, a real browser
(Debian chromium, JavaScript off) signs in and approves, the client redeems the code and
calls a tool; then the refresh token is rotated and the new access token works too."""

from __future__ import annotations

import asyncio
import json
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import (
    AuthorizationCodeResult,
    OAuthClientInformationFull,
    OAuthClientMetadata,
    OAuthToken,
)
from playwright.async_api import Route

from mcpward._clock import system_clock
from mcpward.demo import build_protected_demo
from tests.guard.support import bearer_client
from tests.guard.support import serve as serve_in_thread
from tests.pages.browser import chromium, shot
from tests.pages.support import PASSWORD, start_site
from tests.services import free_port

pytestmark = pytest.mark.browser

DEMO_SCOPES = {
    "orders.read": "Read your orders",
    "orders.write": "Change your orders",
    "refund.admin": "Issue refunds",
}


class MemoryStorage:
    """The SDK's token storage, in memory; the client is pre-registered with the server."""

    def __init__(self, client_info: OAuthClientInformationFull) -> None:
        self.tokens: OAuthToken | None = None
        self.client_info: OAuthClientInformationFull | None = client_info

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client_info

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client_info = client_info


def demo_tools() -> list[dict[str, Any]]:
    text = resources.files("mcpward.demo").joinpath("manifest.json").read_text()
    tools: list[dict[str, Any]] = json.loads(text)["tools"]
    return tools


async def test_mcp_sdk_client_signs_in_through_the_browser_and_calls_a_tool(
    tmp_path: Path,
) -> None:
    demo_port, callback_port = free_port(), free_port()
    resource = f"http://127.0.0.1:{demo_port}/mcp"
    redirect_uri = f"http://127.0.0.1:{callback_port}/callback"
    async with start_site(
        tmp_path, clock=system_clock, resource=resource, tools=demo_tools()
    ) as site:
        user = await site.add_user()
        await site.add_client("orders-agent", name="Orders Agent", redirect_uris=(redirect_uri,))
        demo = build_protected_demo(issuer=site.issuer, resource=resource)
        with serve_in_thread(demo, demo_port):
            async with chromium() as browser:
                context = await browser.new_context(java_script_enabled=False)
                page = await context.new_page()
                landed: asyncio.Future[str] = asyncio.get_running_loop().create_future()

                async def on_callback(route: Route) -> None:
                    if not landed.done():
                        landed.set_result(route.request.url)
                    await route.fulfill(
                        status=200, content_type="text/html", body="<h1>Return to the app</h1>"
                    )

                await page.route(f"http://127.0.0.1:{callback_port}/**", on_callback)

                async def redirect_handler(url: str) -> None:
                    assert url.startswith(site.issuer + "/authorize?")
                    await page.goto(url)
                    await page.get_by_label("Username").fill("alice")
                    await page.get_by_label("Password").fill(PASSWORD)
                    await page.get_by_role("button", name="Sign in").click()
                    await page.get_by_role(
                        "heading", name="Orders Agent wants to access"
                    ).wait_for()
                    await shot(page, "10-mcp-client-consent")
                    await page.get_by_role("button", name="Allow access").click()

                async def callback_handler() -> AuthorizationCodeResult:
                    url = httpx.URL(await asyncio.wait_for(landed, 30))
                    return AuthorizationCodeResult(
                        code=url.params["code"], state=url.params["state"], iss=url.params["iss"]
                    )

                storage = MemoryStorage(
                    OAuthClientInformationFull(
                        client_id="orders-agent",
                        redirect_uris=[redirect_uri],
                        token_endpoint_auth_method="none",
                        grant_types=["authorization_code", "refresh_token"],
                        issuer=site.issuer,
                    )
                )
                auth = OAuthClientProvider(
                    server_url=resource,
                    client_metadata=OAuthClientMetadata(
                        client_name="Orders Agent",
                        redirect_uris=[redirect_uri],
                        grant_types=["authorization_code", "refresh_token"],
                        token_endpoint_auth_method="none",
                    ),
                    storage=storage,
                    redirect_handler=redirect_handler,
                    callback_handler=callback_handler,
                )
                http = bearer_client(None, auth=auth)
                async with Client(streamable_http_client(resource, http_client=http)) as client:
                    found = await client.call_tool("search_orders", {"query": "acme"})
                    assert not found.is_error
                    assert "ord_1001" in str(found.structured_content)
                    who = await client.call_tool("whoami", {})
                    assert who.structured_content is not None
                    assert who.structured_content["subject"] == user.id
                    assert who.structured_content["client_id"] == "orders-agent"
                await context.close()

            # A refresh after the flow: the rotated refresh token gives a working access token.
            tokens = storage.tokens
            assert tokens is not None and tokens.refresh_token
            async with httpx.AsyncClient() as plain:
                refreshed = await plain.post(
                    site.issuer + "/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": tokens.refresh_token,
                        "client_id": "orders-agent",
                        "resource": resource,
                    },
                )
            assert refreshed.status_code == 200, refreshed.text
            fresh = refreshed.json()
            assert fresh["refresh_token"] != tokens.refresh_token
            async with Client(
                streamable_http_client(resource, http_client=bearer_client(fresh["access_token"]))
            ) as client:
                again = await client.call_tool("search_orders", {"query": "globex"})
                assert "ord_1003" in str(again.structured_content)
        names = [e["event"] for e in site.events()]
        assert "login.succeeded" in names and "consent.granted" in names
