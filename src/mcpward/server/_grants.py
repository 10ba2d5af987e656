"""The token endpoint's grants: authorization_code (PKCE S256), refresh_token (one-time
use with reuse detection) and client_credentials. RFC 6749 §4-6, OAuth 2.1 §4, RFC 9700
§4.14, RFC 8707."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcpward._secrets import (
    CredentialKind,
    credential_hash,
    is_well_formed,
    new_credential,
    new_id,
)
from mcpward.audit import AuditEvent
from mcpward.server import _rfc7636, _scopes
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server._rfc9068 import IssuedAccessToken
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    InvalidTarget,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from mcpward.storage.records import FamilyRecord, RefreshRecord

GRANTS = ("authorization_code", "refresh_token", "client_credentials")


async def token_response(
    server: AuthorizationServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    authenticated: AuthenticatedClient,
) -> dict[str, Any]:
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    if grant_type not in GRANTS:
        raise UnsupportedGrantType("unsupported grant_type")
    client = authenticated.client
    if grant_type not in client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    if grant_type == "client_credentials":
        return await _client_credentials(server, form, resources, authenticated)
    if grant_type == "authorization_code":
        return await _authorization_code(server, form, resources, authenticated)
    return await _refresh_token(server, form, resources, authenticated)


def _presented(form: Mapping[str, str], name: str, kind: CredentialKind, invalid: str) -> str:
    """The hash of the credential a grant presents, after the cheap format and checksum
    check (a malformed one never reaches storage)."""
    value = form.get(name)
    if not value:
        raise InvalidRequest(f"{name} is required")
    if not is_well_formed(value, kind):
        raise InvalidGrant(invalid)
    return credential_hash(value)


def _body(access: IssuedAccessToken, refresh: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": access.token,
        "token_type": "Bearer",
        "expires_in": access.expires_in,
        "scope": access.scope,
    }
    if refresh is not None:
        body["refresh_token"] = refresh
    return body


def _issued(
    server: AuthorizationServer,
    event: str,
    access: IssuedAccessToken,
    *,
    client_id: str,
    subject: str,
    audience: str,
    family_id: str | None = None,
    requested: tuple[str, ...] = (),
) -> None:
    detail: dict[str, str | int | float | bool | None] = {}
    if family_id:
        detail["family"] = family_id
    granted = access.scope.split()
    if requested and set(requested) != set(granted):
        # Scope tokens are validated (RFC 6749 §3.3 syntax, known to the resource).
        detail["requested_scope"] = _scopes.render(requested)
    server.audit.emit(
        AuditEvent(
            event,
            "ok",
            client_id=client_id,
            subject=subject,
            jti=access.jti,
            scopes=granted,
            audience=audience,
            detail=detail,
        )
    )


# -- client_credentials ---------------------------------------------------------------


async def _client_credentials(
    server: AuthorizationServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    authenticated: AuthenticatedClient,
) -> dict[str, Any]:
    client = authenticated.client
    if client.is_public:
        raise UnauthorizedClient("client_credentials needs a confidential client")
    resource = server.resolve_resource(resources)
    requested = _scopes.parse(form.get("scope"))
    granted = _scopes.grantable(requested, resource, client.allowed_scope)
    access = server.mint(
        subject=client.client_id,
        client_id=client.client_id,
        resource=resource.uri,
        scope=_scopes.render(granted),
    )
    _issued(
        server,
        "token.issued",
        access,
        client_id=client.client_id,
        subject=client.client_id,
        audience=resource.uri,
        requested=requested,
    )
    return _body(access)


# -- authorization_code -----------------------------------------------------------------


async def _authorization_code(
    server: AuthorizationServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    authenticated: AuthenticatedClient,
) -> dict[str, Any]:
    client = authenticated.client
    code_hash = _presented(form, "code", "ac", "the authorization code is invalid")
    record = await server.store.grants.get_code(code_hash)
    now = server.clock()
    if record is None or record.client_id != client.client_id:
        raise InvalidGrant("the authorization code is invalid")
    if record.used_at is not None:
        await _code_replayed(server, code_hash, client.client_id)
    if record.expires_at <= now:
        raise InvalidGrant("the authorization code has expired")
    if form.get("redirect_uri") != record.redirect_uri:
        await server.store.grants.burn_code(code_hash, now)
        raise InvalidGrant("redirect_uri does not match the authorization request")
    try:
        _rfc7636.verify(form.get("code_verifier"), record.code_challenge)
    except InvalidGrant:
        await server.store.grants.burn_code(code_hash, now)
        raise
    if resources and list(resources) != [record.resource]:
        raise InvalidTarget("resource differs from the authorization request")

    family = FamilyRecord(
        id=new_id(16),
        client_id=client.client_id,
        subject=record.subject,
        resource=record.resource,
        scope=record.scope,
        created_at=now,
        absolute_expires_at=now + server.settings.lifetimes.refresh_token_absolute,
        code_hash=code_hash,
    )
    refresh_token: str | None = None
    refresh: RefreshRecord | None = None
    if "refresh_token" in client.grant_types:
        refresh_token = new_credential("rt")
        refresh = _refresh_record(server, refresh_token, family, record.scope, now)
    if not await server.store.grants.redeem_code(code_hash, now, family, refresh):
        await _code_replayed(server, code_hash, client.client_id)
    access = server.mint(
        subject=record.subject,
        client_id=client.client_id,
        resource=record.resource,
        scope=record.scope,
        family_id=family.id,
        auth_time=record.auth_time,
    )
    _issued(
        server,
        "token.issued",
        access,
        client_id=client.client_id,
        subject=record.subject,
        audience=record.resource,
        family_id=family.id,
    )
    return _body(access, refresh_token)


async def _code_replayed(server: AuthorizationServer, code_hash: str, client_id: str) -> None:
    """RFC 6749 §4.1.2: a code used twice revokes what was issued from it."""
    now = server.clock()
    revocation = await server.store.grants.revoke_family_of_code(
        code_hash, now, "code_replay", now + server.revocation_ttl
    )
    await server.publish([revocation])
    server.audit.emit(
        AuditEvent(
            "code.replayed",
            "reuse_detected",
            client_id=client_id,
            reason="invalid_grant",
            detail={"family": revocation.key if revocation else None},
        )
    )
    raise InvalidGrant("the authorization code was already used")


def _refresh_record(
    server: AuthorizationServer, token: str, family: FamilyRecord, scope: str, now: float
) -> RefreshRecord:
    rolling = now + server.settings.lifetimes.refresh_token
    return RefreshRecord(
        token_hash=credential_hash(token),
        family_id=family.id,
        scope=scope,
        created_at=now,
        expires_at=min(rolling, family.absolute_expires_at),
    )


# -- refresh_token ---------------------------------------------------------------------


async def _refresh_token(
    server: AuthorizationServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    authenticated: AuthenticatedClient,
) -> dict[str, Any]:
    client = authenticated.client
    old_hash = _presented(form, "refresh_token", "rt", "the refresh token is invalid")
    found = await server.store.grants.get_refresh(old_hash)
    if found is None:
        raise InvalidGrant("the refresh token is invalid")
    old, family = found
    now = server.clock()
    if family.client_id != client.client_id:
        raise InvalidGrant("the refresh token was issued to another client")
    if old.used_at is not None:
        await _refresh_reused(server, family, old.used_at)
    if family.revoked_at is not None:
        raise InvalidGrant("the refresh token has been revoked")
    if old.expires_at <= now or family.absolute_expires_at <= now:
        raise InvalidGrant("the refresh token has expired")
    if resources and list(resources) != [family.resource]:
        raise InvalidTarget("resource differs from the original grant")

    # RFC 6749 §6: a refresh may narrow the grant, never widen it; scopes beyond the grant
    # are left out (and the response's scope says what was issued).
    held = _scopes.parse(old.scope)
    requested = _scopes.parse(form.get("scope"))
    narrowed = tuple(s for s in requested if s in held) if requested else held
    if not narrowed:
        raise InvalidScope("none of the requested scopes is part of this grant")

    new_token = new_credential("rt")
    new = _refresh_record(server, new_token, family, old.scope, now)
    if not await server.store.grants.rotate_refresh(old_hash, now, new):
        # Lost a race with another use of the same token, or the family was revoked
        # meanwhile: either way this presentation is a reuse.
        await _refresh_reused(server, family, now)
    access = server.mint(
        subject=family.subject,
        client_id=client.client_id,
        resource=family.resource,
        scope=_scopes.render(narrowed),
        family_id=family.id,
    )
    _issued(
        server,
        "token.refreshed",
        access,
        client_id=client.client_id,
        subject=family.subject,
        audience=family.resource,
        family_id=family.id,
        requested=requested,
    )
    return _body(access, new_token)


async def _refresh_reused(
    server: AuthorizationServer, family: FamilyRecord, used_at: float
) -> None:
    """RFC 9700 §4.14.2: a used refresh token presented again means one of the two parties
    holding it is an attacker; revoke the whole family."""
    now = server.clock()
    grace = server.settings.refresh_reuse_grace
    if grace > 0 and now - used_at <= grace:
        raise InvalidGrant("the refresh token was just rotated")
    await server.revoke_family(
        family, reason="refresh_reuse", event="refresh.reuse_detected", outcome="reuse_detected"
    )
    raise InvalidGrant("the refresh token was already used; the grant has been revoked")
