"""The small ASGI jobs every endpoint shares, written once: reading a request body within
a limit, sending a whole response, reading a media type, and the RateLimit headers.

The body reader raises its own exceptions; each caller turns them into its own answer
(``invalid_request`` at the token endpoint, ``BadMessage`` at the guard, an error page on
the sign-in pages, 413/400 at the gateway)::

    BodyError
     ├── BodyTooLarge     the declared or the received length is over the limit
     └── BodyIncomplete   the client went away before the body ended
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from starlette.types import Receive, Send

from mcpward.errors import MCPWardError

Headers = Mapping[str, str] | Iterable[tuple[str | bytes, str | bytes]]


class BodyError(MCPWardError):
    """The request body could not be read whole within the limit."""


class BodyTooLarge(BodyError):
    """Content-Length over the limit (or not a length at all), or more bytes than the
    limit arrived."""


class BodyIncomplete(BodyError):
    """The client disconnected before the last chunk of the body."""


async def read_body(
    receive: Receive, *, limit: int, content_length: str | bytes | None = None
) -> bytes:
    """The whole request body, at most ``limit`` bytes.

    A declared ``content_length`` over the limit is refused before anything is read; a
    body sent in chunks is refused as soon as it grows past the limit, so no more than
    ``limit`` bytes (plus one chunk) are ever held."""
    if content_length is not None:
        if isinstance(content_length, bytes):
            content_length = content_length.decode("latin-1")
        # isascii: str.isdigit() also accepts digits such as "²" that int() refuses.
        if not (content_length.isascii() and content_length.isdigit()) or (
            int(content_length) > limit
        ):
            raise BodyTooLarge("the request body is too large")
    message = await receive()
    if message["type"] == "http.request" and not message.get("more_body", False):
        # The common case: the whole body in one message.
        body: bytes = message.get("body", b"")
        if len(body) > limit:
            raise BodyTooLarge("the request body is too large")
        return body
    chunks: list[bytes] = []
    size = 0
    while True:
        if message["type"] != "http.request":
            raise BodyIncomplete("the client went away")
        chunk: bytes = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge("the request body is too large")
            chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)
        message = await receive()


async def send_response(send: Send, status: int, headers: Headers, body: bytes = b"") -> None:
    """One complete response: ``headers`` (a mapping or pairs, str or bytes; names are
    sent lower-cased) and ``Content-Length`` for ``body``, which must not be in them."""
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    raw = [
        (
            (k if isinstance(k, bytes) else k.encode("latin-1")).lower(),
            v if isinstance(v, bytes) else v.encode(),
        )
        for k, v in pairs
    ]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def media_type(value: str | bytes | None) -> str:
    """``type/subtype`` of a Content-Type value, lower-cased, without parameters
    (``"Application/JSON; charset=utf-8"`` -> ``"application/json"``); "" when absent."""
    if not value:
        return ""
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    return text.split(";", 1)[0].strip().lower()


def ratelimit_headers(
    policy: str,
    *,
    quota: int,
    window: float,
    remaining: int,
    reset: float,
    cache: dict[tuple[str, int, float], bytes] | None = None,
) -> list[tuple[bytes, bytes]]:
    """``RateLimit-Policy`` and ``RateLimit`` (draft-ietf-httpapi-ratelimit-headers-09,
    structured fields): the named policy's quota ``q`` per window ``w`` seconds, and the
    requests remaining ``r`` with the seconds ``t`` until the window resets.

    The policy value changes only with the configured limit, so a caller on a hot path
    passes ``cache``, a dict it keeps (one entry per configured limit and bucket kind)."""
    key = (policy, quota, window)
    value = cache.get(key) if cache is not None else None
    if value is None:
        value = f'"{policy}";q={quota};w={math.ceil(window)}'.encode()
        if cache is not None:
            cache[key] = value
    state = f'"{policy}";r={remaining};t={math.ceil(reset)}'.encode()
    return [(b"ratelimit-policy", value), (b"ratelimit", state)]
