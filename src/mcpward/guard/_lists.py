"""What ``tools/list``, ``resources/list`` and ``prompts/list`` results show a caller.

``annotate`` (the default) lists every entry a token could be granted, each with the
scopes it requires and whether the presented token holds them, in its ``_meta``::

    {"name": "refund_order", ...,
     "_meta": {"io.mcpward/scopes": {"required": ["orders.write", "refund.admin"],
                                      "granted": false}}}

so a host, or the model, can call it, get the 403 ``insufficient_scope`` challenge and
step up. ``filter`` shows only the entries the token can already use: the model never
sees the others, so step-up never starts.

Either way an entry the manifest does not declare (with no default scope) is left out:
no scope can unlock it, so listing it would invite a call that can only fail.

The key follows MCP's ``_meta`` naming rule (basic/index, "General fields"): a
reverse-DNS prefix whose second label is not ``modelcontextprotocol`` or ``mcp``. A
server's own ``_meta`` on an entry is kept; only this key is set by the guard.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

ListVisibility = Literal["annotate", "filter"]
LIST_VISIBILITIES: tuple[ListVisibility, ...] = ("annotate", "filter")
META_KEY = "io.mcpward/scopes"

Required = Callable[[str], frozenset[str] | None]


def annotated(items: list[Any], name: str, required: Required, held: frozenset[str]) -> list[Any]:
    """Every entry that some token may use, with ``_meta[META_KEY]`` set (in place)."""
    out: list[Any] = []
    for item in items:
        target = item.get(name) if isinstance(item, dict) else None
        if not isinstance(target, str):
            continue
        scopes = required(target)
        if scopes is None:
            continue
        meta = item.get("_meta")
        if not isinstance(meta, dict):
            # Absent, or not the object MCP requires: ours is then the only entry.
            meta = item["_meta"] = {}
        meta[META_KEY] = {"required": sorted(scopes), "granted": scopes <= held}
        out.append(item)
    return out


def filtered(items: list[Any], name: str, visible: Callable[[str], bool]) -> list[Any]:
    """Only the entries the token can already use, unchanged."""
    return [
        item
        for item in items
        if isinstance(item, dict) and isinstance(item.get(name), str) and visible(item[name])
    ]
