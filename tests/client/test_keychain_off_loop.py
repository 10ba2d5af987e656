"""Keychain calls never stall the event loop: a keyring backend that blocks (as the Secret
Service does while it waits for the user to unlock the collection) holds only its worker
thread while the loop keeps serving other coroutines.

The backend here is a stand-in on purpose: the real Secret Service (tests/client/
test_token_store.py) answers at once once unlocked, and an unlock prompt cannot be shown
without a screen. Every other part is real: `keyring`'s own API (`keyring.set_keyring`),
oidc-provider as the authorization server, the guarded demo MCP server, the loopback
sign-in. Each keychain call blocks until a coroutine on the loop lets it go, so a call made
on the loop thread could never return: the test waits for conditions, not for timers.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import keyring
import pytest
from jaraco.classes.properties import classproperty
from keyring.backend import KeyringBackend

from mcpward.client import AgentAuth, HumanAuth, KeyringSecret, KeyringStore
from tests.client.conftest import AGENT_SECRET, Stack
from tests.client.support import DevInteractionsBrowser

pytestmark = pytest.mark.node

STALL_LIMIT = 10.0  # seconds a blocked call waits for the loop before giving up


class GatedKeyring(KeyringBackend):
    """Holds each call until `release_from_loop` (running on the event loop) lets it go."""

    @classproperty
    def priority(cls) -> float:
        raise RuntimeError("a test backend: only used through keyring.set_keyring")

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # keyring ships no annotations here
        self.items: dict[tuple[str, str], str] = {}
        self.pending: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
        self.threads: list[int] = []

    def _gate(self) -> None:
        self.threads.append(threading.get_ident())
        released = threading.Event()
        self.pending.put(released)
        if not released.wait(STALL_LIMIT):
            raise TimeoutError("the event loop stopped while a keychain call was blocked")

    def get_password(self, service: str, username: str) -> str | None:
        self._gate()
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self._gate()
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self._gate()
        self.items.pop((service, username), None)


@pytest.fixture
def gated() -> Iterator[GatedKeyring]:
    previous = keyring.get_keyring()
    backend = GatedKeyring()
    keyring.set_keyring(backend)
    try:
        yield backend
    finally:
        keyring.set_keyring(previous)


@asynccontextmanager
async def released_from_the_loop(backend: GatedKeyring) -> AsyncIterator[None]:
    """Runs another coroutine on this loop that lets each blocked keychain call go. It can
    only run while the loop is free, so each release proves the loop kept going; on leaving,
    checks that every call was released by it and none ran on the loop's thread."""
    loop_thread, released = threading.get_ident(), 0
    stop = asyncio.Event()

    async def release() -> None:
        nonlocal released
        while not stop.is_set():
            try:
                backend.pending.get_nowait().set()
                released += 1
            except queue.Empty:
                await asyncio.sleep(0.001)

    releaser = asyncio.create_task(release())
    try:
        yield
    finally:
        stop.set()
        await releaser
    assert backend.threads and released == len(backend.threads)
    assert loop_thread not in backend.threads


async def test_sign_in_and_refresh_keep_the_loop_running_while_the_keychain_blocks(
    stack: Stack, tmp_path: Path, gated: GatedKeyring
) -> None:
    async with released_from_the_loop(gated):
        first = HumanAuth(
            stack.mcp_url,
            store=KeyringStore(),
            authorize=DevInteractionsBrowser(),
            lock_dir=tmp_path / "locks",
        )
        try:
            await first.login(["orders.read"])
        finally:
            await first.aclose()
        # A later process: load the stored session, refresh, store the rotated token.
        later = HumanAuth(
            stack.mcp_url, store=KeyringStore(), interactive=False, lock_dir=tmp_path / "locks"
        )
        try:
            assert await later.token()
        finally:
            await later.aclose()
    assert len(gated.threads) >= 4  # load + save at sign-in, load + save at refresh
    [stored] = gated.items.values()
    assert "refresh_token" in stored


async def test_an_agent_reads_its_keychain_secret_off_the_loop(
    stack: Stack, gated: GatedKeyring
) -> None:
    gated.items[("deploy", "agent-basic")] = AGENT_SECRET
    async with released_from_the_loop(gated):
        auth = AgentAuth(
            stack.mcp_url,
            client_id="agent-basic",
            client_secret=KeyringSecret("deploy", "agent-basic"),
            scopes=["orders.read"],
        )
        try:
            assert await auth.token()
        finally:
            await auth.aclose()
