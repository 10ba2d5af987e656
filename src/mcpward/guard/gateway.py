"""The standalone gateway: the guard in front of any streamable-HTTP MCP server.

Requests that pass the guard are forwarded to ``upstream`` (POST, GET and DELETE), and the
answer streams back as it arrives, so SSE events are not held up. MCP's own headers
(session id, protocol version, ``Last-Event-ID``, ``Mcp-Method``/``Mcp-Name``) pass in
both directions. The client's ``Authorization`` header is never forwarded (no token
passthrough, MCP security best practices); a credential for the upstream can be injected
instead.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import anyio
import httpx
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpward._asgi import BodyIncomplete, BodyTooLarge, read_body, send_response
from mcpward.guard._guard import Guard
from mcpward.guard.middleware import MAX_BODY, GuardMiddleware

# Request headers worth passing upstream; anything else (cookies, Authorization, Origin,
# hop-by-hop headers, Host) stays at the gateway.
FORWARD_REQUEST = frozenset(
    {
        "accept",
        "content-type",
        "last-event-id",
        "mcp-session-id",
        "mcp-protocol-version",
        "mcp-method",
        "mcp-name",
        "user-agent",
        "x-request-id",
    }
)
# Response headers not passed back: hop-by-hop ones, and those the ASGI server sets.
DROP_RESPONSE = frozenset(
    {
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "proxy-authenticate",
        "date",
        "server",
        "www-authenticate",  # the upstream's challenge is about the injected credential
        "set-cookie",
    }
)


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
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url
        # The guard in front has read (and bounded) the body already; this limit holds
        # for an Upstream mounted on its own too.
        self.max_body = max_body
        self._inject = {k.lower(): v for k, v in (headers or {}).items()}
        self._http = http or httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, read=read_timeout), follow_redirects=False
        )
        self._own_http = http is None

    async def aclose(self) -> None:
        if self._own_http:
            await self._http.aclose()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        method = scope["method"]
        if method not in ("POST", "GET", "DELETE"):
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
        headers = [
            (k.decode("latin-1"), v.decode("latin-1"))
            for k, v in scope["headers"]
            if k.decode("latin-1") in FORWARD_REQUEST
        ]
        headers.extend(self._inject.items())
        url = self.url
        if scope.get("query_string"):
            url += "?" + scope["query_string"].decode("latin-1")
        request = self._http.build_request(method, url, headers=headers, content=body)
        try:
            response = await self._http.send(request, stream=True)
        except httpx.HTTPError as exc:
            await _plain(send, 502, f"upstream unreachable: {type(exc).__name__}".encode())
            return
        if response.status_code in (401, 403):
            # The upstream refused the gateway's credential, not the client's token (which
            # it never sees); passing 401/403 on would send the client to re-authorize.
            await response.aclose()
            await _plain(send, 502, b"the upstream refused the gateway's credential")
            return
        async with contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(response.aclose)
            await send(
                {
                    "type": "http.response.start",
                    "status": response.status_code,
                    "headers": [
                        (k, v)
                        for k, v in response.headers.raw
                        if k.decode("latin-1").lower() not in DROP_RESPONSE
                    ],
                }
            )
            await self._stream(response, receive, send)

    async def _stream(self, response: httpx.Response, receive: Receive, send: Send) -> None:
        """Relay chunks as they come; stop the upstream stream if the client goes away."""
        async with anyio.create_task_group() as tg:

            async def watch_disconnect() -> None:
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        tg.cancel_scope.cancel()
                        return

            tg.start_soon(watch_disconnect)
            try:
                async for chunk in response.aiter_raw():
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            except httpx.HTTPError:
                # The upstream broke mid-stream: end our answer; the client sees it end.
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            tg.cancel_scope.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def create_gateway(
    upstream: str,
    guard: Guard,
    *,
    upstream_headers: Mapping[str, str] | None = None,
    **upstream_kwargs: Any,
) -> ASGIApp:
    """The gateway app: the guard, then the upstream. ``upstream_headers`` are injected
    into every forwarded request (e.g. ``{"Authorization": "Bearer <upstream key>"}``)."""
    return GuardMiddleware(Upstream(upstream, headers=upstream_headers, **upstream_kwargs), guard)


async def _plain(
    send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_response(send, status, [(b"content-type", b"text/plain"), *(headers or [])], body)
