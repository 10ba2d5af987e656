"""Reading OAuth request bodies strictly: the right content type, a size cap, no repeated
parameters (RFC 6749 §3.1-3.2) except ``resource`` (RFC 8707 §2)."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.types import Receive

from mcpward import _asgi
from mcpward._asgi import BodyIncomplete, BodyTooLarge, media_type
from mcpward.server.errors import InvalidRequest

MAX_BODY = 64 * 1024
MAX_VALUE = 16 * 1024
REPEATABLE = {"resource"}


async def read_form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The form parameters and the (possibly repeated) ``resource`` values."""
    headers = request.headers
    return parse_form(headers.get("content-type"), await read_body(request.receive, headers))


async def read_body(receive: Receive, headers: Mapping[str, str]) -> bytes:
    """The request body, refused past MAX_BODY (declared or, when chunked, as it arrives)."""
    try:
        return await _asgi.read_body(
            receive, limit=MAX_BODY, content_length=headers.get("content-length")
        )
    except BodyTooLarge:
        raise InvalidRequest("the request body is too large") from None
    except BodyIncomplete:
        raise InvalidRequest("the request body did not arrive") from None


def parse_form(content_type: str | None, body: bytes) -> tuple[dict[str, str], list[str]]:
    if media_type(content_type) != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("the body is not valid form encoding") from None
    return parse_pairs(pairs)


def parse_pairs(pairs: list[tuple[str, str]]) -> tuple[dict[str, str], list[str]]:
    form: dict[str, str] = {}
    resources: list[str] = []
    for name, value in pairs:
        if len(value) > MAX_VALUE or "\x00" in value:
            raise InvalidRequest(f"parameter {name[:40]} is too large or malformed")
        if name in REPEATABLE:
            if value:
                resources.append(value)
            continue
        if name in form:
            raise InvalidRequest(f"parameter {name[:40]} is repeated")
        if value:  # RFC 6749 §3.1: parameters sent without a value are treated as omitted
            form[name] = value
    return form, resources
