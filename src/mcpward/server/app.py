"""The authorization server's HTTP surface (Starlette), framework glue only: each endpoint
reads the request, calls the protocol module, and renders the result or the OAuth error."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
from sqlalchemy.exc import DBAPIError, OperationalError
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpward.audit import AuditEvent
from mcpward.guard import Bucket, Limit, MemoryRateLimiter
from mcpward.server import _grants, _rfc7009, _rfc7591, _rfc7662, _rfc8414
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server._forms import read_form
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidClient, OAuthError, ServerError, TemporarilyUnavailable
from mcpward.storage.database import StorageUnavailable

log = logging.getLogger("mcpward.server")

Handler = Callable[[Request], Awaitable[Response]]

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def error_response(error: OAuthError) -> Response:
    status, headers, body = error.render()
    return Response(body, status_code=status, headers=headers)


def json_response(body: dict[str, Any], status: int = 200, cache: str | None = None) -> Response:
    headers = dict(NO_STORE) if cache is None else {"Cache-Control": cache}
    return Response(
        orjson.dumps(body),
        status_code=status,
        headers=headers,
        media_type="application/json",
    )


def oauth_endpoint(handler: Handler) -> Handler:
    """Render OAuth errors; storage failures become 503, anything else a bare 500."""

    async def endpoint(request: Request) -> Response:
        try:
            return await handler(request)
        except OAuthError as error:
            return error_response(error)
        except (OperationalError, DBAPIError, StorageUnavailable, OSError) as exc:
            log.error("storage unavailable at %s: %s", request.url.path, type(exc).__name__)
            return error_response(TemporarilyUnavailable("storage is unavailable, retry"))
        except Exception as exc:
            log.exception("unexpected error at %s: %s", request.url.path, type(exc).__name__)
            return error_response(ServerError())

    return endpoint


class _Cors(CORSMiddleware):
    """Starlette's CORS, skipped for requests that are not cross-origin when every origin
    is allowed (then no answer varies by origin): agents calling the token endpoint send
    no Origin header, and this is their hot path."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allow_all_origins and not any(k == b"origin" for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _cors(app: ASGIApp, server: AuthorizationServer, methods: list[str]) -> ASGIApp:
    # No cookies cross these endpoints, so a wildcard origin is safe; browsers (MCP
    # Inspector) need it to read metadata and call the token endpoint.
    return _Cors(
        app,
        allow_origins=server.settings.cors_allow_origins,
        allow_methods=[*methods, "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "MCP-Protocol-Version"],
        expose_headers=["WWW-Authenticate"],
        max_age=600,
    )


def routes(server: AuthorizationServer) -> list[BaseRoute]:
    async def metadata(request: Request) -> Response:
        return json_response(_rfc8414.metadata(server), cache="public, max-age=300")

    async def jwks(request: Request) -> Response:
        return json_response(server.keys.jwks(), cache="public, max-age=300")

    async def authenticate(request: Request, form: dict[str, str]) -> AuthenticatedClient:
        try:
            return await server.client_auth.authenticate(form, request.headers.get("authorization"))
        except InvalidClient as error:
            server.audit.emit(
                AuditEvent(
                    "client.authentication_failed",
                    "unauthorized",
                    client_id=_claimed_client_id(form),
                    reason=error.error,
                    detail={"endpoint": request.url.path},
                )
            )
            raise

    @oauth_endpoint
    async def token(request: Request) -> Response:
        form, resources = await read_form(request)
        authenticated = await authenticate(request, form)
        body = await _grants.token_response(server, form, resources, authenticated)
        return json_response(body)

    @oauth_endpoint
    async def revoke(request: Request) -> Response:
        form, _ = await read_form(request)
        authenticated = await authenticate(request, form)
        await _rfc7009.revoke(server, form, authenticated)
        return Response(status_code=200, headers=NO_STORE)

    @oauth_endpoint
    async def introspect(request: Request) -> Response:
        form, _ = await read_form(request)
        authenticated = await authenticate(request, form)
        return json_response(await _rfc7662.introspect(server, form, authenticated))

    registrations = MemoryRateLimiter()
    registration_limit = Limit(server.settings.registrations_per_hour, 3600.0)

    @oauth_endpoint
    async def register(request: Request) -> Response:
        # Per client address, as uvicorn reports it: behind a proxy that is the forwarded
        # address only when the proxy is listed in trusted_proxies.
        address = request.client.host if request.client else "unknown"
        decision = await registrations.hit(
            [Bucket("register:" + address, registration_limit, "address")], None, server.clock()
        )
        if not decision.allowed:
            retry = str(max(1, math.ceil(decision.retry_after)))
            return Response(
                orjson.dumps(
                    {
                        "error": "temporarily_unavailable",
                        "error_description": "too many registrations from this address",
                    }
                ),
                status_code=429,
                headers={**NO_STORE, "Retry-After": retry},
                media_type="application/json",
            )
        status, body = await _rfc7591.register(server, await _rfc7591.read_json(request))
        return json_response(body, status)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(request: Request) -> Response:
        try:
            await server.store.ping()
        except Exception as exc:
            log.warning("readiness: storage unreachable: %s", type(exc).__name__)
            return JSONResponse({"status": "storage unreachable"}, status_code=503)
        return JSONResponse({"status": "ready"})

    issuer_path = urlsplit(server.settings.issuer).path
    base = issuer_path.rstrip("/")
    # The token endpoint first: routes are matched in order and it is the busiest.
    table: list[BaseRoute] = [
        Route(base + "/token", _cors(_asgi(token), server, ["POST"]), methods=["POST", "OPTIONS"])
    ]
    table += [
        Route(path, _cors(_asgi(metadata), server, ["GET"]), methods=["GET", "OPTIONS"])
        for path in _rfc8414.well_known_paths(issuer_path)
    ]
    table += [
        Route(base + "/jwks.json", _cors(_asgi(jwks), server, ["GET"]), methods=["GET", "OPTIONS"]),
        Route(
            base + "/revoke", _cors(_asgi(revoke), server, ["POST"]), methods=["POST", "OPTIONS"]
        ),
        Route(base + "/introspect", introspect, methods=["POST"]),
        *(
            [
                Route(
                    base + "/register",
                    _cors(_asgi(register), server, ["POST"]),
                    methods=["POST", "OPTIONS"],
                )
            ]
            if server.settings.dynamic_client_registration
            else []
        ),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
    ]
    return table


def _asgi(handler: Handler) -> ASGIApp:
    from starlette.routing import request_response

    return request_response(handler)


def _claimed_client_id(form: dict[str, str]) -> str | None:
    client_id = form.get("client_id")
    # Only identifiers go to the audit trail; cap the length of what an attacker sent.
    return client_id[:200] if client_id else None
