"""RFC 7591 Dynamic Client Registration: the ``/register`` endpoint's request and answer.

The metadata rules it shares with Client ID Metadata Documents are in
``_client_metadata.py``, the redirect URI rules in ``_redirect_uris.py``.

Anonymous registration cannot create ``client_credentials`` clients unless the caller
opts in (``allow_client_credentials=True``, e.g. behind an initial access token): otherwise
anyone on the network could mint machine-to-machine tokens without a user.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request

from mcpward._asgi import BodyIncomplete, BodyTooLarge, media_type, read_body
from mcpward._secrets import new_id
from mcpward.audit import AuditEvent
from mcpward.server import _scopes
from mcpward.server._client_metadata import parse_json, validate_metadata
from mcpward.server.errors import InvalidClientMetadata, InvalidRequest, OAuthError

if TYPE_CHECKING:
    from mcpward.server.core import AuthorizationServer

MAX_BODY = 16 * 1024


async def read_json(request: Request, max_bytes: int = MAX_BODY) -> object:
    """The registration request's JSON body: ``application/json`` (RFC 7591 §3.1), at most
    ``max_bytes``, valid UTF-8 JSON without duplicate names or NaN/Infinity."""
    if media_type(request.headers.get("content-type")) != "application/json":
        raise InvalidRequest("the body must be application/json")
    try:
        body = await read_body(
            request.receive, limit=max_bytes, content_length=request.headers.get("content-length")
        )
    except BodyTooLarge:
        raise InvalidRequest("the request body is too large") from None
    except BodyIncomplete:
        raise InvalidRequest("the request body did not arrive") from None
    return parse_json(body)


async def register(
    server: AuthorizationServer, body: object, *, allow_client_credentials: bool = False
) -> tuple[int, dict[str, Any]]:
    """Register a client from RFC 7591 metadata; (201, the §3.2.1 response body).

    A secret, for ``client_secret_basic``/``client_secret_post`` clients, appears in this
    response only; it is stored as a hash."""
    try:
        metadata = validate_metadata(
            body,
            resources=server.resources(),
            allow_http_jwks_uri=server.settings.client_metadata_documents.allow_http,
        )
        if "client_credentials" in metadata.grant_types:
            if not allow_client_credentials:
                raise InvalidClientMetadata(
                    "client_credentials clients are created by an operator, not by "
                    "dynamic registration"
                )
            if metadata.scope is None:
                raise InvalidClientMetadata("scope is required for client_credentials")
    except OAuthError as error:
        server.audit.emit(
            AuditEvent(
                "client.registration_rejected",
                "invalid",
                reason=error.error,
                detail={"source": "dcr"},
            )
        )
        raise

    client_id = new_id()
    record = metadata.record(client_id, source="dcr", name=client_id)
    secret = await server.clients.create(record)
    stored = await server.store.clients.get(client_id)
    issued_at = stored.created_at if stored is not None else server.clock()
    response: dict[str, Any] = {
        "client_id": client_id,
        "client_id_issued_at": int(issued_at),
    }
    if secret is not None:
        response["client_secret"] = secret.secret
        response["client_secret_expires_at"] = int(secret.expires_at)
    response.update(metadata.registered())
    server.audit.emit(
        AuditEvent(
            "client.registered",
            "ok",
            client_id=client_id,
            scopes=tuple(_scopes.parse(metadata.scope)),
            detail={
                "source": "dcr",
                "auth_method": metadata.token_endpoint_auth_method,
                "application_type": metadata.application_type,
            },
        )
    )
    return 201, response
