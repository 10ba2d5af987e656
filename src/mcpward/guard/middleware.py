"""The guard as pure ASGI middleware in front of any streamable-HTTP MCP app: the
request side.

Per request: serve Protected Resource Metadata, ``/metrics`` and a gateway's health
checks (``_health.py``) itself; otherwise
authenticate the access token (Bearer, or DPoP with its proof for this method and path),
read the JSON-RPC body (bounded), authorize every call in it, hand the verified identity
to the app (``scope["mcpward.identity"]``, and ``scope["user"]`` in the ``mcp`` SDK's own
shape so its session binding and ``get_access_token()`` work), let the response inspector
(``_inspector.py``) shape ``*/list`` results and note failed tool calls, and write one
audit event per request and per tool call.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from starlette.authentication import AuthCredentials
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mcpward._asgi import BodyIncomplete, BodyTooLarge, ratelimit_headers, read_body, send_response
from mcpward.audit import AuditEvent, Outcome
from mcpward.guard._errors import BadMessage, GuardError, InsufficientScope
from mcpward.guard._guard import Guard
from mcpward.guard._health import GatewayHealth
from mcpward.guard._identity import Identity, _current
from mcpward.guard._inspector import Inspector, id_key
from mcpward.guard._jsonrpc import Call, parse
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
        probes: GatewayHealth | None = None,
    ) -> None:
        self.app = app
        self.guard = guard
        self.metrics_path = metrics_path
        self.max_body = max_body
        # RateLimit / RateLimit-Policy on answers that passed, from the limiter's own
        # decision (no extra backend round trip).
        self.ratelimit_headers = ratelimit_headers
        self._prm_body = json.dumps(guard.metadata.document()).encode()
        # What the guard answers itself, without a token, to GET and HEAD: Protected
        # Resource Metadata, the metrics, a gateway's health checks. One lookup a request.
        self._local: dict[str, Callable[[Send], Awaitable[None]]] = dict.fromkeys(
            guard.metadata.paths, self._send_prm
        )
        if metrics_path is not None:
            self._local[metrics_path] = self._send_metrics
        self.probes = probes
        if probes is not None:
            self._local.update({p: functools.partial(probes.respond, p) for p in probes.paths})
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
        method: str = scope["method"]
        local = self._local.get(scope["path"])
        if local is not None and method in ("GET", "HEAD"):
            await local(send)
            return
        if method == "OPTIONS":
            # CORS preflight carries no credentials; the app answers it.
            await self.app(scope, receive, send)
            return
        await self._guarded(scope, receive, send, method)

    async def _send_prm(self, send: Send) -> None:
        await send_response(send, 200, _PRM_HEADERS, self._prm_body)

    async def _send_metrics(self, send: Send) -> None:
        metrics = self.guard.metrics
        await send_response(send, 200, {"content-type": metrics.content_type}, metrics.render())

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
            # One pass over the headers for everything the guard reads of them.
            authorization: list[bytes] = []
            dpop: list[bytes] = []
            declared: bytes | None = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization.append(value)
                elif name == b"content-length":
                    declared = value
                elif name == b"dpop":
                    dpop.append(value)
            identity, proof = await guard.authenticate(
                authorization, scope["query_string"], dpop=dpop, method=method, path=scope["path"]
            )
            if method == "POST":
                # Read and parse once; the app gets the very same bytes replayed.
                body = await self._read_body(receive, declared)
                calls = parse(body)
                receive = _replay(body, receive)
            decision = await guard.authorize(identity, calls, proof)
        except GuardError as error:
            guard.metrics.decision_seconds.observe(time.perf_counter() - started)
            self._audit(scope, identity, calls, method, error.outcome, started, error.error)
            status, headers, payload = guard.error_response(error)
            if len(calls) == 1 and calls[0].id is not None:
                # A JSON-RPC error in the body lets MCP clients show why (the SDK reads one
                # from a non-2xx answer); status and challenge stay the OAuth ones.
                payload = _jsonrpc_error(calls[0].id, error)
            await send_response(send, status, headers, payload)
            return
        guard.metrics.decision_seconds.observe(time.perf_counter() - started)

        # The scope is this request's own: set in place, as Starlette's middleware does.
        scope["mcpward.identity"] = identity
        entry = self._users.get(id(identity))
        # The entry holds the identity itself, so its id cannot be reused while cached.
        if entry is None or entry[0] is not identity:
            entry = self._app_user(identity)
        scope["user"], scope["auth"] = entry[1], entry[2]
        extra = self._ratelimit_headers(decision) if self.ratelimit_headers else None
        inspector = Inspector(guard, identity, calls, send, extra)
        token = _current.set(identity)
        outcome: Outcome = "ok"
        try:
            await self.app(scope, receive, inspector.send)
        except Exception:
            outcome = "error"
            raise
        finally:
            _current.reset(token)
            if inspector.status >= 500:
                outcome = "error"
            self._audit(scope, identity, calls, method, outcome, started, None, inspector)

    def _app_user(self, identity: Identity) -> tuple[Identity, AuthenticatedUser, AuthCredentials]:
        """What the app sees of a verified identity, made once per identity."""
        if len(self._users) >= _USER_CACHE:
            self._users.clear()
        user = _sdk_user(identity, self.guard.resource)
        entry = (identity, user, AuthCredentials(sorted(identity.scopes)))
        self._users[id(identity)] = entry
        return entry

    def _ratelimit_headers(self, decision: Decision | None) -> list[tuple[bytes, bytes]] | None:
        """draft-ietf-httpapi-ratelimit-headers for the tightest bucket of this request."""
        if decision is None or decision.limit is None:
            return None
        return ratelimit_headers(
            decision.policy,
            quota=decision.limit.requests,
            window=decision.limit.window,
            remaining=decision.remaining,
            reset=decision.reset,
            cache=self._policy_headers,  # bounded: one entry per limit and bucket kind
        )

    async def _read_body(self, receive: Receive, declared: bytes | None) -> bytes:
        try:
            return await read_body(receive, limit=self.max_body, content_length=declared)
        except BodyTooLarge:
            raise BadMessage("the body is too large") from None
        except BodyIncomplete:
            raise BadMessage("the client went away") from None

    def _audit(
        self,
        scope: Scope,
        identity: Identity | None,
        calls: list[Call],
        http_method: str,
        outcome: Outcome,
        started: float,
        reason: str | None,
        inspector: Inspector | None = None,
    ) -> None:
        guard = self.guard
        seconds = time.perf_counter() - started
        metrics = guard.metrics
        metrics.request(_metric_method(calls, http_method), outcome, seconds)
        tool_calls = [c for c in calls if c.kind == "tool" and c.target is not None]
        failed = inspector.failed if inspector is not None else None
        tool_outcomes: list[Outcome] = []
        known = guard.rules.manifest.tools
        for call in tool_calls:
            tool_outcome = outcome
            if outcome == "ok" and failed and id_key(call.id) in failed:
                tool_outcome = "error"
            tool_outcomes.append(tool_outcome)
            # Label values from client input only when declared: bounded cardinality.
            target = call.target
            label = target if target and target in known else "other"
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
        if identity is not None and "act" in identity.claims:
            # A downstream call on someone's behalf: who acted (RFC 8693 §4.1).
            common["detail"] = {"actor_chain": ",".join(identity.actors)}
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
