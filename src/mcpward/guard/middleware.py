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
import re
import time
import uuid
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpward.audit import AuditEvent, Outcome
from mcpward.guard._errors import BadMessage, GuardError, InsufficientScope
from mcpward.guard._guard import Guard
from mcpward.guard._identity import Identity, _reset_current, _set_current
from mcpward.guard._jsonrpc import LISTS, Call, parse

MAX_BODY = 4 * 1024 * 1024
_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,128}")


class GuardMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        guard: Guard,
        *,
        metrics_path: str | None = "/metrics",
        max_body: int = MAX_BODY,
    ) -> None:
        self.app = app
        self.guard = guard
        self.metrics_path = metrics_path
        self.max_body = max_body
        self._prm_paths = frozenset(guard.metadata.paths)
        self._prm_body = json.dumps(guard.metadata.document()).encode()

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
        request_id = _request_id(scope)
        identity: Identity | None = None
        calls: list[Call] = []
        try:
            identity = await guard.authenticate(
                [v for k, v in scope["headers"] if k == b"authorization"], scope["query_string"]
            )
            if method == "POST":
                body = await _read_body(receive, self.max_body)
                calls = parse(body)
                receive = _replay(body, receive)
            await guard.authorize(identity, calls)
        except GuardError as error:
            decided = time.perf_counter()
            guard.metrics.decision_seconds.observe(decided - started)
            self._audit(identity, calls, method, error.outcome, started, request_id, error.error)
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
        scope["user"] = _sdk_user(identity, guard.resource)
        scope["auth"] = AuthCredentials(sorted(identity.scopes))
        inspector = _Inspector(guard, identity, calls, send)
        token = _set_current(identity)
        outcome: Outcome = "ok"
        try:
            await self.app(scope, receive, inspector.send if inspector.active else send)
        except Exception:
            outcome = "error"
            raise
        finally:
            _reset_current(token)
            if inspector.status >= 500:
                outcome = "error"
            self._audit(identity, calls, method, outcome, started, request_id, None, inspector)

    def _audit(
        self,
        identity: Identity | None,
        calls: list[Call],
        http_method: str,
        outcome: Outcome,
        started: float,
        request_id: str,
        reason: str | None,
        inspector: _Inspector | None = None,
    ) -> None:
        guard = self.guard
        duration = (time.perf_counter() - started) * 1000
        methods = ",".join(dict.fromkeys(c.method for c in calls)) or http_method
        guard.metrics.requests.labels(_metric_method(calls, http_method), outcome).inc()
        guard.metrics.request_seconds.observe(duration / 1000)
        common: dict[str, Any] = {
            "client_id": identity.client_id if identity else None,
            "subject": identity.subject if identity else None,
            "jti": identity.jti if identity else None,
            "audience": guard.resource,
            "request_id": request_id,
            "duration_ms": round(duration, 3),
            "reason": reason,
        }
        guard.emit(AuditEvent(event="mcp.request", outcome=outcome, method=methods, **common))
        for call in calls:
            if call.kind != "tool" or call.target is None:
                continue
            tool_outcome = outcome
            if outcome == "ok" and inspector is not None and call.id in inspector.failed:
                tool_outcome = "error"
            required = guard.rules.required("tool", call.target) or frozenset()
            # Label values from client input only when declared: bounded cardinality.
            label = call.target if call.target in guard.rules.manifest.tools else "other"
            guard.metrics.tool_calls.labels(label, tool_outcome).inc()
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
    """Watches (and for ``*/list`` rewrites) the JSON-RPC responses of one request, in a
    JSON body or an SSE stream, without delaying SSE events."""

    def __init__(self, guard: Guard, identity: Identity, calls: list[Call], send: Send) -> None:
        self._guard = guard
        self._identity = identity
        self._send = send
        self._lists = {_key(c.id): LISTS[c.method] for c in calls if c.method in LISTS}
        self._tools = {_key(c.id) for c in calls if c.kind == "tool"}
        self.active = bool(self._lists or self._tools)
        self.failed: set[Any] = set()
        self.status = 0
        self._mode = "pass"
        self._start: Message | None = None
        self._buffer = b""

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            ctype = _header(message.get("headers", []), b"content-type")
            if ctype.startswith(b"application/json"):
                self._mode = "json"
                self._start = message
                return
            if ctype.startswith(b"text/event-stream"):
                self._mode = "sse"
            await self._send(message)
            return
        if message["type"] != "http.response.body" or self._mode == "pass":
            await self._send(message)
            return
        self._buffer += message.get("body", b"")
        more = message.get("more_body", False)
        if self._mode == "json":
            if more:
                return
            body = self._rewrite_json(self._buffer)
            self._buffer = b""
            assert self._start is not None
            headers = [(k, v) for k, v in self._start.get("headers", []) if k != b"content-length"]
            headers.append((b"content-length", str(len(body)).encode()))
            await self._send({**self._start, "headers": headers})
            await self._send({"type": "http.response.body", "body": body})
            return
        out = b""
        while True:
            cut = _event_end(self._buffer)
            if cut is None:
                break
            event, self._buffer = self._buffer[: cut[0]], self._buffer[cut[1] :]
            out += self._rewrite_event(event) + b"\n\n"
        if not more:
            out += self._buffer
            self._buffer = b""
        await self._send({"type": "http.response.body", "body": out, "more_body": more})

    def _rewrite_json(self, body: bytes) -> bytes:
        try:
            data = json.loads(body)
        except ValueError:
            return body
        changed = False
        for message in data if isinstance(data, list) else [data]:
            changed |= self._visit(message)
        return json.dumps(data, separators=(",", ":")).encode() if changed else body

    def _rewrite_event(self, event: bytes) -> bytes:
        lines = event.replace(b"\r\n", b"\n").split(b"\n")
        data_lines = [line[5:].lstrip(b" ") for line in lines if line.startswith(b"data:")]
        if not data_lines:
            return event
        try:
            message = json.loads(b"\n".join(data_lines))
        except ValueError:
            return event
        if not self._visit(message):
            return event
        others = [line for line in lines if not line.startswith(b"data:")]
        return b"\n".join(
            [*others, b"data: " + json.dumps(message, separators=(",", ":")).encode()]
        )

    def _visit(self, message: Any) -> bool:
        if not isinstance(message, dict) or "id" not in message:
            return False
        key = _key(message["id"])
        if key in self._tools:
            result = message.get("result")
            if "error" in message or (isinstance(result, dict) and result.get("isError")):
                self.failed.add(message["id"])
            return False
        spec = self._lists.get(key)
        result = message.get("result")
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


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _event_end(buffer: bytes) -> tuple[int, int] | None:
    for sep in (b"\n\n", b"\r\n\r\n"):
        at = buffer.find(sep)
        if at >= 0:
            return at, at + len(sep)
    return None


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> bytes:
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
    return uuid.uuid4().hex


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
