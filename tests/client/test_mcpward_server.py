"""Against the project's own authorization server and guard, over real HTTP: an agent
(client_credentials) and a person (DCR, sign-in and consent pages, step-up, refresh
rotation), each through the `mcp` SDK client and the guarded demo MCP server."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward._clock import system_clock
from mcpward.client import AgentAuth, HumanAuth, InvalidClientError, MemoryStore
from mcpward.config import Settings
from mcpward.server import AuthorizationServer, create_app
from mcpward.storage.records import ClientRecord, ResourceRecord
from tests.client.conftest import serve_demo
from tests.conftest import serve
from tests.pages.support import PASSWORD, start_site
from tests.pages.support import field as form_field
from tests.services import free_port

SCOPES = {"orders.read": "Read orders", "orders.write": "Change orders"}


async def test_agent_against_mcpward_authorization_server_and_guard(tmp_path: Path) -> None:
    as_port, mcp_port = free_port(), free_port()
    issuer, resource = f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{mcp_port}/mcp"
    settings = Settings(
        issuer=issuer,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}",
    )
    server = await AuthorizationServer.open(settings)
    try:
        await server.register_resource(ResourceRecord(uri=resource, name="Orders", scopes=SCOPES))
        created = await server.clients.create(
            ClientRecord(
                client_id="agent",
                name="agent",
                source="preregistered",
                token_endpoint_auth_method="client_secret_basic",
                grant_types=("client_credentials",),
                redirect_uris=(),
                allowed_scope="orders.read",
            )
        )
        assert created is not None and created.secret
        async with serve(create_app(server), as_port), serve_demo(issuer, resource, mcp_port):
            auth = AgentAuth(resource, client_id="agent", client_secret=created.secret)
            try:
                async with (
                    httpx2.AsyncClient(auth=auth) as http,
                    Client(streamable_http_client(resource, http_client=http)) as client,
                ):
                    who = await client.call_tool("whoami", {})
                    tools = {t.name for t in (await client.list_tools()).tools}
            finally:
                await auth.aclose()
            assert who.structured_content == {
                "subject": "agent",
                "client_id": "agent",
                "scopes": ["orders.read"],
            }
            assert "search_orders" in tools and "refund_order" not in tools

            wrong = AgentAuth(resource, client_id="agent", client_secret="mcpw_cs_wrong")
            try:
                with pytest.raises(InvalidClientError) as raised:
                    await wrong.token()
                assert "mcpw_cs_wrong" not in str(raised.value)
            finally:
                await wrong.aclose()
    finally:
        await server.close()


@dataclass
class PagesBrowser:
    """Signs in on mcpward's own login and consent pages over HTTP (cookies, CSRF fields),
    approves what is asked, and delivers the redirect to the client's loopback listener."""

    visits: list[str] = field(default_factory=list)

    async def __call__(self, url: str) -> None:
        self.visits.append(url)
        async with httpx.AsyncClient(timeout=10) as http:
            page = await http.get(url)
            assert page.status_code == 200, page.text
            origin = f"{page.url.scheme}://{page.url.netloc.decode()}"
            login = await http.post(
                f"{origin}/login",
                data={
                    "csrf": form_field(page.text, "csrf"),
                    "request": form_field(page.text, "request"),
                    "username": "alice",
                    "password": PASSWORD,
                },
            )
            location = login.headers["location"]
            if urlsplit(location).path != "/callback":  # not remembered yet: the consent page
                consent = await http.get(httpx.URL(origin).join(location))
                pairs = [
                    ("csrf", form_field(consent.text, "csrf")),
                    ("request", form_field(consent.text, "request")),
                    ("decision", "approve"),
                ]
                pairs += [
                    ("scope", s) for s in re.findall(r'name="scope" value="([^"]+)"', consent.text)
                ]
                done = await http.post(
                    f"{origin}/consent",
                    content=urlencode(pairs),
                    headers={"Content-Type": "application/x-www-form-urlencoded"},
                )
                location = done.headers["location"]
            await http.get(location)  # the loopback listener


async def test_person_against_mcpward_authorization_server_and_guard(tmp_path: Path) -> None:
    mcp_port = free_port()
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with start_site(tmp_path, clock=system_clock, resource=resource) as site:
        await site.add_user()
        browser = PagesBrowser()
        store = MemoryStore()
        async with serve_demo(site.issuer, resource, mcp_port):
            auth = HumanAuth(
                resource,
                store=store,
                authorize=browser,
                scopes=["orders.read"],
                lock_dir=tmp_path / "locks",
            )
            try:
                async with (
                    httpx2.AsyncClient(auth=auth) as http,
                    Client(streamable_http_client(resource, http_client=http)) as client,
                ):
                    who = await client.call_tool("whoami", {})
                    # Step-up: refunds need orders.write and refund.admin.
                    refund = await client.call_tool("refund_order", {"order_id": "ord_1001"})
            finally:
                await auth.aclose()
            assert who.structured_content is not None
            assert who.structured_content["scopes"] == ["orders.read"]
            assert not refund.is_error
            assert len(browser.visits) == 2
            first = store.load(auth.key)
            assert first is not None and first.refresh_token

            # The next process refreshes with rotation, no browser.
            later = HumanAuth(
                resource,
                store=store,
                authorize=browser,
                interactive=False,
                lock_dir=tmp_path / "locks",
            )
            try:
                assert await later.token()
            finally:
                await later.aclose()
            second = store.load(auth.key)
            assert second is not None and second.refresh_token not in (None, first.refresh_token)
            assert len(browser.visits) == 2
