"""One auth flow, two HTTP stacks, two calling conventions.

The mcp SDK (2.x) speaks `httpx2`; applications often speak `httpx`. Both share the
`Auth` protocol (a generator that yields requests and receives responses), so our classes
subclass both and write the flow once, as an async generator. Sync clients drive that same
generator on a private event loop thread, so there is one implementation to get right.
An instance belongs either to async callers or to sync callers, not both: its locks and its
HTTP client live on one loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Awaitable, Coroutine, Generator
from typing import Any, TypeVar

import httpx
import httpx2

T = TypeVar("T")

# What the flows touch on a request or a response; both libraries provide it.
Request = Any
Response = Any


def new_http_client() -> httpx.AsyncClient:
    """The HTTP client a flow makes for itself (metadata, registration, token requests).

    Idle connections are dropped after 2 s rather than httpx's 5 s: Node's HTTP server (under
    many authorization servers, and the conformance suite's mocks) closes them after exactly
    5 s, and reusing one at that boundary, as after a sign-in that took about as long, fails
    with a ReadError on a request that cannot safely be sent twice (a code redemption)."""
    return httpx.AsyncClient(timeout=30.0, limits=httpx.Limits(keepalive_expiry=2.0))


class _LoopThread:
    """A daemon thread running an event loop, for sync callers."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="mcpward-auth", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


async def _await(awaitable: Awaitable[T]) -> T:
    return await awaitable


class FlowAuth(httpx.Auth, httpx2.Auth):
    """Base for `HumanAuth` and `AgentAuth`: subclasses implement `_flow` and `_aclose`."""

    _loop_thread: _LoopThread | None = None
    _thread_lock = threading.Lock()

    def _flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        raise NotImplementedError

    def auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        # Both bases declare this; the flow lives in the async and sync variants below.
        raise NotImplementedError("use sync_auth_flow or async_auth_flow")

    async def _aclose(self) -> None:
        """Release HTTP clients and background tasks."""

    async def async_auth_flow(self, request: Any) -> AsyncGenerator[Any, Any]:
        flow = self._flow(request)
        try:
            outgoing = await flow.__anext__()
            while True:
                response = yield outgoing
                try:
                    outgoing = await flow.asend(response)
                except StopAsyncIteration:
                    return
        finally:
            await flow.aclose()

    def sync_auth_flow(self, request: Any) -> Generator[Any, Any, None]:
        run = self._sync_runner().run
        flow = self._flow(request)
        try:
            outgoing = run(_await(flow.__anext__()))
            while True:
                response = yield outgoing
                try:
                    outgoing = run(_await(flow.asend(response)))
                except StopAsyncIteration:
                    return
        finally:
            run(flow.aclose())

    def run_sync(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run one of this object's coroutines for a sync caller (e.g. `token()`)."""
        return self._sync_runner().run(coro)

    def _sync_runner(self) -> _LoopThread:
        with self._thread_lock:
            if self._loop_thread is None:
                self._loop_thread = _LoopThread()
            return self._loop_thread

    async def aclose(self) -> None:
        await self._aclose()

    def close(self) -> None:
        """Close a sync-used instance (its private loop thread and HTTP client)."""
        if self._loop_thread is not None:
            self._loop_thread.run(self._aclose())
            self._loop_thread.close()
            self._loop_thread = None
