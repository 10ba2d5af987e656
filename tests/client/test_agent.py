"""An agent: client_credentials with each client authentication method against a real
authorization server (oidc-provider), the 60 s proactive refresh with a moved clock, one
token request for many tasks, backoff on transient failures, secret rotation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import httpx2
import pytest
from joserfc.jwk import ECKey
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward._clock import FrozenClock
from mcpward.client import AgentAuth, FileSecret, InvalidClientError, StaticSecret
from tests.client.conftest import AGENT_SECRET, Stack
from tests.client.scripted_token_endpoint import ScriptedTokenEndpoint


def token_counter() -> tuple[httpx.AsyncClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        if request.url.path == "/token":
            seen.append(request)

    return httpx.AsyncClient(event_hooks={"request": [record]}), seen


@pytest.mark.node
@pytest.mark.parametrize("client_id", ["agent-basic", "agent-post", "agent-jwt"])
async def test_agent_calls_a_guarded_tool_with_each_auth_method(
    stack: Stack, agent_jwk: dict[str, object], client_id: str
) -> None:
    http, seen = token_counter()
    pem = ECKey.import_key(agent_jwk).as_pem(private=True).decode()  # type: ignore[arg-type]
    auth = AgentAuth(
        stack.mcp_url,
        client_id=client_id,
        client_secret=AGENT_SECRET if client_id != "agent-jwt" else None,
        private_key=StaticSecret(pem) if client_id == "agent-jwt" else None,
        signing_algorithm="ES256",
        auth_method="client_secret_post" if client_id == "agent-post" else None,
        scopes=["orders.read"],
        http=http,
    )
    try:
        async with (
            httpx2.AsyncClient(auth=auth) as mcp_http,
            Client(streamable_http_client(stack.mcp_url, http_client=mcp_http)) as client,
        ):
            who = await client.call_tool("whoami", {})
            await client.call_tool("search_orders", {"query": "acme"})
    finally:
        await auth.aclose()
        await http.aclose()
    assert who.structured_content == {
        "subject": client_id,
        "client_id": client_id,
        "scopes": ["orders.read"],
    }
    (token_request,) = seen
    body = token_request.content.decode()
    assert "grant_type=client_credentials" in body
    assert "resource=http" in body
    if client_id == "agent-basic":
        assert token_request.headers["authorization"].startswith("Basic ")
    elif client_id == "agent-post":
        assert "client_secret=" in body
    else:
        assert "client_assertion_type=urn" in body and "client_secret" not in body


@pytest.mark.node
async def test_token_is_refreshed_60s_before_expiry_with_a_moved_clock(stack: Stack) -> None:
    clock = FrozenClock()
    http, seen = token_counter()
    auth = AgentAuth(
        stack.mcp_url,
        client_id="agent-basic",
        client_secret=AGENT_SECRET,
        clock=clock,
        http=http,
    )
    try:
        first = await auth.token()
        assert len(seen) == 1
        clock.advance(900 - 61)  # oidc-provider issues 900 s tokens here
        assert await auth.token() == first
        assert auth._inflight is not None and auth._inflight.done()
        assert len(seen) == 1
        clock.advance(2)  # now inside the last 60 s: still valid, replaced in the background
        assert await auth.token() == first
        assert auth._inflight is not None
        renewed = await auth._inflight
        assert len(seen) == 2
        assert await auth.token() == renewed.access_token != first
    finally:
        await auth.aclose()
        await http.aclose()


@pytest.mark.node
async def test_many_tasks_trigger_one_token_request(stack: Stack) -> None:
    http, seen = token_counter()
    auth = AgentAuth(stack.mcp_url, client_id="agent-basic", client_secret=AGENT_SECRET, http=http)
    try:
        tokens = await asyncio.gather(*(auth.token() for _ in range(50)))
    finally:
        await auth.aclose()
        await http.aclose()
    assert len(set(tokens)) == 1
    assert len(seen) == 1


async def test_transient_failures_are_retried_with_backoff() -> None:
    delays: list[float] = []

    async def no_wait(seconds: float) -> None:
        delays.append(seconds)

    endpoint = ScriptedTokenEndpoint("s3cret", failures=[503, 502, 429])
    async with endpoint.running():
        auth = AgentAuth(
            token_endpoint=endpoint.url,
            client_id="agent",
            client_secret="s3cret",
            auth_method="client_secret_basic",
            sleep=no_wait,
            backoff=0.5,
        )
        try:
            assert await auth.token() == endpoint.issued[0]
        finally:
            await auth.aclose()
    assert endpoint.calls == 4
    assert delays == [0.5, 1.0, 2.0]


async def test_valid_token_keeps_being_used_while_the_endpoint_is_down() -> None:
    clock = FrozenClock()
    gate = asyncio.Event()

    async def slow_backoff(seconds: float) -> None:
        await gate.wait()

    endpoint = ScriptedTokenEndpoint("s3cret")
    async with endpoint.running():
        auth = AgentAuth(
            token_endpoint=endpoint.url,
            client_id="agent",
            client_secret="s3cret",
            auth_method="client_secret_basic",
            clock=clock,
            sleep=slow_backoff,
        )
        try:
            first = await auth.token()
            endpoint.failures = [503]
            clock.advance(900 - 30)
            # The background refresh is failing and backing off; callers are not held up.
            for _ in range(5):
                assert await asyncio.wait_for(auth.token(), 1) == first
            gate.set()
            assert auth._inflight is not None
            second = (await auth._inflight).access_token
            assert second != first and await auth.token() == second
        finally:
            await auth.aclose()


async def test_rotated_secret_file_is_reread_on_invalid_client(tmp_path: Path) -> None:
    secret_file = tmp_path / "secret"
    secret_file.write_text("old-secret\n")
    endpoint = ScriptedTokenEndpoint("old-secret", expires_in=30)
    async with endpoint.running():
        auth = AgentAuth(
            token_endpoint=endpoint.url,
            client_id="agent",
            client_secret=FileSecret(secret_file),
            auth_method="client_secret_basic",
            refresh_before=60,
        )
        try:
            await auth.token()
            # The authorization server rotates the secret; the deployment rewrites the file.
            endpoint.secret = "new-secret"
            secret_file.write_text("new-secret\n")
            auth._tokens = None
            assert await auth.token() == endpoint.issued[-1]
            # A wrong secret that does not change is an error, not a retry loop.
            endpoint.secret = "newer-secret"
            auth._tokens = None
            with pytest.raises(InvalidClientError) as raised:
                await auth.token()
            assert "new-secret" not in str(raised.value)
        finally:
            await auth.aclose()


@pytest.mark.node
async def test_sync_httpx_client_with_an_agent(stack: Stack) -> None:
    def sync_calls() -> list[int]:
        auth = AgentAuth(
            stack.mcp_url,
            client_id="agent-basic",
            client_secret=AGENT_SECRET,
            scopes=["orders.read"],
        )
        try:
            with httpx.Client(auth=auth) as http:
                return [
                    http.post(
                        stack.mcp_url,
                        json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                        headers={"Accept": "application/json, text/event-stream"},
                    ).status_code
                    for _ in range(3)
                ]
        finally:
            auth.close()

    # The servers run on this test's event loop, so the sync client runs in a thread.
    statuses = await asyncio.to_thread(sync_calls)
    assert 401 not in statuses and 403 not in statuses


async def test_idle_agent_is_woken_to_refresh_ahead_of_expiry() -> None:
    # 6 s tokens: refreshed at half-life (3 s) since they live less than twice the 60 s lead;
    # the next refresh is 3 s later, room enough for a loaded machine to check the first.
    endpoint = ScriptedTokenEndpoint("s3cret", expires_in=6)
    async with endpoint.running():
        auth = AgentAuth(
            token_endpoint=endpoint.url,
            client_id="agent",
            client_secret="s3cret",
            auth_method="client_secret_basic",
        )
        try:
            first = await auth.token()
            for _ in range(200):  # no request is made meanwhile
                if endpoint.calls >= 2:
                    break
                await asyncio.sleep(0.05)
            assert endpoint.calls == 2
            assert await auth.token() == endpoint.issued[1] != first
            assert endpoint.calls == 2  # the fresh token is served from the cache
        finally:
            await auth.aclose()
