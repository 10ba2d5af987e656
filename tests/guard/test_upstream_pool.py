"""The gateway's upstream client (``_upstream.py``) against real TCP servers on 127.0.0.1
that answer byte by byte as each test scripts them: keep-alive reuse, answers framed by
length, by chunks and by the connection's end, streaming as it arrives, timeouts, broken
and malformed answers, the pool's bound, and the exact head the gateway sends."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import anyio
import httpx
import pytest
from starlette.types import Message

from mcpward.demo import demo_manifest
from mcpward.guard import StaticKeys, make_guard
from mcpward.guard._upstream import UpstreamError, UpstreamPool
from mcpward.guard.gateway import Upstream, create_gateway

from .support import Minter, eventually, free_port, serve

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
HEAD = b"POST /mcp HTTP/1.1\r\nhost: upstream\r\ncontent-length: 2\r\n\r\n"


class Origin:
    """A TCP server running ``handler`` per connection; counts connections."""

    def __init__(self, handler: Handler | None) -> None:
        # None: answer OK to every request, keeping the connection alive.
        self.handler = handler or self.keep_alive
        self.connections = 0
        self.open = 0
        self.most_open = 0
        self.heads: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.open -= 1
            writer.close()

    async def keep_alive(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await self.read_request(reader)
            writer.write(OK)

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        """One request's head (recorded) and its Content-Length body."""
        head = await reader.readuntil(b"\r\n\r\n")
        self.heads.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        return await reader.readexactly(length) if length else b""

    @property
    def url(self) -> str:
        assert self.server is not None
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/mcp"


@pytest.fixture
async def origin() -> AsyncIterator[Callable[[Handler | None], Awaitable[Origin]]]:
    started: list[Origin] = []

    async def start(handler: Handler | None) -> Origin:
        o = Origin(handler)
        o.server = await asyncio.start_server(o._serve, "127.0.0.1", 0)
        started.append(o)
        return o

    yield start
    for o in started:
        assert o.server is not None
        o.server.close()


async def exchange(pool: UpstreamPool, body: bytes = b"{}") -> tuple[int, bytes]:
    response = await pool.send(HEAD, body)
    try:
        return response.status, await response.read()
    finally:
        response.release()


async def test_one_connection_serves_sequential_requests(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    o = await origin(None)
    pool = UpstreamPool(o.url)
    for _ in range(20):
        assert await exchange(pool) == (200, b"{}")
    assert o.connections == 1
    pool.close()


async def test_connection_idle_past_keepalive_is_not_reused(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    o = await origin(None)
    pool = UpstreamPool(o.url, keepalive=0.0)
    assert await exchange(pool) == (200, b"{}")
    assert await exchange(pool) == (200, b"{}")
    assert o.connections == 2
    pool.close()


async def test_a_connection_the_upstream_closed_is_replaced(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    """Keep-alive by default, but the upstream closes after each answer anyway: the pool
    notices the close and sends the next request on a new connection."""

    async def one_and_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await o.read_request(reader)
        writer.write(OK)
        await writer.drain()

    o = await origin(one_and_close)
    pool = UpstreamPool(o.url)
    assert await exchange(pool) == (200, b"{}")
    await eventually(lambda: pool.idle == 0)
    assert await exchange(pool) == (200, b"{}")
    assert o.connections == 2
    pool.close()


async def test_an_answer_delimited_by_the_connection_end(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await o.read_request(reader)
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n{"a": 1}')
        await writer.drain()

    o = await origin(until_close)
    pool = UpstreamPool(o.url)
    assert await exchange(pool) == (200, b'{"a": 1}')
    assert pool.idle == 0  # such a connection cannot carry another answer
    pool.close()


async def test_chunks_arrive_as_the_upstream_sends_them(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    """The second chunk is sent only after the client has received the first."""
    first_seen = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await o.read_request(reader)
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"transfer-encoding: chunked\r\n\r\n6\r\nevent1\r\n"
        )
        await first_seen.wait()
        writer.write(b"6\r\nevent2\r\n0\r\n\r\n")
        while True:
            await o.read_request(reader)
            writer.write(OK)

    o = await origin(chunked)
    pool = UpstreamPool(o.url)
    response = await pool.send(HEAD, b"{}")
    got = []
    with anyio.fail_after(5):
        async for chunk in response.chunks():
            got.append(chunk)
            first_seen.set()
    response.release()
    assert got == [b"event1", b"event2"]
    assert await exchange(pool) == (200, b"{}")  # the chunked answer ended cleanly: reused
    assert o.connections == 1
    pool.close()


async def test_no_answer_in_time_is_an_upstream_error(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await o.read_request(reader)
        await reader.read()  # no answer; returns when the gateway hangs up

    o = await origin(silent)
    pool = UpstreamPool(o.url, read_timeout=0.2)
    with anyio.fail_after(5), pytest.raises(UpstreamError):
        await exchange(pool)
    await eventually(lambda: o.open == 0)  # the gateway hung up on it
    pool.close()


async def test_malformed_and_broken_answers_are_upstream_errors(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await o.read_request(reader)
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()

    async def broken(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await b.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
        await writer.drain()

    o = await origin(garbage)
    b = await origin(broken)
    with pytest.raises(UpstreamError):
        await exchange(UpstreamPool(o.url))
    pool = UpstreamPool(b.url)
    response = await pool.send(HEAD, b"{}")
    assert response.status == 200
    got: list[bytes] = []

    async def drain() -> None:
        async for chunk in response.chunks():
            got.append(chunk)

    with pytest.raises(UpstreamError):
        await drain()
    response.release()
    assert got == [b"0123456789"]
    assert pool.idle == 0


async def test_nothing_listening_is_an_upstream_error() -> None:
    pool = UpstreamPool(f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(UpstreamError):
        await exchange(pool)


async def test_the_pool_bounds_the_connections_open_at_once(
    origin: Callable[..., Awaitable[Origin]],
) -> None:
    release = asyncio.Event()

    async def held(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await o.read_request(reader)
            await release.wait()
            writer.write(OK)

    o = await origin(held)
    pool = UpstreamPool(o.url, size=2)
    calls = [asyncio.ensure_future(exchange(pool)) for _ in range(5)]
    await eventually(lambda: len(o.heads) == 2)
    release.set()
    assert await asyncio.gather(*calls) == [(200, b"{}")] * 5
    assert o.most_open == 2
    pool.close()


async def test_the_head_the_gateway_sends(origin: Callable[..., Awaitable[Origin]]) -> None:
    """Only MCP's headers pass, in the client's bytes; the injected credential replaces
    the client's Authorization; Host names the upstream; the query string follows."""

    o = await origin(None)
    port = free_port()
    resource = f"http://127.0.0.1:{port}/mcp"
    m = Minter(resource=resource)
    guard = make_guard(
        issuer=m.issuer, resource=resource, manifest=demo_manifest(), keys=StaticKeys(m.jwks())
    )
    app = create_gateway(o.url, guard, upstream_headers={"Authorization": "Bearer upstream-key"})
    with serve(app, port) as base:
        async with httpx.AsyncClient() as http:
            r = await http.post(
                f"{base}/mcp?trace=1",
                content=b'{"jsonrpc":"2.0","id":1,"method":"ping"}',
                headers={
                    "authorization": f"Bearer {m.mint()}",
                    "content-type": "application/json",
                    "accept": "application/json, text/event-stream",
                    "mcp-protocol-version": "2025-11-25",
                    "mcp-method": "ping",
                    "cookie": "session=secret",
                    "origin": "http://evil.test",
                },
            )
    assert (r.status_code, r.content) == (200, b"{}")
    lines = o.heads[0].split(b"\r\n")
    port_of_origin = o.url.split(":")[2].split("/")[0]
    assert lines[0] == b"POST /mcp?trace=1 HTTP/1.1"
    headers = sorted(lines[1:-2])
    assert headers == sorted(
        [
            b"host: 127.0.0.1:" + port_of_origin.encode(),
            b"accept: application/json, text/event-stream",
            b"content-type: application/json",
            b"mcp-protocol-version: 2025-11-25",
            b"mcp-method: ping",
            b"user-agent: python-httpx/" + httpx.__version__.encode(),
            b"authorization: Bearer upstream-key",
            b"content-length: 40",
        ]
    )


def test_an_upstream_header_with_a_line_break_is_refused() -> None:
    with pytest.raises(ValueError, match="line break"):
        Upstream("http://127.0.0.1:9/mcp", headers={"X-Key": "a\r\nInjected: 1"})


@pytest.mark.parametrize(
    ("header", "query"),
    [
        ((b"user-agent", b"x\r\ninjected: 1"), b""),
        ((b"mcp-session-id", b"s\nx"), b""),
        ((b"accept", b"a\0b"), b""),
        ((b"accept", b"application/json"), b"a=b HTTP/1.1"),
        ((b"accept", b"application/json"), b"a=b\r\nx: 1"),
    ],
)
async def test_a_client_value_that_could_split_the_head_is_refused(
    origin: Callable[..., Awaitable[Origin]], header: tuple[bytes, bytes], query: bytes
) -> None:
    """HTTP servers' parsers refuse these before any app sees them; the gateway checks
    all the same (an ASGI server of another make, a test client). Nothing is sent."""
    o = await origin(None)
    app = Upstream(o.url)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "query_string": query,
        "headers": [(b"content-type", b"application/json"), header],
    }
    await app(scope, receive, send)
    await app.aclose()
    assert sent[0]["status"] == 400
    assert sent[1]["body"] == b"a request header contains a line break"
    assert o.connections == 0
