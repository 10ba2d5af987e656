"""The guard as pure ASGI middleware in front of any streamable-HTTP MCP app.

Per request: serve Protected Resource Metadata and ``/metrics`` itself; otherwise
authenticate the bearer token, read the JSON-RPC body (bounded), authorize every call in
it, hand the verified identity to the app (``scope["mcpward.identity"]``, and
``scope["user"]`` in the ``mcp`` SDK's own shape so its session binding and
``get_access_token()`` work), filter ``*/list`` results to what the token may use, and
write one audit event per request and per tool call.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from collections.abc import Iterable
from typing import Any

import orjson
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpward.audit import AuditEvent, Outcome
from mcpward.guard._errors import BadMessage, GuardError, InsufficientScope
from mcpward.guard._guard import Guard
from mcpward.guard._identity import Identity, _reset_current, _set_current
from mcpward.guard._jsonrpc import LISTS, Call, Kind, parse
from mcpward.state import Decision

MAX_BODY = 4 * 1024 * 1024
_USER_CACHE = 4096
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        guard: Guard,
        *,
        metrics_path: str | None = "/metrics",
        max_body: int = MAX_BODY,
        ratelimit_headers: bool = True,
    ) -> None:
        self.app = app
        self.guard = guard
        self.metrics_path = metrics_path
        self.max_body = max_body
        # RateLimit / RateLimit-Policy on answers that passed, from the limiter's own
        # decision (no extra backend round trip).
        self.ratelimit_headers = ratelimit_headers
        self._prm_paths = frozenset(guard.metadata.paths)
        self._prm_body = json.dumps(guard.metadata.document()).encode()
        self._policy_headers: dict[tuple[str, int, float], bytes] = {}
        # What the app sees of an identity, built once per verified token: the verifier's
        # cache hands back the same Identity object for the same token.
        self._users: dict[int, tuple[Identity, AuthenticatedUser, AuthCredentials]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            # No bearer-token flow for websockets: refuse rather than pass unauthenticated.
            await send({"type": "websocket.close", "code": 1008})
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if path in self._prm_paths and method in ("GET", "HEAD"):
            await _respond(send, 200, _PRM_HEADERS, self._prm_body)
            return
        if path == self.metrics_path and method == "GET":
            body = self.guard.metrics.render()
            await _respond(send, 200, {"content-type": self.guard.metrics.content_type}, body)
            return
        if method == "OPTIONS":
            # CORS preflight carries no credentials; the app answers it.
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send, method)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The app's lifespan, with the guard's own start and stop around it."""
        guard = self.guard

        async def receive_hook() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await guard.start()
            return message

        async def send_hook(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                await guard.aclose()
            await send(message)

        await self.app(scope, receive_hook, send_hook)

    async def _guarded(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        guard = self.guard
        started = time.perf_counter()
        identity: Identity | None = None
        calls: list[Call] = []
        try:
            identity = await guard.authenticate(
                [v for k, v in scope["headers"] if k == b"authorization"], scope["query_string"]
            )
            if method == "POST":
                # Read and parse once; the app gets the very same bytes replayed.
                body = await _read_body(receive, self.max_body)
                calls = parse(body)
                receive = _replay(body, receive)
            decision = await guard.authorize(identity, calls)
        except GuardError as error:
            guard.metrics.decision_seconds.observe(time.perf_counter() - started)
            self._audit(scope, identity, calls, method, error.outcome, started, error.error)
            status, headers, payload = guard.error_response(error)
            if len(calls) == 1 and calls[0].id is not None:
                # A JSON-RPC error in the body lets MCP clients show why (the SDK reads one
                # from a non-2xx answer); status and challenge stay the OAuth ones.
                payload = _jsonrpc_error(calls[0].id, error)
            await _respond(send, status, headers, payload)
            return
        guard.metrics.decision_seconds.observe(time.perf_counter() - started)

        scope = dict(scope)
        scope["mcpward.identity"] = identity
        scope["user"], scope["auth"] = self._app_user(identity)
        extra = self._ratelimit_headers(decision) if self.ratelimit_headers else None
        inspector = _Inspector(guard, identity, calls, send, extra)
        token = _set_current(identity)
        outcome: Outcome = "ok"
        try:
            await self.app(scope, receive, inspector.send)
        except Exception:
            outcome = "error"
            raise
        finally:
            _reset_current(token)
            if inspector.status >= 500:
                outcome = "error"
            self._audit(scope, identity, calls, method, outcome, started, None, inspector)

    def _app_user(self, identity: Identity) -> tuple[AuthenticatedUser, AuthCredentials]:
        entry = self._users.get(id(identity))
        # The entry holds the identity itself, so its id cannot be reused while cached.
        if entry is not None and entry[0] is identity:
            return entry[1], entry[2]
        if len(self._users) >= _USER_CACHE:
            self._users.clear()
        user = _sdk_user(identity, self.guard.resource)
        credentials = AuthCredentials(sorted(identity.scopes))
        self._users[id(identity)] = (identity, user, credentials)
        return user, credentials

    def _ratelimit_headers(self, decision: Decision | None) -> list[tuple[bytes, bytes]] | None:
        """draft-ietf-httpapi-ratelimit-headers for the tightest bucket of this request."""
        if decision is None or decision.limit is None:
            return None
        limit = decision.limit
        key = (decision.policy, limit.requests, limit.window)
        policy = self._policy_headers.get(key)
        if policy is None:
            # Bounded: one entry per configured limit and bucket kind.
            policy = f'"{decision.policy}";q={limit.requests};w={math.ceil(limit.window)}'.encode()
            self._policy_headers[key] = policy
        state = f'"{decision.policy}";r={decision.remaining};t={math.ceil(decision.reset)}'
        return [(b"ratelimit-policy", policy), (b"ratelimit", state.encode())]

    def _audit(
        self,
        scope: Scope,
        identity: Identity | None,
        calls: list[Call],
        http_method: str,
        outcome: Outcome,
        started: float,
        reason: str | None,
        inspector: _Inspector | None = None,
    ) -> None:
        guard = self.guard
        seconds = time.perf_counter() - started
        metrics = guard.metrics
        metrics.request(_metric_method(calls, http_method), outcome, seconds)
        tool_calls = [c for c in calls if c.kind == "tool" and c.target is not None]
        failed = inspector.failed if inspector is not None else None
        tool_outcomes: list[Outcome] = []
        for call in tool_calls:
            tool_outcome = outcome
            if outcome == "ok" and failed and _key(call.id) in failed:
                tool_outcome = "error"
            tool_outcomes.append(tool_outcome)
            # Label values from client input only when declared: bounded cardinality.
            target = call.target
            label = target if target and target in guard.rules.manifest.tools else "other"
            metrics.tool_call(label, tool_outcome)
        if not guard.audit.sinks:
            return  # nobody to write to: skip building the events
        common: dict[str, Any] = {
            "client_id": identity.client_id if identity else None,
            "subject": identity.subject if identity else None,
            "jti": identity.jti if identity else None,
            "audience": guard.resource,
            "request_id": _request_id(scope),
            "duration_ms": round(seconds * 1000, 3),
            "reason": reason,
        }
        methods = ",".join(dict.fromkeys(c.method for c in calls)) or http_method
        guard.emit(AuditEvent(event="mcp.request", outcome=outcome, method=methods, **common))
        for call, tool_outcome in zip(tool_calls, tool_outcomes, strict=True):
            assert call.target is not None
            required = guard.rules.required("tool", call.target) or frozenset()
            guard.emit(
                AuditEvent(
                    event="mcp.tool_call",
                    outcome=tool_outcome,
                    tool=call.target,
                    method=call.method,
                    scopes=sorted(required),
                    **common,
                )
            )


class _Inspector:
    """The send side of one guarded request: records the status, adds the RateLimit
    headers, and watches (for ``*/list`` rewrites) the JSON-RPC responses, in a JSON body
    or an SSE stream, without delaying SSE events. A JSON answer is held back only when
    a list result has to be filtered; otherwise every message passes at once."""

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
                self._tools.add(_key(c.id))
            elif c.method in LISTS:
                self._lists[_key(c.id)] = LISTS[c.method]
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
            if self._extra is not None:
                message = {**message, "headers": [*message.get("headers", ()), *self._extra]}
            if self._lists or self._tools:
                ctype = _header(message.get("headers", ()), b"content-type")
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
            if chunk:
                self._chunks.append(chunk)
            if not more:
                self._observe_json(b"".join(self._chunks))
                self._chunks = []
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
            while (cut := _event_end(self._buffer)) is not None:
                self._observe_event(self._buffer[: cut[0]])
                self._buffer = self._buffer[cut[1] :]
            if not more:
                self._buffer = b""
            await self._send(message)
            return
        out = b""
        while (cut := _event_end(self._buffer)) is not None:
            event, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            out += self._rewrite_event(event) + b"\n\n"
        if not more:
            out += self._buffer
            self._buffer = b""
        await self._send({"type": "http.response.body", "body": out, "more_body": more})

    def _observe_json(self, body: bytes) -> None:
        if not _may_fail(body):
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
        key = _key(message["id"])
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
        result[field] = [
            item
            for item in items
            if isinstance(item, dict)
            and isinstance(item.get(name), str)
            and self._guard.visible(self._identity, kind, item[name])
        ]
        return True


_KNOWN_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "server/discover",
        "tools/call",
        "tools/list",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "resources/subscribe",
        "resources/unsubscribe",
        "prompts/list",
        "prompts/get",
        "completion/complete",
        "logging/setLevel",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    }
)


def _metric_method(calls: list[Call], http_method: str) -> str:
    if not calls:
        return http_method
    if len(calls) > 1:
        return "batch"
    return calls[0].method if calls[0].method in _KNOWN_METHODS else "other"


def _jsonrpc_error(request_id: Any, error: GuardError) -> bytes:
    data: dict[str, Any] = {"error": error.error, "status": error.status_code}
    if isinstance(error, InsufficientScope):
        data["scope"] = " ".join(sorted(error.scope))
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        # -32001: implementation-defined server error range (JSON-RPC 2.0 §5.1).
        "error": {"code": -32001, "message": error.description, "data": data},
    }
    return json.dumps(message).encode()


def _key(value: Any) -> Any:
    """A hashable key for a JSON-RPC id, equal for equal JSON values only (so ``1``,
    ``"1"``, ``1.0`` and ``true`` stay apart)."""
    if type(value) is str or type(value) is int:
        return value
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def _may_fail(body: bytes) -> bool:
    """False only when no JSON-RPC message in ``body`` can be an error or a tool result
    with ``isError`` true, so the body need not be parsed: neither key appears except as
    ``"isError": false``, and no key could hide behind a ``\\u`` escape."""
    if b"\\u" in body or b'"error"' in body:
        return True
    at = body.find(b'"isError"')
    while at >= 0:
        rest = body[at + 9 : at + 40].lstrip(b" \t\r\n")
        if not rest.startswith(b":") or not rest[1:].lstrip(b" \t\r\n").startswith(b"false"):
            return True
        at = body.find(b'"isError"', at + 9)
    return False


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    for sep in (b"\n\n", b"\r\n\r\n"):
        at = buffer.find(sep)
        if at >= 0:
            return at, at + len(sep)
    return None


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes:
    for key, value in headers:
        if key.lower() == name:
            return value.lower()
    return b""


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise BadMessage("the client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BadMessage("the body is too large")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def _request_id(scope: Scope) -> str:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            text = bytes(value).decode("latin-1")
            if _REQUEST_ID.fullmatch(text):
                return text
    return os.urandom(16).hex()


def _sdk_user(identity: Identity, resource: str) -> AuthenticatedUser:
    # The raw token is deliberately not handed to the app: tools have no business
    # forwarding it (no token passthrough).
    return AuthenticatedUser(
        AccessToken(
            token="",
            client_id=identity.client_id,
            scopes=sorted(identity.scopes),
            expires_at=int(identity.expires_at),
            resource=resource,
            subject=identity.subject,
            claims={"iss": identity.issuer},
        )
    )


_PRM_HEADERS = {
    "content-type": "application/json",
    "cache-control": "public, max-age=3600",
    "access-control-allow-origin": "*",
}


async def _respond(send: Send, status: int, headers: dict[str, str], body: bytes) -> None:
    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
