"""The refresh token grant (RFC 6749 §6) with one-time-use rotation and reuse detection
(RFC 9700 §4.14.2, OAuth 2.1 §4.3.1): each use spends the token and issues its successor;
a spent token presented again revokes the whole family.

Benign concurrency is not a reuse: a spent token presented again by the client it was
issued to, within ``refresh_retry_window`` seconds of its rotation and while its successor
is unspent, is answered with that same successor and a new access token for the same
grant (a retry after an answer lost to a crash or a timeout, two workers or two replicas
refreshing at once). The successor is kept encrypted on the spent token's record for the
window only. Because both holders then hold the same successor, a fork is still caught at
the next rotation: the second use of the successor outside its window is a reuse.
``refresh_retry_window = 0`` is strict RFC 9700 detection: every second use is a reuse.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from cryptography.exceptions import InvalidTag

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
        # anything else, so it neither rotates, nor counts as a reuse, nor gets a retry.
        require_key(server, request, family.dpop_jkt, "refresh token")
        if family.revoked_at is not None:
            raise InvalidGrant("the refresh token has been revoked")
        if old.used_at is None and (old.expires_at <= now or family.absolute_expires_at <= now):
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

        if old.used_at is not None:
            stored = old.stored_successor(now)
            if stored is None:
                await _reused(server, family)
            return _retried(server, request, family, old_hash, stored, narrowed, requested)

        new_token = new_credential("rt")
        new = new_refresh_record(server, new_token, family, old.scope, now, parent=old_hash)
        window = server.settings.refresh_retry_window
        sealed = _seal(server, old_hash, new_token) if window > 0 else None
        rotation = await grants.rotate_refresh(
            old_hash, now, new, sealed, now + window if window > 0 else None
        )
        if not rotation.rotated:
            # Lost a race with another use of the same token (whose successor we get, if
            # the window allows), or the family was revoked meanwhile.
            if rotation.successor_enc is None:
                await _reused(server, family)
            return _retried(
                server, request, family, old_hash, rotation.successor_enc, narrowed, requested
            )
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
    server: AuthorizationServer,
    token: str,
    family: FamilyRecord,
    scope: str,
    now: float,
    parent: str | None = None,
) -> RefreshRecord:
    """A refresh token of ``family``: rolling lifetime, never past the family's cap."""
    rolling = now + server.settings.lifetimes.refresh_token
    return RefreshRecord(
        token_hash=credential_hash(token),
        family_id=family.id,
        scope=scope,
        created_at=now,
        expires_at=min(rolling, family.absolute_expires_at),
        parent_hash=parent,
    )


def _context(old_hash: str) -> str:
    # Binds the ciphertext to the spent token's row: it opens for no other.
    return "refresh successor of " + old_hash


def _seal(server: AuthorizationServer, old_hash: str, successor: str) -> bytes:
    return server.successor_key.encrypt(successor.encode(), _context(old_hash))


def _retried(
    server: AuthorizationServer,
    request: TokenRequest,
    family: FamilyRecord,
    old_hash: str,
    sealed: bytes,
    narrowed: tuple[str, ...],
    requested: tuple[str, ...],
) -> dict[str, Any]:
    """The answer the rotation gave (the same successor), with a new access token."""
    try:
        successor = server.successor_key.decrypt(sealed, _context(old_hash)).decode()
    except InvalidTag:
        # Another data key sealed it (a key change within the window): no retry possible.
        raise InvalidGrant("the refresh token was already used") from None
    return issue(
        server,
        event="refresh.retried",
        client_id=family.client_id,
        subject=family.subject,
        resource=family.resource,
        scopes=narrowed,
        requested=requested,
        family_id=family.id,
        refresh_token=successor,
        jkt=request.jkt,
    )


async def _reused(server: AuthorizationServer, family: FamilyRecord) -> NoReturn:
    """RFC 9700 §4.14.2: a used refresh token presented again (outside the retry window,
    or after its successor was used) means one of the two parties holding it may be an
    attacker; revoke the whole family."""
    await server.revoke_family(
        family, reason="refresh_reuse", event="refresh.reuse_detected", outcome="reuse_detected"
    )
    raise InvalidGrant("the refresh token was already used; the grant has been revoked")
