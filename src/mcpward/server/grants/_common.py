"""What every grant shares: the request it answers, reading a presented credential, and
the tail of every successful grant (mint the access token, audit, build the body)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from mcpward._secrets import CredentialKind, credential_hash, is_well_formed
from mcpward.audit import AuditEvent, EventName
from mcpward.dpop import Proof
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
    # The verified DPoP proof (RFC 9449 §5): the access token is bound to its key.
    proof: Proof | None = None

    @property
    def jkt(self) -> str | None:
        return self.proof.jkt if self.proof is not None else None


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


def require_key(
    server: AuthorizationServer, request: TokenRequest, bound: str | None, what: str
) -> None:
    """A code or refresh token bound to DPoP key ``bound`` is redeemed only with a proof
    of that key (RFC 9449 §5, §10): otherwise ``invalid_grant``, and an audit event, since
    a bound credential without its key is what a thief holds."""
    if bound is None or request.jkt == bound:
        return
    server.audit.emit(
        AuditEvent(
            "dpop.key_mismatch",
            "unauthorized",
            client_id=request.authenticated.client.client_id,
            reason="invalid_grant",
            detail={"credential": what, "proof": request.proof is not None},
        )
    )
    raise InvalidGrant(f"the {what} is bound to a DPoP key this request does not prove")


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
    jkt: str | None = None,
    lifetime: float | None = None,
    act: Mapping[str, Any] | None = None,
    detail: Mapping[str, str | int | float | bool | None] | None = None,
    body_extra: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Mint the access token, write the audit event, and return the response body
    (RFC 6749 §5.1; ``scope`` always, as it may differ from the request, §3.3). With
    ``jkt`` the token is bound to that DPoP key and its type is ``DPoP`` (RFC 9449 §5).
    ``detail`` adds identifiers to the audit event (grant type, assertion issuer and
    jti, actor chain); ``body_extra`` adds response members (RFC 8693 §2.2.1)."""
    scope = _scopes.render(scopes)
    access = server.mint(
        subject=subject,
        client_id=client_id,
        resource=resource,
        scope=scope,
        family_id=family_id,
        auth_time=auth_time,
        jkt=jkt,
        lifetime=lifetime,
        act=act,
    )
    audit_detail: dict[str, str | int | float | bool | None] = dict(detail or {})
    if family_id:
        audit_detail["family"] = family_id
    if jkt:
        # The key's thumbprint: a public identifier, never the proof.
        audit_detail["jkt"] = jkt
    if requested and set(requested) != set(scopes):
        # Scope tokens are validated (RFC 6749 §3.3 syntax, known to the resource).
        audit_detail["requested_scope"] = _scopes.render(requested)
    server.audit.emit(
        AuditEvent(
            event,
            "ok",
            client_id=client_id,
            subject=subject,
            jti=access.jti,
            scopes=sorted(set(scopes)),
            audience=resource,
            detail=audit_detail,
        )
    )
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "DPoP" if jkt else "Bearer",
        "expires_in": access.expires_in,
        "scope": access.scope,
    }
    if refresh_token is not None:
        body["refresh_token"] = refresh_token
    if body_extra:
        body.update(body_extra)
    return body
