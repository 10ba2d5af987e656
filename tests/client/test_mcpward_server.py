"""Against the project's own authorization server and guard, over real HTTP: an agent
(client_credentials) and a person (DCR, sign-in and consent pages, step-up, refresh
rotation), each through the `mcp` SDK client and the guarded demo MCP server."""

from __future__ import annotations

from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward._clock import system_clock
from mcpward.client import AgentAuth, HumanAuth, InvalidClientError, MemoryStore
from mcpward.client._token_store import session_key
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server import create_app
from mcpward.storage.records import ClientRecord, ResourceRecord
from tests.client.conftest import serve_demo
from tests.client.support import PagesBrowser
from tests.conftest import serve
from tests.pages.support import start_site
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
    server = await open_server(settings)
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
                    tools = {
                        t.name
                        for t in (await client.list_tools()).tools
                        if (t.meta or {})["io.mcpward/scopes"]["granted"]
                    }
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
            first = store.load(auth.session_key)
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
            second = store.load(auth.session_key)
            assert second is not None and second.refresh_token not in (None, first.refresh_token)
            assert len(browser.visits) == 2


async def call_whoami(auth: HumanAuth, resource: str) -> dict[str, object]:
    async with (
        httpx2.AsyncClient(auth=auth) as http,
        Client(streamable_http_client(resource, http_client=http)) as client,
    ):
        who = await client.call_tool("whoami", {})
    content: dict[str, object] | None = who.structured_content
    assert content is not None
    return content


async def test_a_server_that_moves_to_another_authorization_server_registers_anew_there(
    tmp_path: Path,
) -> None:
    """SEP-2352: client credentials belong to one authorization server. When the MCP server's
    metadata names another one, the client registers there instead of presenting the first
    one's client_id, and keeps the first session for the day the server moves back."""
    mcp_port = free_port()
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with (
        start_site(tmp_path / "a", clock=system_clock, resource=resource) as a,
        start_site(tmp_path / "b", clock=system_clock, resource=resource) as b,
    ):
        await a.add_user()
        await b.add_user()
        browser, store = PagesBrowser(), MemoryStore()
        auth = HumanAuth(
            resource,
            store=store,
            authorize=browser,
            scopes=["orders.read"],
            lock_dir=tmp_path / "locks",
        )
        try:
            async with serve_demo(a.issuer, resource, mcp_port):
                await call_whoami(auth, resource)
            at_a = store.load(session_key(resource, a.issuer))
            assert at_a is not None and at_a.refresh_token
            async with serve_demo(b.issuer, resource, mcp_port):
                # The same running client: its token from A is refused, discovery names B.
                await call_whoami(auth, resource)
        finally:
            await auth.aclose()
        first, second = (httpx.URL(url) for url in browser.visits)
        assert (first.port, second.port) == (httpx.URL(a.issuer).port, httpx.URL(b.issuer).port)
        assert second.params["client_id"] != first.params["client_id"]
        assert await b.server.clients.get(first.params["client_id"]) is None
        at_b = store.load(session_key(resource, b.issuer))
        assert at_b is not None and at_b.registration.issuer == b.issuer
        assert store.load(session_key(resource, a.issuer)) == at_a  # untouched

        # Back to A: the session kept for A refreshes there, no browser.
        async with serve_demo(a.issuer, resource, mcp_port):
            later = HumanAuth(resource, store=store, interactive=False, lock_dir=tmp_path / "locks")
            try:
                who = await call_whoami(later, resource)
            finally:
                await later.aclose()
        assert who["client_id"] == first.params["client_id"]
        assert len(browser.visits) == 2


async def test_a_session_stored_by_an_earlier_release_is_taken_over(tmp_path: Path) -> None:
    """Earlier releases keyed a session by the MCP server's URL alone; the first refresh
    moves it under the issuer-qualified key instead of asking the user to sign in again."""
    mcp_port = free_port()
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with start_site(tmp_path, clock=system_clock, resource=resource) as site:
        await site.add_user()
        store = MemoryStore()
        async with serve_demo(site.issuer, resource, mcp_port):
            first = HumanAuth(
                resource, store=store, authorize=PagesBrowser(), lock_dir=tmp_path / "locks"
            )
            try:
                await first.login(["orders.read"])
            finally:
                await first.aclose()
            session = store.load(first.session_key)
            assert session is not None
            store.delete(first.session_key)
            store.save(first.key, session)  # where an earlier release put it

            later = HumanAuth(resource, store=store, interactive=False, lock_dir=tmp_path / "locks")
            try:
                assert await later.token()
            finally:
                await later.aclose()
        assert store.load(first.key) is None
        moved = store.load(later.session_key)
        assert moved is not None and moved.refresh_token not in (None, session.refresh_token)
