"""The response side of one guarded request: what the app answers, watched on its way
to the client.

:class:`Inspector` records the status, adds the RateLimit headers, notes which tool calls
failed (for the audit trail and metrics), and rewrites ``*/list`` results (annotated or
filtered, ``_lists.py``), in a JSON body or an SSE stream. SSE events are never held up;
a JSON answer is held back only when a list result has to be rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from starlette.types import Message, Send

from mcpward.guard._guard import Guard
from mcpward.guard._identity import Identity
from mcpward.guard._jsonrpc import LISTS, Call, Kind
from mcpward.guard._lists import annotated, filtered


class Inspector:
    """The ``send`` the app is given. ``failed`` holds the keys (:func:`id_key`) of the tool
    calls whose answer was an error; ``status`` is the answer's HTTP status."""

    __slots__ = (
        "_buffer",
        "_chunks",
        "_extra",
        "_guard",
        "_identity",
        "_lists",
        "_mode",
        "_send",
        "_start",
        "_tools",
        "failed",
        "status",
    )

    def __init__(
        self,
        guard: Guard,
        identity: Identity,
        calls: list[Call],
        send: Send,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        self._guard = guard
        self._identity = identity
        self._send = send
        self._extra = extra
        self._lists: dict[Any, tuple[Kind, str, str]] = {}
        self._tools: set[Any] = set()
        for c in calls:
            if c.kind == "tool":
                self._tools.add(id_key(c.id))
            elif c.method in LISTS:
                self._lists[id_key(c.id)] = LISTS[c.method]
        self.failed: set[Any] = set()
        self.status = 0
        # "pass", or what the body is: "json" (observe), "json-rewrite", "sse"
        self._mode = "pass"
        self._start: Message | None = None
        self._buffer = b""
        self._chunks: list[bytes] = []

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            self.status = message["status"]
            headers = message.get("headers", ())
            if self._extra is not None:
                message = {**message, "headers": [*headers, *self._extra]}
            if self._lists or self._tools:
                ctype = header_value(headers, b"content-type")
                if ctype.startswith(b"application/json"):
                    if self._lists:
                        self._mode = "json-rewrite"
                        self._start = message
                        return
                    self._mode = "json"
                elif ctype.startswith(b"text/event-stream"):
                    self._mode = "sse"
            await self._send(message)
            return
        mode = self._mode
        if mode == "pass" or kind != "http.response.body":
            await self._send(message)
            return
        chunk = message.get("body", b"")
        more = message.get("more_body", False)
        if mode == "json":
            # Only looking (did a tool call fail?): pass the bytes on unchanged.
            if more:
                if chunk:
                    self._chunks.append(chunk)
            elif self._chunks:
                self._observe_json(b"".join((*self._chunks, chunk)))
                self._chunks = []
            else:
                self._observe_json(chunk)  # the usual JSON answer: one message
            await self._send(message)
            return
        if mode == "json-rewrite":
            if chunk:
                self._chunks.append(chunk)
            if more:
                return
            body = self._rewrite_json(b"".join(self._chunks))
            self._chunks = []
            assert self._start is not None
            headers = [(k, v) for k, v in self._start.get("headers", ()) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self._send({**self._start, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
            return
        self._buffer += chunk
        if not self._lists:
            # SSE, only looking: scan whole events, forward the message as it came.
            while (cut := event_end(self._buffer)) is not None:
                self._observe_event(self._buffer[: cut[0]])
                self._buffer = self._buffer[cut[1] :]
            if not more:
                self._buffer = b""
            await self._send(message)
            return
        out = b""
        while (cut := event_end(self._buffer)) is not None:
            event, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            out += self._rewrite_event(event) + b"\n\n"
        if not more:
            out += self._buffer
            self._buffer = b""
        await self._send({"type": "http.response.body", "body": out, "more_body": more})

    def _observe_json(self, body: bytes) -> None:
        if not may_fail(body):
            return
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return
        for message in data if isinstance(data, list) else (data,):
            self._visit(message)

    def _rewrite_json(self, body: bytes) -> bytes:
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return body
        changed = False
        for message in data if isinstance(data, list) else [data]:
            changed |= self._visit(message)
        return orjson.dumps(data) if changed else body

    @staticmethod
    def _event_data(event: bytes) -> tuple[list[bytes], Any] | None:
        lines = event.replace(b"\r\n", b"\n").split(b"\n")
        data_lines = [line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:")]
        if not data_lines:
            return None
        try:
            return lines, orjson.loads(b"\n".join(data_lines))
        except orjson.JSONDecodeError:
            return None

    def _observe_event(self, event: bytes) -> None:
        found = self._event_data(event)
        if found is not None:
            self._visit(found[1])

    def _rewrite_event(self, event: bytes) -> bytes:
        found = self._event_data(event)
        if found is None:
            return event
        lines, message = found
        if not self._visit(message):
            return event
        others = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join([*others, b"data: " + orjson.dumps(message)])

    def _visit(self, message: Any) -> bool:
        if not isinstance(message, dict) or "id" not in message:
            return False
        key = id_key(message["id"])
        result = message.get("result")
        if key in self._tools:
            if "error" in message or (isinstance(result, dict) and result.get("isError")):
                self.failed.add(key)
            return False
        spec = self._lists.get(key)
        if spec is None or not isinstance(result, dict):
            return False
        kind, field, name = spec
        items = result.get(field)
        if not isinstance(items, list):
            return False
        guard, identity = self._guard, self._identity
        if guard.rules.list_visibility == "filter":
            result[field] = filtered(items, name, lambda t: guard.visible(identity, kind, t))
        else:
            required = guard.rules.required
            result[field] = annotated(items, name, lambda t: required(kind, t), identity.scopes)
        return True


def id_key(value: Any) -> Any:
    """A hashable key for a JSON-RPC id, equal for equal JSON values only (so ``1``,
    ``"1"``, ``1.0`` and ``true`` stay apart)."""
    if type(value) is str or type(value) is int:
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def may_fail(body: bytes) -> bool:
    """False only when no JSON-RPC message in ``body`` can be an error or a tool result
    with ``isError`` true, so the body need not be parsed: neither key appears except as
    ``"isError": false``, and no key could hide behind a ``\\u`` escape."""
    # find() rather than `in`: `bytes in bytes` first tries the operand as an int and
    # raises (and clears) a TypeError inside, which costs more than the search.
    if body.find(b"\\u") >= 0 or body.find(b'"error"') >= 0:
        return True
    at = body.find(b'"isError"')
    while at >= 0:
        rest = body[at + 9 : at + 40].lstrip(b" \t\r\n")
        if not rest.startswith(b":") or not rest[1:].lstrip(b" \t\r\n").startswith(b"false"):
            return True
        at = body.find(b'"isError"', at + 9)
    return False


def event_end(buffer: bytes) -> tuple[int, int] | None:
    for sep in (b"\n\n", b"\r\n\r\n"):
        at = buffer.find(sep)
        if at >= 0:
            return at, at + len(sep)
    return None


def header_value(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value.lower()
    return b""
