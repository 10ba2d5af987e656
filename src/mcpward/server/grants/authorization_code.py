"""The authorization code grant with PKCE S256 (RFC 6749 §4.1.3, RFC 7636, OAuth 2.1
§4.1.3): a code is redeemed once, by the client it was issued to, with the verifier of its
challenge and the redirect URI of its request; a replayed code revokes what it issued
(RFC 6749 §4.1.2)."""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from mcpward._secrets import new_credential, new_id
from mcpward.audit import AuditEvent
from mcpward.server import _rfc7636
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidGrant, InvalidTarget
from mcpward.server.grants._common import TokenRequest, issue, presented, require_key
from mcpward.server.grants.refresh_token import new_refresh_record
from mcpward.storage.records import FamilyRecord, RefreshRecord


class AuthorizationCode:
    grant_type: ClassVar[str] = "authorization_code"

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        client = request.authenticated.client
        form = request.form
        code_hash = presented(form, "code", "ac", "the authorization code is invalid")
        grants = server.store.grants
        record = await grants.get_code(code_hash)
        now = server.clock()
        if record is None or record.client_id != client.client_id:
            raise InvalidGrant("the authorization code is invalid")
        if record.used_at is not None:
            await _replayed(server, code_hash, client.client_id)
        if record.expires_at <= now:
            raise InvalidGrant("the authorization code has expired")
        # RFC 9449 §10: a code bound by dpop_jkt; refused without its key, not burnt.
        require_key(server, request, record.dpop_jkt, "authorization code")
        if form.get("redirect_uri") != record.redirect_uri:
            await grants.burn_code(code_hash, now)
            raise InvalidGrant("redirect_uri does not match the authorization request")
        try:
            _rfc7636.verify(form.get("code_verifier"), record.code_challenge)
        except InvalidGrant:
            await grants.burn_code(code_hash, now)
            raise
        if request.resources and list(request.resources) != [record.resource]:
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
            # RFC 9449 §5: a public client's refresh tokens are bound to its DPoP key;
            # a confidential client's are bound to its client authentication instead.
            dpop_jkt=request.jkt if client.is_public else None,
        )
        refresh_token: str | None = None
        refresh: RefreshRecord | None = None
        if "refresh_token" in client.grant_types:
            refresh_token = new_credential("rt")
            refresh = new_refresh_record(server, refresh_token, family, record.scope, now)
        if not await grants.redeem_code(code_hash, now, family, refresh):
            await _replayed(server, code_hash, client.client_id)
        return issue(
            server,
            event="token.issued",
            client_id=client.client_id,
            subject=record.subject,
            resource=record.resource,
            scopes=record.scope.split(),
            family_id=family.id,
            auth_time=record.auth_time,
            refresh_token=refresh_token,
            jkt=request.jkt,
        )


async def _replayed(server: AuthorizationServer, code_hash: str, client_id: str) -> NoReturn:
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
