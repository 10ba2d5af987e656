"""The standalone gateway: the guard in front of any streamable-HTTP MCP server.

Requests that pass the guard are forwarded to ``upstream`` (POST, GET and DELETE), and the
answer streams back as it arrives, so SSE events are not held up. MCP's own headers
(session id, protocol version, ``Last-Event-ID``, ``Mcp-Method``/``Mcp-Name``) pass in
both directions. The client's ``Authorization`` header is never forwarded (no token
passthrough, MCP security best practices); a credential for the upstream can be injected
instead.

It answers a load balancer's ``/healthz`` and ``/readyz`` itself (``_health.py``).

The upstream is reached through a keep-alive pool of its own (``_upstream.py``: asyncio
connections, httptools parsing; why not httpx or aiohttp is measured there). The request
head is built as bytes from precomputed parts. A client that goes away is watched for
only while an answer streams (SSE, or no Content-Length); a sized answer is relayed
without a second task.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.types import Message, Receive, Scope, Send

from mcpward._asgi import BodyIncomplete, BodyTooLarge, read_body, send_response
from mcpward.guard._guard import Guard
from mcpward.guard._health import GatewayHealth
from mcpward.guard._upstream import Response, UpstreamError, UpstreamPool
from mcpward.guard.middleware import MAX_BODY, GuardMiddleware

# Request headers worth passing upstream; anything else (cookies, Authorization, DPoP,
# Origin, hop-by-hop headers, Host) stays at the gateway. ASGI header names are lower-case.
FORWARD_REQUEST = frozenset(
    {
        b"accept",
        b"content-type",
        b"last-event-id",
        b"mcp-session-id",
        b"mcp-protocol-version",
        b"mcp-method",
        b"mcp-name",
        b"user-agent",
        b"x-request-id",
    }
)
# Response headers not passed back: hop-by-hop ones, and those the ASGI server sets.
DROP_RESPONSE = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"transfer-encoding",
        b"te",
        b"trailer",
        b"upgrade",
        b"proxy-authenticate",
        b"date",
        b"server",
        b"www-authenticate",  # the upstream's challenge is about the injected credential
        b"set-cookie",
    }
)
# Below the idle timeout of common servers (uvicorn's is 5 s): the gateway drops an idle
# connection before the upstream can close it under a request just sent.
KEEPALIVE = 4.0
_UNSAFE = (b"\r", b"\n", b"\0")
_METHODS = frozenset({"POST", "GET", "DELETE"})
_WHOLE = 64 * 1024  # answers up to this size are read whole, then sent in one message
_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class Upstream:
    """Forwards one request to the upstream MCP endpoint and streams the answer back."""

    def __init__(
        self,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        read_timeout: float = 300.0,
        max_body: int = MAX_BODY,
        pool_size: int = 256,
        keepalive: float = KEEPALIVE,
    ) -> None:
        self.url = url
        # The guard in front has read (and bounded) the body already; this limit holds
        # for an Upstream mounted on its own too.
        self.max_body = max_body
        self._pool = UpstreamPool(
            url,
            connect_timeout=timeout,
            read_timeout=read_timeout,
            size=pool_size,
            keepalive=keepalive,
        )
        inject = [
            (k.strip().lower().encode("latin-1"), v.encode()) for k, v in (headers or {}).items()
        ]
        if any(c in b"".join(kv) for kv in inject for c in _UNSAFE):
            raise ValueError("an upstream header contains a line break")
        self.host, self.port = self._pool.host, self._pool.port
        self._inject_names = frozenset(k for k, _ in inject)
        self._inject = b"".join(k + b": " + v + b"\r\n" for k, v in inject)

    async def aclose(self) -> None:
        self._pool.close()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        method: str = scope["method"]
        if method not in _METHODS:
            await _plain(send, 405, b"method not allowed", [(b"allow", b"GET, POST, DELETE")])
            return
        body = b""
        if method == "POST":
            try:
                body = await read_body(receive, limit=self.max_body)
            except BodyTooLarge:
                await _plain(send, 413, b"the request body is too large")
                return
            except BodyIncomplete:
                await _plain(send, 400, b"the request body did not arrive")
                return
        pool = self._pool
        head = self._head(pool, method, scope, len(body))
        if head is None:
            await _plain(send, 400, b"a request header contains a line break")
            return
        try:
            response = await pool.send(head, body)
        except (UpstreamError, OSError, TimeoutError) as exc:
            await _plain(send, 502, f"upstream unreachable: {type(exc).__name__}".encode())
            return
        try:
            if response.status in (401, 403):
                # The upstream refused the gateway's credential, not the client's token
                # (which it never sees); passing 401/403 on would send the client to
                # re-authorize.
                await _plain(send, 502, b"the upstream refused the gateway's credential")
                return
            await self._relay(response, receive, send)
        finally:
            response.release()

    def _head(self, pool: UpstreamPool, method: str, scope: Scope, length: int) -> bytes | None:
        """Request line and headers: the client's MCP headers, the injected ones, Host and
        the body's length. None if a value could split the head (never from a compliant
        HTTP server, checked all the same)."""
        inject = self._inject_names
        values: list[bytes] = []
        parts = [
            method.encode("ascii"),
            b" ",
            pool.target(scope.get("query_string", b"")),
            b" HTTP/1.1\r\nhost: ",
            pool.host_header,
            b"\r\n",
        ]
        for k, v in scope["headers"]:
            if k in FORWARD_REQUEST and k not in inject:
                values.append(v)
                parts += (k, b": ", v, b"\r\n")
        parts.append(self._inject)
        if method == "POST":
            parts.append(b"content-length: %d\r\n" % length)
        parts.append(b"\r\n")
        # One look over what came from the client. find() rather than `in`: `bytes in
        # bytes` first tries the operand as an int, raising and clearing a TypeError inside.
        client = b"".join(values)
        target = parts[2]
        if (
            client.find(b"\r") >= 0
            or client.find(b"\n") >= 0
            or client.find(b"\0") >= 0
            or target.find(b" ") >= 0
            or target.find(b"\r") >= 0
            or target.find(b"\n") >= 0
        ):
            return None
        return b"".join(parts)

    async def _relay(self, response: Response, receive: Receive, send: Send) -> None:
        length = -1
        streamed = False
        out: list[tuple[bytes, bytes]] = []
        for name, value in response.headers:  # names lower-cased by the pool
            if name in DROP_RESPONSE:
                continue
            if name == b"content-length":
                length = int(value) if value.isdigit() else -1
            elif name == b"content-type" and value.startswith(b"text/event-stream"):
                streamed = True
            out.append((name, value))
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        if 0 <= length <= _WHOLE and not streamed:
            # A small sized answer (JSON) is here at once: one body message, no watcher.
            try:
                body = await response.read()
            except UpstreamError:
                body = b""  # the upstream broke mid-answer; the client sees it end
            await send({"type": "http.response.body", "body": body, "more_body": False})
            return
        if length >= 0 and not streamed:
            await self._copy(response, send)  # a larger sized answer, in chunks
            return
        # An event stream can stay open (and silent) for long: stop reading it the moment
        # the client goes away.
        copy = asyncio.ensure_future(self._copy(response, send))
        watch = asyncio.ensure_future(_disconnected(receive))
        try:
            await asyncio.wait((copy, watch), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (copy, watch):
                task.cancel()
            for task in (copy, watch):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if not copy.cancelled() and (error := copy.exception()) is not None:
            raise error

    @staticmethod
    async def _copy(response: Response, send: Send) -> None:
        """Relay chunks as they come; end the answer if the upstream breaks mid-way."""
        try:
            async for chunk in response.chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except UpstreamError:
            pass  # the upstream broke mid-stream: end our answer; the client sees it end
        await send(_END)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _disconnected(receive: Receive) -> None:
    message: Message = await receive()
    while message["type"] != "http.disconnect":
        message = await receive()


def create_gateway(
    upstream: str,
    guard: Guard,
    *,
    upstream_headers: Mapping[str, str] | None = None,
    shared_state_ping: Callable[[], Awaitable[Any]] | None = None,
    **upstream_kwargs: Any,
) -> GuardMiddleware:
    """The gateway app: the guard, then the upstream. ``upstream_headers`` are injected
    into every forwarded request (e.g. ``{"Authorization": "Bearer <upstream key>"}``).
    It answers ``/healthz`` and ``/readyz`` itself (``app.probes``: drained on SIGTERM;
    ``shared_state_ping`` reports Redis there)."""
    app = Upstream(upstream, headers=upstream_headers, **upstream_kwargs)
    probes = GatewayHealth(app.host, app.port, shared_state_ping=shared_state_ping)
    return GuardMiddleware(app, guard, probes=probes)


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_response(send, status, [(b"content-type", b"text/plain"), *(headers or [])], body)
