"""The token endpoint's grants (RFC 6749 §4-6, OAuth 2.1 §4, RFC 9700 §4.14, RFC 8707,
RFC 7523 §2.1, RFC 8693), one module each, dispatched by ``grant_type`` through :data:`GRANTS`.

A new grant is a class with a ``grant_type`` and an async ``respond`` (see
:class:`~mcpward.server.grants._common.Grant`), listed in :data:`GRANTS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from mcpward.dpop import Proof
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import (
    InvalidDPoPProof,
    InvalidRequest,
    UnauthorizedClient,
    UnsupportedGrantType,
)
from mcpward.server.grants._common import Grant, TokenRequest
from mcpward.server.grants.authorization_code import AuthorizationCode
from mcpward.server.grants.client_credentials import ClientCredentials
from mcpward.server.grants.jwt_bearer import JwtBearer
from mcpward.server.grants.refresh_token import RefreshToken
from mcpward.server.grants.token_exchange import TokenExchange

GRANTS: dict[str, Grant] = {
    grant.grant_type: grant
    for grant in (
        AuthorizationCode(),
        RefreshToken(),
        ClientCredentials(),
        JwtBearer(),
        TokenExchange(),
    )
}

__all__ = ["GRANTS", "Grant", "TokenRequest", "token_response"]


async def token_response(
    server: AuthorizationServer,
    form: Mapping[str, str],
    resources: Sequence[str],
    authenticated: AuthenticatedClient,
    proof: Proof | None = None,
) -> dict[str, Any]:
    """The body of a successful token response, or an ``OAuthError``. ``proof`` is the
    request's verified DPoP proof (RFC 9449 §5), if it had one."""
    grant_type = form.get("grant_type")
    if not grant_type:
        raise InvalidRequest("grant_type is required")
    grant = GRANTS.get(grant_type)
    if grant is None:
        raise UnsupportedGrantType("unsupported grant_type")
    if grant_type not in authenticated.client.grant_types:
        raise UnauthorizedClient(f"this client may not use {grant_type}")
    if proof is None and authenticated.client.dpop_bound_access_tokens:
        # RFC 9449 §5.2: dpop_bound_access_tokens means every token request has a proof.
        raise InvalidDPoPProof("this client must send a DPoP proof", check="missing")
    return await grant.respond(server, TokenRequest(form, resources, authenticated, proof))
