"""Reading JSON-RPC request bodies just enough to authorize them."""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import orjson

from mcpward.guard._errors import BadMessage

Kind = Literal["tool", "resource", "prompt"]

# method -> (what it targets, the params field naming it)
_TARGETED: dict[str, tuple[Kind, str]] = {
    "tools/call": ("tool", "name"),
    "resources/read": ("resource", "uri"),
    "resources/subscribe": ("resource", "uri"),
    "prompts/get": ("prompt", "name"),
}
# list methods whose results the guard annotates (or filters) by what the token can use
LISTS: dict[str, tuple[Kind, str, str]] = {
    "tools/list": ("tool", "tools", "name"),
    "resources/list": ("resource", "resources", "uri"),
    "prompts/list": ("prompt", "prompts", "name"),
}


class Call(NamedTuple):
    """One request or notification of a body. A named tuple: built for every call of
    every request, and cheaper than a frozen dataclass."""

    method: str
    id: Any
    kind: Kind | None = None
    target: str | None = None


def parse(body: bytes) -> list[Call]:
    """The requests and notifications in a body (a batch is checked item by item)."""
    try:
        # orjson: several times faster than json, and stricter (no NaN, no invalid UTF-8,
        # no BOM), which only ever refuses more.
        message: Any = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadMessage("the body is not JSON") from exc
    items = message if isinstance(message, list) else [message]
    if not items:
        raise BadMessage("an empty batch")
    calls: list[Call] = []
    for item in items:
        if not isinstance(item, dict):
            raise BadMessage("a JSON-RPC message must be an object")
        method = item.get("method")
        if method is None:
            continue  # a response from the client (to a server request): nothing to authorize
        if not isinstance(method, str):
            raise BadMessage("the JSON-RPC method must be a string")
        kind = target = None
        if method in _TARGETED:
            kind, field = _TARGETED[method]
            params = item.get("params")
            value = params.get(field) if isinstance(params, dict) else None
            if not isinstance(value, str):
                raise BadMessage(f"{method} needs a string params.{field}")
            target = value
        calls.append(Call(method=method, id=item.get("id"), kind=kind, target=target))
    return calls
