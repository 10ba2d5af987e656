"""What every grant shares: the request it answers, reading a presented credential, and
the tail of every successful grant (mint the access token, audit, build the body)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from mcpward._secrets import CredentialKind, credential_hash, is_well_formed
from mcpward.audit import AuditEvent, EventName
from mcpward.server import _scopes
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidGrant, InvalidRequest


@dataclass(frozen=True, slots=True)
class TokenRequest:
    """One request to the token endpoint, its client already authenticated."""

    form: Mapping[str, str]
    resources: Sequence[str]
    authenticated: AuthenticatedClient


class Grant(Protocol):
    """A grant type of the token endpoint (RFC 6749 §4): validate, then respond."""

    grant_type: ClassVar[str]

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        """The successful token response's body; raises an ``OAuthError`` otherwise."""
        ...


def presented(form: Mapping[str, str], name: str, kind: CredentialKind, invalid: str) -> str:
    """The hash of the credential a grant presents, after the cheap format and checksum
    check (a malformed one never reaches storage)."""
    value = form.get(name)
    if not value:
        raise InvalidRequest(f"{name} is required")
    if not is_well_formed(value, kind):
        raise InvalidGrant(invalid)
    return credential_hash(value)


def issue(
    server: AuthorizationServer,
    *,
    event: EventName,
    client_id: str,
    subject: str,
    resource: str,
    scopes: Sequence[str],
    requested: Sequence[str] = (),
    family_id: str | None = None,
    auth_time: float | None = None,
    refresh_token: str | None = None,
) -> dict[str, Any]:
    """Mint the access token, write the audit event, and return the response body
    (RFC 6749 §5.1; ``scope`` always, as it may differ from the request, §3.3)."""
    scope = _scopes.render(scopes)
    access = server.mint(
        subject=subject,
        client_id=client_id,
        resource=resource,
        scope=scope,
        family_id=family_id,
        auth_time=auth_time,
    )
    detail: dict[str, str | int | float | bool | None] = {}
    if family_id:
        detail["family"] = family_id
    if requested and set(requested) != set(scopes):
        # Scope tokens are validated (RFC 6749 §3.3 syntax, known to the resource).
        detail["requested_scope"] = _scopes.render(requested)
    server.clients.note_use(client_id)
    server.audit.emit(
        AuditEvent(
            event,
            "ok",
            client_id=client_id,
            subject=subject,
            jti=access.jti,
            scopes=sorted(set(scopes)),
            audience=resource,
            detail=detail,
        )
    )
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": access.scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    return body
