"""The gateway's HTTP/1.1 client: a keep-alive pool of asyncio connections to one upstream,
with httptools (the C parser uvicorn uses) reading the answers.

Why not a general client: per proxied request, measured as client CPU on this project's
machine (bench figures in the README), httpx cost ~1,250 µs, httpcore alone ~950 µs,
aiohttp ~170 µs, aiosonic ~150 µs, pyreqwest ~90 µs (plus its own threads) and this
~40 µs. A gateway needs none of what the general clients spend it on (cookies,
redirects, decompression, URL objects, header multidicts): one origin, bytes in, bytes
out. The framing of the answer (Content-Length, chunked, until close) is httptools'.

Only a connection that finished its previous exchange cleanly, said keep-alive, and has
been idle less than ``keepalive`` seconds is reused: below the upstream's own idle
timeout, so the upstream never closes a connection under a request just sent (a POST
could not be retried, RFC 9112 §9.3.1).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import cast
from urllib.parse import urlsplit

import httptools

from mcpward.errors import MCPWardError

# Read this much of an answer ahead of the client, then stop reading the upstream.
_HIGH_WATER = 256 * 1024


class UpstreamError(MCPWardError):
    """The upstream could not be reached, broke the connection, or answered what is not
    HTTP/1.1."""


class _Connection(asyncio.Protocol):
    """One connection; at most one exchange at a time (no pipelining)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.reset()

    def reset(self) -> None:
        """Ready for the next exchange."""
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.framed = False  # Content-Length or chunked: the end is known without EOF
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.error: BaseException | None = None
        self.body: deque[bytes] = deque()
        self.buffered = 0
        self.paused = False
        self._waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have its methods.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"the upstream's answer is not HTTP/1.1: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.head_done and not self.framed and not self.complete:
            self.complete = True  # an answer delimited by the connection's end
            self._wake()
        elif not self.complete:
            self._fail(UpstreamError("the upstream closed the connection"))

    def pause_writing(self) -> None:
        pass  # request bodies are bounded by the guard: the transport buffers them

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        name = name.lower()
        if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value):
            self.framed = True
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        if self.status < 200:
            self.headers = []  # 1xx: informational, the answer follows
            return
        if self.status in (204, 304):
            self.framed = True
        self.head_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.status >= 200:
            # Asked now: once the message is over the parser has forgotten it.
            self.keep_alive = self._parser.should_keep_alive()
            self.complete = True
            self._wake()

    # -- the exchange

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = error
        self.close()
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, within: float) -> None:
        """Until the parser has something new, the connection failed, or ``within``
        seconds passed (then it fails). One timer, cheaper than ``asyncio.timeout``."""
        waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(within, self._time_out, waiter)
        try:
            await waiter
        finally:
            timer.cancel()
            self._waiter = None

    def _time_out(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._fail(TimeoutError("the upstream did not answer in time"))

    def take(self) -> bytes:
        chunk = self.body.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered <= _HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and self.error is None and not self.closed

    def park(self, now: float) -> None:
        self.idle_since = now

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Response:
    """An answer whose head has arrived; the body is read with :meth:`read` or
    :meth:`chunks`, then :meth:`release` hands the connection back (or closes it)."""

    __slots__ = ("_conn", "_pool", "_released", "_timeout", "headers", "status")

    def __init__(self, pool: UpstreamPool, conn: _Connection, timeout: float) -> None:
        self._pool = pool
        self._conn = conn
        self._timeout = timeout
        self._released = False
        self.status = conn.status
        self.headers = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; raises UpstreamError if the upstream breaks mid-way."""
        conn = self._conn
        while True:
            if conn.body:
                yield conn.take()
            elif conn.complete:
                return
            elif conn.error is not None:
                raise UpstreamError("the upstream broke off its answer") from conn.error
            else:
                await conn.wait(self._timeout)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        conn = self._conn
        if conn.reusable():
            self._pool.put_back(conn)
        else:
            conn.close()
        self._pool.done()


class UpstreamPool:
    """Connections to the origin of ``url``, at most ``size`` at once."""

    def __init__(
        self,
        url: str,
        *,
        connect_timeout: float = 30.0,
        read_timeout: float = 300.0,
        size: int = 256,
        keepalive: float = 4.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"the upstream must be an http(s) URL, not {url!r}")
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.path = (parts.path or "/").encode("ascii")
        self.query = parts.query.encode("ascii")
        default = 443 if parts.scheme == "https" else 80
        netloc = self.host if self.port == default else f"{self.host}:{self.port}"
        if ":" in self.host:  # an IPv6 literal keeps its brackets in Host
            netloc = f"[{self.host}]" if self.port == default else f"[{self.host}]:{self.port}"
        self.host_header = netloc.encode("idna")
        self._ssl = ssl.create_default_context() if parts.scheme == "https" else None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._keepalive = keepalive
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(size)

    @property
    def idle(self) -> int:
        """Idle connections that could carry the next request."""
        return sum(1 for conn in self._idle if not conn.closed)

    def target(self, query: bytes) -> bytes:
        """The request target for the upstream path with the client's ``query``."""
        if not query:
            return self.path + (b"?" + self.query if self.query else b"")
        return self.path + b"?" + (self.query + b"&" if self.query else b"") + query

    async def send(self, head: bytes, body: bytes) -> Response:
        """Send one request (``head``: request line and headers, ending with the empty
        line) and wait for the answer's head."""
        await self._slots.acquire()
        conn: _Connection | None = None
        try:
            conn = await self._connection()
            assert conn.transport is not None
            conn.transport.write(head + body if body else head)
            while not conn.head_done:
                if conn.error is not None:
                    raise UpstreamError("no answer from the upstream") from conn.error
                await conn.wait(self._read_timeout)
        except BaseException:
            if conn is not None:
                conn.close()
            self._slots.release()
            raise
        return Response(self, conn, self._read_timeout)

    async def _connection(self) -> _Connection:
        now = time.monotonic()
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive:
                conn.reset()
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Connection(loop),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl else None,
                ),
                self._connect_timeout,
            )
        except (OSError, TimeoutError) as exc:
            raise UpstreamError(f"cannot connect to the upstream: {type(exc).__name__}") from exc
        return conn

    def put_back(self, conn: _Connection) -> None:
        conn.park(time.monotonic())
        self._idle.append(conn)

    def done(self) -> None:
        self._slots.release()

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
