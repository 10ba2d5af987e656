"""The test harness's own servers: starting and stopping them leaves the process as it
was, so one test's servers cannot end another test's event streams."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import httpx
from sse_starlette import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from tests.conftest import serve
from tests.guard.support import serve as serve_in_thread


def _plain_app() -> Starlette:
    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route("/", hello)])


def _stream_app() -> Starlette:
    async def events(request: Request) -> EventSourceResponse:
        async def three() -> AsyncIterator[dict[str, str]]:
            for n in range(3):
                await asyncio.sleep(0.3)
                yield {"data": str(n)}

        return EventSourceResponse(three())

    return Starlette(routes=[Route("/events", events)])


async def test_servers_stopped_in_start_order_leave_no_signal_handler_behind() -> None:
    """Two servers stopped first-started-first (as a test stopping replica one, then
    two, does): afterwards SIGTERM is handled as before, and an SSE answer that takes
    longer than sse-starlette's 0.5 s shutdown poll arrives whole. (With uvicorn's own
    handlers the first server's stale handler stayed installed and sse-starlette ended
    every later stream in the process.)"""
    before = signal.getsignal(signal.SIGTERM)
    one, two = serve(_plain_app()), serve(_plain_app())
    for server in (one, two):
        url = await server.__aenter__()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{url}/")).text == "hello"
    await one.__aexit__(None, None, None)
    await two.__aexit__(None, None, None)
    assert signal.getsignal(signal.SIGTERM) == before

    # Served from a thread, as the MCP upstreams in the gateway tests are: a server
    # there installs no handlers, so it is the process's SIGTERM handler it is judged by.
    with serve_in_thread(_stream_app()) as url:
        async with (
            httpx.AsyncClient(timeout=10) as http,
            http.stream("GET", f"{url}/events") as response,
        ):
            body = (await response.aread()).decode()
    assert [line for line in body.splitlines() if line.startswith("data:")] == [
        "data: 0",
        "data: 1",
        "data: 2",
    ]
