"""DPoP end to end through mcpward's client library inside the `mcp` SDK client, against
mcpward's own authorization server (sign-in and consent pages) and guard over real HTTP:
a person's session binds its code, tokens and refresh token to a key of its own that is
stored beside the refresh token and survives a restart, while the refresh token alone is
worthless; an agent follows both servers' nonces (RFC 9449 §8, §9)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward._clock import system_clock
from mcpward.audit import AuditLog, MemorySink
from mcpward.client import AgentAuth, HumanAuth, MemoryStore
from mcpward.compose.server import open_server
from mcpward.config import DPoPSettings, Settings
from mcpward.demo import demo_manifest
from mcpward.dpop import NonceSource, ProofKey
from mcpward.guard import make_guard
from mcpward.server import create_app
from mcpward.storage.records import ClientRecord, ResourceRecord
from tests.client.conftest import serve_demo
from tests.client.support import PagesBrowser
from tests.conftest import serve
from tests.pages.support import start_site
from tests.services import free_port


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    value: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    )
    return value


async def tools_and_whoami(auth: HumanAuth | AgentAuth, resource: str) -> dict[str, Any]:
    async with (
        httpx2.AsyncClient(auth=auth) as http,
        Client(streamable_http_client(resource, http_client=http)) as client,
    ):
        await client.list_tools()
        who = await client.call_tool("whoami", {})
    content: dict[str, Any] | None = who.structured_content
    assert content is not None
    return content


async def test_a_person_s_session_is_bound_to_its_key(tmp_path: Path) -> None:
    mcp_port = free_port()
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with start_site(tmp_path, clock=system_clock, resource=resource) as site:
        await site.add_user()
        browser, store = PagesBrowser(), MemoryStore()
        async with serve_demo(site.issuer, resource, mcp_port):
            auth = HumanAuth(
                resource, store=store, authorize=browser, scopes=["orders.read"],
                lock_dir=tmp_path / "locks",
            )  # fmt: skip
            try:
                who = await tools_and_whoami(auth, resource)
                token = await auth.token()
            finally:
                await auth.aclose()
            assert who["scopes"] == ["orders.read"]
            stored = store.load(auth.session_key)
            assert stored is not None and stored.refresh_token and stored.dpop_key
            key = ProofKey.from_jwk(stored.dpop_key)
            # The code was bound at /authorize (dpop_jkt), the access token carries cnf.jkt.
            assert httpx.URL(browser.visits[0]).params["dpop_jkt"] == key.jkt
            assert claims(token)["cnf"] == {"jkt": key.jkt}
            issued = [e for e in site.audit.events() if e["event"] == "token.issued"]
            assert issued[-1]["detail"]["jkt"] == key.jkt  # type: ignore[index]

            # Whoever copies the refresh token out of the store, without the key, gets
            # nothing (RFC 9449 §5), and the real session is not harmed by the attempt.
            token_url = site.issuer + "/token"
            form = {
                "grant_type": "refresh_token",
                "refresh_token": stored.refresh_token,
                "client_id": stored.registration.client_id,
            }
            thief = ProofKey.generate()
            async with httpx.AsyncClient() as http:
                for headers in ({}, {"DPoP": thief.proof("POST", token_url)}):
                    stolen = await http.post(token_url, data=form, headers=headers)
                    assert stolen.json()["error"] == "invalid_grant"

            # The next process: the stored key proves the stored refresh token, no browser.
            later = HumanAuth(resource, store=store, interactive=False, lock_dir=tmp_path / "locks")
            try:
                assert (await tools_and_whoami(later, resource))["scopes"] == ["orders.read"]
                assert claims(await later.token())["cnf"] == {"jkt": key.jkt}
            finally:
                await later.aclose()
            rotated = store.load(auth.session_key)
            assert rotated is not None and rotated.refresh_token != stored.refresh_token
            assert rotated.dpop_key == stored.dpop_key
            assert len(browser.visits) == 1


async def test_an_agent_follows_both_servers_nonces(tmp_path: Path) -> None:
    as_port, mcp_port = free_port(), free_port()
    issuer, resource = f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{mcp_port}/mcp"
    sink = MemorySink()
    settings = Settings(
        issuer=issuer,
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}",
        dpop=DPoPSettings(require_nonce=True),
    )
    server = await open_server(settings, audit=AuditLog([sink]))
    guard_audit = MemorySink()
    guard = make_guard(
        issuer=issuer,
        resource=resource,
        manifest=demo_manifest(),
        dpop_nonces=NonceSource(b"g" * 32),
        audit=AuditLog([guard_audit]),
    )
    try:
        await server.register_resource(
            ResourceRecord(uri=resource, name="Orders", scopes={"orders.read": "Read orders"})
        )
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
        assert created is not None
        async with (
            serve(create_app(server), as_port),
            serve_demo(issuer, resource, mcp_port, guard=guard),
        ):
            answers: list[tuple[str, int]] = []

            async def note(response: httpx.Response) -> None:
                body = (await response.aread()).decode()
                answers.append((response.request.url.path, response.status_code))
                if response.status_code == 400:
                    assert json.loads(body)["error"] == "use_dpop_nonce"

            http = httpx.AsyncClient(event_hooks={"response": [note]})
            auth = AgentAuth(resource, client_id="agent", client_secret=created.secret, http=http)
            try:
                who = await tools_and_whoami(auth, resource)
                assert auth.token_requests == 1
                assert auth.cached is not None and auth.cached.token_type == "DPoP"
            finally:
                await auth.aclose()
                await http.aclose()
            token_answers = [status for path, status in answers if path == "/token"]
            assert token_answers == [400, 200]  # use_dpop_nonce, then the retry with it
        assert who["client_id"] == "agent"
        # Each server asked for its nonce once; every later request carried it. (The
        # guard's first answer is the token-less discovery probe's 401.)
        requests = [e for e in guard_audit.events() if e["event"] == "mcp.request"]
        reasons = [e.get("reason") for e in requests]
        assert reasons.count("use_dpop_nonce") == 1
        after = requests[reasons.index("use_dpop_nonce") + 1 :]
        assert after and {e["outcome"] for e in after} == {"ok"}
        assert not [e for e in sink.events() if e["event"] == "dpop.proof_rejected"]
    finally:
        await server.close()
