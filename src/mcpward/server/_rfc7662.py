"""Token introspection (RFC 7662) for resource servers.

The caller must authenticate as a confidential client. It sees a token as active only if
the token was issued to it, or if it is the resource server of the token's audience
(``introspects_resource``); otherwise, like a revoked, expired or unknown token, the
answer is ``{"active": false}`` (§2.2).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mcpward._secrets import credential_hash, is_well_formed
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server._rfc9068 import read_own_token
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidClient, InvalidRequest

INACTIVE: dict[str, Any] = {"active": False}


async def introspect(
    server: AuthorizationServer, form: Mapping[str, str], authenticated: AuthenticatedClient
) -> dict[str, Any]:
    caller = authenticated.client
    if caller.is_public:
        raise InvalidClient("introspection needs client authentication")
    token = form.get("token")
    if not token:
        raise InvalidRequest("token is required")
    now = server.clock()

    if is_well_formed(token, "rt"):
        found = await server.store.grants.get_refresh(credential_hash(token))
        if found is None:
            return INACTIVE
        refresh, family = found
        live = (
            refresh.used_at is None
            and family.revoked_at is None
            and refresh.expires_at > now
            and family.absolute_expires_at > now
        )
        if not live or family.client_id != caller.client_id:
            return INACTIVE
        # Only a confidential client may introspect, and its refresh tokens are bound to
        # its authentication, not to a DPoP key (RFC 9449 §5): no cnf here.
        return {
            "active": True,
            "token_type": "refresh_token",
            "client_id": family.client_id,
            "sub": family.subject,
            "scope": refresh.scope,
            "aud": family.resource,
            "iat": int(refresh.created_at),
            "exp": int(refresh.expires_at),
            "iss": server.settings.issuer,
        }

    claims = read_own_token(server.keys, token, issuer=server.settings.issuer, now=now, leeway=0)
    if claims is None:
        return INACTIVE
    if caller.client_id != claims.get("client_id") and caller.introspects_resource != claims.get(
        "aud"
    ):
        return INACTIVE
    if await server.store.grants.is_revoked(
        jti=str(claims["jti"]),
        family_id=claims.get("sid"),
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        iat=float(claims["iat"]),
    ):
        return INACTIVE
    # RFC 9449 §6.2: a DPoP-bound token's cnf (in the claims) and its type.
    token_type = "DPoP" if isinstance(claims.get("cnf"), dict) else "Bearer"
    return {"active": True, "token_type": token_type, **claims}
