"""Two proxies that do less than any real gateway, as floors for ``bench/guard.py``.

What a Python process in front of the upstream costs before it does any work of a
gateway: measured in the same rounds as ``mcpward gateway``, they show how much of the
gateway's added latency is the hop itself (a second process on the same core, two more
socket round trips and wake-ups per request) and how much is the gateway's own work.

- ``pipe``: bytes in, bytes out (uvloop), one upstream connection per client
  connection; no HTTP parsing at all.
- ``http-floor``: the least an HTTP-aware gateway does: httptools on both sides, the
  bearer token looked up in a dict (a verified-token cache hit), the JSON-RPC body parsed
  (orjson) and the tool name checked, the request head rebuilt with the MCP headers and
  the answer relayed. No revocation, rate limit, audit, metrics, answer inspection,
  error handling, timeouts or streaming: not a product, a floor.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httptools
import orjson
import uvloop

_FORWARD = (b"accept", b"content-type", b"mcp-protocol-version", b"mcp-session-id")
_RELAY = (b"content-type", b"content-length", b"mcp-session-id")


def serve_pipe(port: int, upstream: int) -> None:
    class Up(asyncio.Protocol):
        def __init__(self, down: asyncio.Transport) -> None:
            self.down = down

        def data_received(self, data: bytes) -> None:
            if not self.down.is_closing():
                self.down.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self.down.close()

    class Down(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.early: list[bytes] = []
            self.up: Any = None
            self.connecting = asyncio.ensure_future(self.connect())

        async def connect(self) -> None:
            loop = asyncio.get_running_loop()
            self.up, _ = await loop.create_connection(
                lambda: Up(self.transport), "127.0.0.1", upstream
            )
            for data in self.early:
                self.up.write(data)

        def data_received(self, data: bytes) -> None:
            if self.up is None:
                self.early.append(data)
            elif not self.up.is_closing():
                self.up.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            if self.up is not None:
                self.up.close()

    _run(Down, port)


def serve_http_floor(port: int, upstream: int, token: str, tool: str) -> None:
    known = {f"Bearer {token}".encode(): frozenset({"orders.read"})}
    host = b"host: 127.0.0.1:%d\r\n" % upstream

    class Up(asyncio.Protocol):
        def __init__(self, down: Any) -> None:
            self.down = down
            self.parser = httptools.HttpResponseParser(self)
            self.head: list[bytes] = []
            self.body: list[bytes] = []

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_begin(self) -> None:
            self.head, self.body = [], []

        def on_header(self, name: bytes, value: bytes) -> None:
            if name.lower() in _RELAY:
                self.head += (name, b": ", value, b"\r\n")

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            status = self.parser.get_status_code()
            head = b"HTTP/1.1 %d OK\r\n" % status + b"".join(self.head) + b"\r\n"
            if not self.down.transport.is_closing():
                self.down.transport.write(head + b"".join(self.body))

        def connection_lost(self, exc: Exception | None) -> None:
            self.down.transport.close()

    class Down(asyncio.Protocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport
            self.parser = httptools.HttpRequestParser(self)
            self.up: Up | None = None
            self.headers: list[tuple[bytes, bytes]] = []
            self.body: list[bytes] = []

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_begin(self) -> None:
            self.headers, self.body = [], []

        def on_header(self, name: bytes, value: bytes) -> None:
            self.headers.append((name.lower(), value))

        def on_body(self, body: bytes) -> None:
            self.body.append(body)

        def on_message_complete(self) -> None:
            self.task = asyncio.get_running_loop().create_task(self.forward(b"".join(self.body)))

        def connection_lost(self, exc: Exception | None) -> None:
            if self.up is not None:
                self.up.transport.close()

        async def forward(self, body: bytes) -> None:
            parts = [b"POST /mcp HTTP/1.1\r\n", host]
            scopes: frozenset[str] | None = None
            for name, value in self.headers:
                if name == b"authorization":
                    scopes = known.get(value)
                elif name in _FORWARD:
                    parts += (name, b": ", value, b"\r\n")
            message = orjson.loads(body)
            if scopes is None or message["params"]["name"] != tool:
                self.transport.write(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n")
                return
            parts.append(b"content-length: %d\r\n\r\n" % len(body))
            if self.up is None:
                loop = asyncio.get_running_loop()
                _, self.up = await loop.create_connection(lambda: Up(self), "127.0.0.1", upstream)
            self.up.transport.write(b"".join(parts) + body)

    _run(Down, port)


def _run(protocol: Any, port: int) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(protocol, "127.0.0.1", port)
        await server.serve_forever()

    uvloop.run(main())
