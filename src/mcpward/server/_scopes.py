"""Scope strings (RFC 6749 §3.3) and their validation against a protected resource."""

from __future__ import annotations

import re
from collections.abc import Iterable

from mcpward.server.errors import InvalidScope
from mcpward.storage.records import ResourceRecord

# scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
MAX_SCOPES = 64


def parse(scope: str | None) -> tuple[str, ...]:
    if not scope:
        return ()
    items = scope.split(" ")
    if len(items) > MAX_SCOPES or not all(_SCOPE_TOKEN.match(s) for s in items):
        raise InvalidScope("scope is malformed")
    return tuple(dict.fromkeys(items))  # keep order, drop duplicates


def render(scopes: Iterable[str]) -> str:
    return " ".join(sorted(set(scopes)))


def check_against_resource(scopes: tuple[str, ...], resource: ResourceRecord) -> None:
    unknown = [s for s in scopes if s not in resource.scopes]
    if unknown:
        raise InvalidScope(f"unknown scope for this resource: {' '.join(unknown)[:200]}")


def grantable(
    requested: tuple[str, ...], resource: ResourceRecord, allowed_scope: str | None
) -> tuple[str, ...]:
    """What a client gets when it asks for ``requested`` (RFC 6749 §3.3: the server may
    issue fewer scopes than requested, and then says so in the response's ``scope``).

    Machine clients commonly ask for every scope the resource advertises (mcp-remote,
    FastMCP and the TypeScript SDK request all of ``scopes_supported``), so the answer is the
    intersection with what the client may have (``allowed_scope``; unset: every scope of the
    resource). Nothing requested means everything allowed. A scope the resource does not
    know is still an error, as is a request of which nothing is allowed."""
    check_against_resource(requested, resource)
    allowed = set(parse(allowed_scope)) or set(resource.scopes)
    if not requested:
        granted = tuple(s for s in resource.scopes if s in allowed)
        if not granted:
            raise InvalidScope("the client is allowed no scope of this resource")
        return granted
    granted = tuple(s for s in requested if s in allowed)
    if not granted:
        raise InvalidScope("the client is allowed none of the requested scopes")
    return granted


def within(granted: tuple[str, ...], bound: Iterable[str] | None, refusal: str) -> tuple[str, ...]:
    """``granted`` narrowed to ``bound`` (an ID-JAG's scope, a workload rule's, an
    exchange policy's); ``None`` sets no bound. Nothing left is ``invalid_scope``."""
    if bound is None:
        return granted
    allowed = set(bound)
    kept = tuple(s for s in granted if s in allowed)
    if not kept:
        raise InvalidScope(refusal)
    return kept
