"""The shared ASGI helpers (``mcpward._asgi``): the bounded body reader against the
message sequences ASGI defines and against what uvicorn really delivers over a socket
(several chunks, a declared length too large, a chunked body growing too large, a client
that goes away), the response sender, media types and the RateLimit headers."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send

from mcpward._asgi import (
    BodyError,
    BodyIncomplete,
    BodyTooLarge,
    media_type,
    ratelimit_headers,
    read_body,
    send_response,
)
from tests.services import free_port


def receiving(*messages: Message) -> tuple[Receive, list[Message]]:
    """A receive callable that hands out ``messages`` in order; the list records what
    was taken, so a test can see that reading stopped early."""
    queue = list(messages)
    taken: list[Message] = []

    async def receive() -> Message:
        message = queue.pop(0)
        taken.append(message)
        return message

    return receive, taken


def chunk(body: bytes, more: bool = True) -> Message:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_several_chunks_are_joined() -> None:
    receive, _ = receiving(chunk(b"ab"), chunk(b""), chunk(b"cd"), chunk(b"e", more=False))
    assert await read_body(receive, limit=5) == b"abcde"


async def test_a_single_message_without_more_body() -> None:
    receive, _ = receiving({"type": "http.request", "body": b"x"})
    assert await read_body(receive, limit=1, content_length="1") == b"x"
    receive, _ = receiving({"type": "http.request"})
    assert await read_body(receive, limit=0) == b""


@pytest.mark.parametrize("declared", ["6", b"6", "-1", "+5", " 5", "5x", "²", ""])
async def test_declared_length_too_large_or_not_a_length_reads_nothing(
    declared: str | bytes,
) -> None:
    receive, taken = receiving(chunk(b"abcde", more=False))
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=5, content_length=declared)
    assert taken == []


async def test_chunked_body_refused_as_soon_as_it_passes_the_limit() -> None:
    receive, taken = receiving(chunk(b"abc"), chunk(b"def"), chunk(b"g", more=False))
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=5)
    assert len(taken) == 2  # the third message was never asked for


async def test_body_longer_than_it_declared_is_still_bounded() -> None:
    receive, _ = receiving(chunk(b"abc"), chunk(b"def", more=False))
    with pytest.raises(BodyTooLarge):
        await read_body(receive, limit=5, content_length="3")


async def test_disconnect_before_the_end() -> None:
    receive, _ = receiving(chunk(b"abc"), {"type": "http.disconnect"})
    with pytest.raises(BodyIncomplete):
        await read_body(receive, limit=100)
    assert issubclass(BodyIncomplete, BodyError) and issubclass(BodyTooLarge, BodyError)


# -- through uvicorn, over a real socket --------------------------------------------------


class Recorder:
    """An ASGI app that reads its body with ``read_body`` (limit 10) and answers with what
    it got; ``outcomes`` records each result, also for clients that went away."""

    def __init__(self) -> None:
        self.outcomes: list[str] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        declared = dict(scope["headers"]).get(b"content-length")
        try:
            body = await read_body(receive, limit=10, content_length=declared)
        except BodyError as error:
            self.outcomes.append(type(error).__name__)
            await send_response(send, 413, {"content-type": "text/plain"}, b"refused")
            return
        self.outcomes.append(body.decode())
        await send_response(send, 200, [(b"content-type", "text/plain")], body)


@contextmanager
def uvicorn_serving(app: Any) -> Iterator[int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)


def exchange(port: int, head: bytes, *parts: bytes, close_early: bool = False) -> bytes:
    """Send a request in separate writes (so the server sees separate chunks); return
    the raw answer, or b"" when closing before the end."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        for part in parts:
            sock.sendall(part)
        if close_early:
            return b""
        answer = b""
        while data := sock.recv(65536):  # "connection: close": the server ends it
            answer += data
        return answer


def chunked(*pieces: bytes) -> list[bytes]:
    return [b"%x\r\n%s\r\n" % (len(p), p) for p in pieces] + [b"0\r\n\r\n"]


HEAD = b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"


async def wait_for(predicate: Any) -> None:
    deadline = time.monotonic() + 10
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_through_uvicorn() -> None:
    app = Recorder()
    with uvicorn_serving(app) as port:
        # Several chunks (chunked transfer coding, one write each).
        answer = await asyncio.to_thread(
            exchange, port, HEAD + b"transfer-encoding: chunked\r\n\r\n", *chunked(b"ab", b"cd")
        )
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"abcd")
        assert b"content-length: 4\r\n" in answer.lower()
        # Declared too large: refused from the header.
        answer = await asyncio.to_thread(exchange, port, HEAD + b"content-length: 11\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 413")
        # Chunked, growing past the limit.
        answer = await asyncio.to_thread(
            exchange,
            port,
            HEAD + b"transfer-encoding: chunked\r\n\r\n",
            *chunked(b"123456", b"789012"),
        )
        assert answer.startswith(b"HTTP/1.1 413")
        # The client goes away after the first chunk.
        await asyncio.to_thread(
            exchange,
            port,
            HEAD + b"transfer-encoding: chunked\r\n\r\n",
            b"3\r\nabc\r\n",
            close_early=True,
        )
        await wait_for(lambda: len(app.outcomes) == 4)
    assert app.outcomes == ["abcd", "BodyTooLarge", "BodyTooLarge", "BodyIncomplete"]


# -- sending, media types, RateLimit ------------------------------------------------------


async def test_send_response_adds_content_length_and_lowers_names() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await send_response(send, 201, {"Content-Type": "application/json"}, b"{}")
    await send_response(send, 204, [(b"x-a", b"1"), ("X-B", "2")])
    assert sent[0] == {
        "type": "http.response.start",
        "status": 201,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"2")],
    }
    assert sent[1] == {"type": "http.response.body", "body": b"{}"}
    assert sent[2]["headers"] == [(b"x-a", b"1"), (b"x-b", b"2"), (b"content-length", b"0")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        (b" text/event-stream ;q=1", "text/event-stream"),
        ("", ""),
        (None, ""),
    ],
)
def test_media_type(value: str | bytes | None, expected: str) -> None:
    assert media_type(value) == expected


def test_ratelimit_headers_and_the_callers_cache() -> None:
    cache: dict[tuple[str, int, float], bytes] = {}
    first = ratelimit_headers("token", quota=120, window=59.5, remaining=7, reset=3.2, cache=cache)
    assert first == [
        (b"ratelimit-policy", b'"token";q=120;w=60'),
        (b"ratelimit", b'"token";r=7;t=4'),
    ]
    assert cache == {("token", 120, 59.5): b'"token";q=120;w=60'}
    again = ratelimit_headers("token", quota=120, window=59.5, remaining=6, reset=1, cache=cache)
    assert again[0][1] is first[0][1]
    assert ratelimit_headers("tool", quota=1, window=10, remaining=0, reset=10) == [
        (b"ratelimit-policy", b'"tool";q=1;w=10'),
        (b"ratelimit", b'"tool";r=0;t=10'),
    ]
