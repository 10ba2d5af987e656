"""Token revocation (RFC 7009).

A refresh token revokes its whole family (§2.1: the access tokens of the same grant too).
An access token is revoked by its ``jti``. A client may revoke only its own tokens. The
revocation is committed before the 200 is sent; if storage fails the caller gets 503.
"""

from __future__ import annotations

from collections.abc import Mapping

from mcpward._secrets import credential_hash, is_well_formed
from mcpward.audit import AuditEvent
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server._rfc9068 import read_own_token
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidRequest, UnauthorizedClient, UnsupportedTokenType

HINTS = ("access_token", "refresh_token")


async def revoke(
    server: AuthorizationServer, form: Mapping[str, str], authenticated: AuthenticatedClient
) -> None:
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    hint = form.get("token_type_hint")
    if hint is not None and hint not in HINTS:
        raise UnsupportedTokenType("token_type_hint must be access_token or refresh_token")
    client_id = authenticated.client.client_id

    # The hint only orders the search (§2.1); the token's own format decides.
    if is_well_formed(token, "rt"):
        found = await server.store.grants.get_refresh(credential_hash(token))
        if found is None:
            return  # §2.2: invalid tokens do not cause an error
        _, family = found
        if family.client_id != client_id:
            _refused(server, client_id)
        await server.revoke_family(
            family, reason="revoked_by_client", event="token.revoked", outcome="ok"
        )
        return

    lifetimes = server.settings.lifetimes
    claims = read_own_token(
        server.keys,
        token,
        issuer=server.settings.issuer,
        now=server.clock(),
        leeway=lifetimes.leeway,
    )
    if claims is None:
        return
    if claims.get("client_id") != client_id:
        _refused(server, client_id)
    await server.revoke_jti(str(claims["jti"]), float(claims["exp"]))
    server.audit.emit(
        AuditEvent(
            "token.revoked",
            "ok",
            client_id=client_id,
            subject=str(claims.get("sub")),
            jti=str(claims["jti"]),
            audience=str(claims.get("aud")),
            detail={"token_type": "access_token"},
        )
    )


def _refused(server: AuthorizationServer, client_id: str) -> None:
    server.audit.emit(
        AuditEvent("token.revoke_refused", "forbidden", client_id=client_id, reason="not_owner")
    )
    raise UnauthorizedClient("the token was issued to another client")
