"""Reading OAuth request bodies strictly: the right content type, a size cap, no repeated
parameters (RFC 6749 §3.1-3.2) except ``resource`` (RFC 8707 §2)."""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.requests import Request

from mcpward.server.errors import InvalidRequest

MAX_BODY = 64 * 1024
MAX_VALUE = 16 * 1024
REPEATABLE = {"resource"}


async def read_form(request: Request) -> tuple[dict[str, str], list[str]]:
    """The form parameters and the (possibly repeated) ``resource`` values."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise InvalidRequest("the body must be application/x-www-form-urlencoded")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
        raise InvalidRequest("the request body is too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY:  # chunked bodies declare no length
            raise InvalidRequest("the request body is too large")
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
