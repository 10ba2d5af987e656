"""A person signing in: mcpward's HumanAuth inside the `mcp` SDK client, against a real
third-party authorization server (oidc-provider) and the project's guarded demo server."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward._clock import FrozenClock
from mcpward.client import FileStore, HumanAuth, MemoryStore, SignInRequired, SignInTimeout
from tests.client.conftest import Stack
from tests.client.support import DevInteractionsBrowser

pytestmark = pytest.mark.node


def human(stack: Stack, tmp_path: Path, **kwargs: object) -> HumanAuth:
    kwargs.setdefault("store", MemoryStore())
    kwargs.setdefault("authorize", DevInteractionsBrowser())
    return HumanAuth(stack.mcp_url, lock_dir=tmp_path / "locks", **kwargs)  # type: ignore[arg-type]


async def call(auth: HumanAuth, url: str, tool: str, arguments: dict[str, object]) -> object:
    async with (
        httpx2.AsyncClient(auth=auth) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.call_tool(tool, arguments)
        assert not result.is_error, result
        return result.structured_content


async def never_called(url: str) -> None:
    raise AssertionError("a browser sign-in was started")


async def test_first_call_signs_in_and_the_session_is_stored(stack: Stack, tmp_path: Path) -> None:
    browser = DevInteractionsBrowser()
    store = FileStore(tmp_path / "credentials.json")
    auth = human(stack, tmp_path, store=store, authorize=browser, scopes=["orders.read"])
    try:
        who = await call(auth, stack.mcp_url, "whoami", {})
    finally:
        await auth.aclose()
    assert who == {"subject": "alice", "client_id": who["client_id"], "scopes": ["orders.read"]}  # type: ignore[index]
    assert len(browser.visits) == 1
    request = httpx.URL(browser.visits[0])
    assert request.params["code_challenge_method"] == "S256"
    assert request.params["resource"] == stack.mcp_url
    assert "offline_access" in request.params["scope"].split()
    # Refresh token and registration are stored; the access token never is.
    session = store.load(auth.session_key)
    assert session is not None and session.refresh_token
    assert session.registration.issuer == stack.issuer
    text = (tmp_path / "credentials.json").read_text()
    assert auth._tokens is not None and auth._tokens.access_token not in text
    assert (tmp_path / "credentials.json").stat().st_mode & 0o777 == 0o600


async def test_next_process_refreshes_silently_and_rotation_is_stored(
    stack: Stack, tmp_path: Path
) -> None:
    store = MemoryStore()
    first = human(stack, tmp_path, store=store)
    await first.login(["orders.read"])
    await first.aclose()
    before = store.load(first.session_key)
    assert before is not None and before.refresh_token

    second = human(stack, tmp_path, store=store, authorize=never_called)
    try:
        await call(second, stack.mcp_url, "search_orders", {"query": "acme"})
    finally:
        await second.aclose()
    after = store.load(second.session_key)
    assert after is not None and after.refresh_token
    assert after.refresh_token != before.refresh_token  # rotated, and the new one kept


async def test_two_processes_do_not_burn_each_others_refresh_token(
    stack: Stack, tmp_path: Path
) -> None:
    store = FileStore(tmp_path / "credentials.json")
    first = human(stack, tmp_path, store=store)
    await first.login(["orders.read"])
    await first.aclose()
    # Two CLI invocations at once: same store, same lock directory, no shared memory.
    a = human(stack, tmp_path, store=store, authorize=never_called, interactive=False)
    b = human(stack, tmp_path, store=store, authorize=never_called, interactive=False)
    try:
        tokens = await asyncio.gather(a.token(), b.token(), a.token(), b.token())
    finally:
        await asyncio.gather(a.aclose(), b.aclose())
    assert all(tokens)
    # The chain is intact: a third process can still refresh.
    c = human(stack, tmp_path, store=store, authorize=never_called, interactive=False)
    try:
        assert await c.token()
    finally:
        await c.aclose()


async def test_revoked_refresh_token_leads_to_a_fresh_sign_in(stack: Stack, tmp_path: Path) -> None:
    store = MemoryStore()
    first = human(stack, tmp_path, store=store)
    await first.login(["orders.read"])
    await first.aclose()
    session = store.load(first.session_key)
    assert session is not None
    from dataclasses import replace

    store.save(first.session_key, replace(session, refresh_token="not-a-refresh-token"))

    noninteractive = human(stack, tmp_path, store=store, interactive=False)
    with pytest.raises(SignInRequired, match="mcpward login"):
        await noninteractive.token()
    await noninteractive.aclose()

    store.save(first.session_key, replace(session, refresh_token="not-a-refresh-token"))
    browser = DevInteractionsBrowser()
    again = human(stack, tmp_path, store=store, authorize=browser)
    try:
        await call(again, stack.mcp_url, "whoami", {})
    finally:
        await again.aclose()
    assert len(browser.visits) == 1


async def test_insufficient_scope_steps_up_with_the_union_of_scopes(
    stack: Stack, tmp_path: Path
) -> None:
    browser = DevInteractionsBrowser()
    auth = human(stack, tmp_path, authorize=browser, scopes=["orders.read"])
    try:
        await auth.login()
        result = await call(auth, stack.mcp_url, "refund_order", {"order_id": "ord_1001"})
    finally:
        await auth.aclose()
    assert result is not None
    assert len(browser.visits) == 2
    stepped = set(httpx.URL(browser.visits[1]).params["scope"].split())
    assert {"orders.read", "orders.write", "refund.admin"} <= stepped


async def test_concurrent_callers_share_one_refresh(stack: Stack, tmp_path: Path) -> None:
    token_posts: list[str] = []

    async def count(request: httpx.Request) -> None:
        if request.url.path == "/token":
            token_posts.append(request.content.decode())

    http = httpx.AsyncClient(event_hooks={"request": [count]})
    store = MemoryStore()
    first = human(stack, tmp_path, store=store)
    await first.login(["orders.read"])
    await first.aclose()
    auth = human(stack, tmp_path, store=store, http=http, interactive=False)
    try:
        tokens = await asyncio.gather(*(auth.token() for _ in range(20)))
    finally:
        await http.aclose()
    assert len(set(tokens)) == 1
    assert len([p for p in token_posts if "grant_type=refresh_token" in p]) == 1


async def test_sign_in_that_never_completes_times_out(stack: Stack, tmp_path: Path) -> None:
    async def user_walks_away(url: str) -> None:
        await asyncio.sleep(60)

    auth = human(stack, tmp_path, authorize=user_walks_away, login_timeout=0.5)
    with pytest.raises(SignInTimeout, match="within"):
        await auth.login()
    await auth.aclose()


async def test_sync_httpx_client_signs_in_and_calls(stack: Stack, tmp_path: Path) -> None:
    # The servers run on this test's event loop, so the sync client runs in a thread.
    response = await asyncio.to_thread(sync_initialize, stack, tmp_path)
    assert response.status_code == 200, response.text


def sync_initialize(stack: Stack, tmp_path: Path) -> httpx.Response:
    auth = human(stack, tmp_path, scopes=["orders.read"])
    try:
        with httpx.Client(auth=auth) as http:
            return http.post(
                stack.mcp_url,
                json={
                    "jsonrpc": "2.0",
                    "id": 1,
                    "method": "initialize",
                    "params": {
                        "protocolVersion": "2025-11-25",
                        "capabilities": {},
                        "clientInfo": {"name": "sync-test", "version": "1"},
                    },
                },
                headers={"Accept": "application/json, text/event-stream"},
            )
    finally:
        auth.close()


async def test_access_token_is_refreshed_60s_before_expiry_with_a_moved_clock(
    stack: Stack, tmp_path: Path
) -> None:
    clock = FrozenClock()
    auth = human(stack, tmp_path, clock=clock, scopes=["orders.read"])
    try:
        first = (await auth.login()).access_token
        clock.advance(900 - 61)  # oidc-provider issues 900 s access tokens here
        assert await auth.token() == first
        clock.advance(2)  # inside the last 60 s
        second = await auth.token()
        assert second != first
        assert await auth.token() == second
    finally:
        await auth.aclose()


async def test_logout_revokes_the_refresh_token_at_the_server(stack: Stack, tmp_path: Path) -> None:
    store = MemoryStore()
    auth = human(stack, tmp_path, store=store)
    await auth.login(["orders.read"])
    session = store.load(auth.session_key)
    assert session is not None and session.refresh_token
    await auth.logout()
    await auth.aclose()
    assert store.load(auth.session_key) is None
    async with httpx.AsyncClient() as http:
        response = await http.post(
            f"{stack.issuer}/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": session.refresh_token,
                "client_id": session.registration.client_id,
            },
        )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


async def test_nothing_secret_reaches_the_logs(
    stack: Stack, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    store = MemoryStore()
    auth = human(stack, tmp_path, store=store, scopes=["orders.read"])
    try:
        await call(auth, stack.mcp_url, "whoami", {})
        assert auth._tokens is not None
        access = auth._tokens.access_token
        auth._tokens = None
        refreshed = await auth.token()
        session = store.load(auth.session_key)
        assert session is not None and session.refresh_token
    finally:
        await auth.aclose()
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged  # the HTTP clients did log their requests
    for secret in (access, session.refresh_token, refreshed):
        assert secret not in logged
    # The browser stand-in logs the redirect it follows (a browser's history has it too);
    # the library itself logs neither the code nor the verifier.
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("mcpward"))
    assert "code=" not in ours
    assert "code_verifier" not in logged
