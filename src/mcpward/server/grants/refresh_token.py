"""The refresh token grant (RFC 6749 §6) with one-time-use rotation and reuse detection
(RFC 9700 §4.14.2, OAuth 2.1 §4.3.1): each use spends the token and issues its successor;
a spent token presented again revokes the whole family."""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from mcpward._secrets import credential_hash, new_credential
from mcpward.server import _scopes
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidGrant, InvalidScope, InvalidTarget
from mcpward.server.grants._common import TokenRequest, issue, presented, require_key
from mcpward.storage.records import FamilyRecord, RefreshRecord


class RefreshToken:
    grant_type: ClassVar[str] = "refresh_token"

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        client = request.authenticated.client
        form = request.form
        old_hash = presented(form, "refresh_token", "rt", "the refresh token is invalid")
        grants = server.store.grants
        found = await grants.get_refresh(old_hash)
        if found is None:
            raise InvalidGrant("the refresh token is invalid")
        old, family = found
        now = server.clock()
        if family.client_id != client.client_id:
            raise InvalidGrant("the refresh token was issued to another client")
        # RFC 9449 §5: a bound refresh token without a proof of its key is refused before
        # anything else, so it neither rotates nor counts as a reuse.
        require_key(server, request, family.dpop_jkt, "refresh token")
        if old.used_at is not None:
            await _reused(server, family, old.used_at)
        if family.revoked_at is not None:
            raise InvalidGrant("the refresh token has been revoked")
        if old.expires_at <= now or family.absolute_expires_at <= now:
            raise InvalidGrant("the refresh token has expired")
        if request.resources and list(request.resources) != [family.resource]:
            raise InvalidTarget("resource differs from the original grant")

        # RFC 6749 §6: a refresh may narrow the grant, never widen it; scopes beyond the
        # grant are left out (and the response's scope says what was issued).
        held = _scopes.parse(old.scope)
        requested = _scopes.parse(form.get("scope"))
        narrowed = tuple(s for s in requested if s in held) if requested else held
        if not narrowed:
            raise InvalidScope("none of the requested scopes is part of this grant")

        new_token = new_credential("rt")
        new = new_refresh_record(server, new_token, family, old.scope, now)
        if not await grants.rotate_refresh(old_hash, now, new):
            # Lost a race with another use of the same token, or the family was revoked
            # meanwhile: either way this presentation is a reuse.
            await _reused(server, family, now)
        return issue(
            server,
            event="token.refreshed",
            client_id=client.client_id,
            subject=family.subject,
            resource=family.resource,
            scopes=narrowed,
            requested=requested,
            family_id=family.id,
            refresh_token=new_token,
            jkt=request.jkt,
        )


def new_refresh_record(
    server: AuthorizationServer, token: str, family: FamilyRecord, scope: str, now: float
) -> RefreshRecord:
    """A refresh token of ``family``: rolling lifetime, never past the family's cap."""
    rolling = now + server.settings.lifetimes.refresh_token
    return RefreshRecord(
        token_hash=credential_hash(token),
        family_id=family.id,
        scope=scope,
        created_at=now,
        expires_at=min(rolling, family.absolute_expires_at),
    )


async def _reused(server: AuthorizationServer, family: FamilyRecord, used_at: float) -> NoReturn:
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
