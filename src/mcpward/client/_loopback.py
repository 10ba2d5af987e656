"""The loopback redirect listener (RFC 8252 §7.3): 127.0.0.1, an ephemeral port, one path.

It answers the browser's redirect with a short page and hands the query parameters to the
caller. Requests for other paths (favicon, probes) get 404 and do not end the wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
from types import TracebackType
from urllib.parse import parse_qs, urlsplit

from mcpward.client.errors import SignInTimeout

_PAGE = (
    "<!doctype html><meta charset=utf-8><title>{title}</title>"
    "<body style='font-family:sans-serif;margin:3em'><h1>{title}</h1><p>{body}</p>"
)
_MAX_REQUEST_LINE = 16 * 1024


class LoopbackListener:
    """`async with LoopbackListener() as listener:` then `await listener.wait(timeout)`."""

    def __init__(self, port: int = 0, path: str = "/callback") -> None:
        self._want_port = port
        self.path = path
        self._server: asyncio.Server | None = None
        self._result: asyncio.Future[dict[str, str]] | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("listener not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def redirect_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def __aenter__(self) -> LoopbackListener:
        self._result = asyncio.get_running_loop().create_future()
        try:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self._want_port)
        except OSError:
            if self._want_port == 0:
                raise
            # The preferred port (the one registered earlier) is taken: any port will do
            # for servers that follow RFC 8252 §7.3.
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def wait(self, seconds: float) -> dict[str, str]:
        """The redirect's query parameters (first value of each)."""
        assert self._result is not None
        try:
            return await asyncio.wait_for(asyncio.shield(self._result), seconds)
        except TimeoutError:
            raise SignInTimeout(
                f"no sign-in completed within {seconds:g} s "
                f"(nothing arrived at {self.redirect_uri})",
                "timeout",
            ) from None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            while (header := await asyncio.wait_for(reader.readline(), 10)) not in (
                b"\r\n",
                b"\n",
                b"",
            ):
                del header
            status, title, body = self._accept(line)
            page = _PAGE.format(title=html.escape(title), body=html.escape(body)).encode()
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(page)}\r\nCache-Control: no-store\r\n"
                "Connection: close\r\n\r\n".encode()
                + page
            )
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    def _accept(self, line: bytes) -> tuple[str, str, str]:
        parts = line[:_MAX_REQUEST_LINE].decode("latin-1").split()
        if len(parts) != 3 or parts[0] != "GET":
            return (
                "405 Method Not Allowed",
                "Not here",
                "This listener only takes the sign-in redirect.",
            )
        target = urlsplit(parts[1])
        if target.path != self.path:
            return "404 Not Found", "Not here", "This listener only takes the sign-in redirect."
        params = {k: v[0] for k, v in parse_qs(target.query, keep_blank_values=True).items()}
        assert self._result is not None
        if not self._result.done():
            self._result.set_result(params)
        if "error" in params:
            return "200 OK", "Sign-in failed", "Return to the terminal for details."
        return "200 OK", "Signed in", "You can close this window and return to the terminal."
