"""Token exchange (RFC 8693) for MCP servers calling downstream APIs on a person's
behalf. The MCP spec forbids passing the caller's token on; instead the MCP server,
authenticating as its own client, presents the access token it received
(``subject_token``, audience = that MCP server) and names the downstream API
(``resource`` or ``audience``). An operator policy (``[[token_exchange]]``) says which
MCP server may reach which downstream audience with which scopes.

The token issued names the original subject, carries ``act`` with the MCP server as the
actor (nesting any earlier actor, §4.1), keeps the subject token's ``sid`` so that
revoking the person's grant revokes it too, and lives at most the policy's lifetime and
never past the subject token. No refresh token (§2.2.1).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from mcpward.audit import AuditEvent
from mcpward.server import _scopes
from mcpward.server._rfc9068 import read_own_token
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import (
    InvalidGrant,
    InvalidRequest,
    InvalidTarget,
    OAuthError,
    UnauthorizedClient,
)
from mcpward.server.grants._common import TokenRequest, issue
from mcpward.storage.records import TOKEN_EXCHANGE

ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
MAX_ACTORS = 4


class TokenExchange:
    grant_type: ClassVar[str] = TOKEN_EXCHANGE

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        form, authenticated = request.form, request.authenticated
        client = authenticated.client
        if authenticated.method == "none":
            raise UnauthorizedClient("token exchange needs a client that authenticates")
        subject_token = form.get("subject_token")
        if not subject_token:
            raise InvalidRequest("subject_token is required")
        if form.get("subject_token_type") != ACCESS_TOKEN:
            raise InvalidRequest(f"subject_token_type must be {ACCESS_TOKEN}")
        if form.get("requested_token_type", ACCESS_TOKEN) != ACCESS_TOKEN:
            raise InvalidRequest(f"requested_token_type must be {ACCESS_TOKEN}")
        if "actor_token" in form or "actor_token_type" in form:
            raise InvalidRequest("actor_token is not supported: the authenticated client acts")
        claims = await _live_subject_token(server, subject_token)
        try:
            return _exchange(server, request, claims)
        except OAuthError as error:
            server.audit.emit(
                AuditEvent(
                    "exchange.refused",
                    "denied",
                    client_id=client.client_id,
                    subject=str(claims["sub"]),
                    jti=str(claims["jti"]),
                    reason=error.error,
                    detail={"grant_type": TOKEN_EXCHANGE, "from_resource": str(claims["aud"])},
                )
            )
            raise


async def _live_subject_token(server: AuthorizationServer, token: str) -> dict[str, Any]:
    """The claims of an unexpired, unrevoked access token of this server."""
    claims = read_own_token(
        server.keys, token, issuer=server.settings.issuer, now=server.clock(), leeway=0
    )
    if claims is None or not isinstance(claims.get("aud"), str):
        raise InvalidGrant("the subject token is invalid or expired")
    if await server.store.grants.is_revoked(
        jti=str(claims["jti"]),
        family_id=claims.get("sid"),
        subject=str(claims["sub"]),
        client_id=str(claims["client_id"]),
        iat=float(claims["iat"]),
    ):
        raise InvalidGrant("the subject token has been revoked")
    return claims


def _exchange(
    server: AuthorizationServer, request: TokenRequest, claims: Mapping[str, Any]
) -> dict[str, Any]:
    client = request.authenticated.client
    from_resource = str(claims["aud"])
    policies = [
        p
        for p in server.settings.token_exchange
        if p.client_id == client.client_id and p.from_resource == from_resource
    ]
    if not policies:
        raise InvalidGrant("this client may not exchange tokens of the subject token's audience")
    target = _target(request.form, request.resources)
    policy = next((p for p in policies if p.to_resource == target), None)
    if policy is None:
        raise InvalidTarget("no exchange policy lets this client reach that audience")
    resource = server.resolve_resource([target])
    requested = _scopes.parse(request.form.get("scope"))
    granted = _scopes.within(
        _scopes.grantable(requested, resource, client.allowed_scope),
        policy.scopes,
        "the exchange policy allows none of the requested scopes",
    )
    remaining = float(claims["exp"]) - server.clock()
    actors = _actor_chain(claims.get("act"))
    act: dict[str, Any] = {"sub": client.client_id}
    if isinstance(claims.get("act"), Mapping):
        act["act"] = dict(claims["act"])
    auth_time = claims.get("auth_time")
    sid = claims.get("sid")
    return issue(
        server,
        event="token.exchanged",
        client_id=client.client_id,
        subject=str(claims["sub"]),
        resource=resource.uri,
        scopes=granted,
        requested=requested,
        family_id=sid if isinstance(sid, str) else None,
        auth_time=float(auth_time) if isinstance(auth_time, int | float) else None,
        lifetime=max(1.0, min(policy.lifetime, remaining)),
        act=act,
        # Bound to the MCP server's DPoP key when it sent a proof.
        jkt=request.jkt,
        detail={
            "grant_type": TOKEN_EXCHANGE,
            "subject_jti": str(claims["jti"]),
            "subject_client": str(claims.get("client_id")),
            "from_resource": from_resource,
            "actor_chain": ",".join([client.client_id, *actors]),
        },
        body_extra={"issued_token_type": ACCESS_TOKEN},
    )


def _target(form: Mapping[str, str], resources: Sequence[str]) -> str:
    """The one downstream the request names: ``resource`` (RFC 8707), ``audience``
    (RFC 8693 §2.1), or both naming the same."""
    audience = form.get("audience")
    named = list(dict.fromkeys([*resources, *([audience] if audience else [])]))
    if not named:
        raise InvalidTarget("name the downstream API with resource or audience")
    if len(named) > 1:
        raise InvalidTarget("request one downstream audience per token")
    return named[0]


def _actor_chain(act: object) -> list[str]:
    """Earlier actors, outermost first (RFC 8693 §4.1); a chain too deep is refused."""
    chain: list[str] = []
    while isinstance(act, Mapping):
        sub = act.get("sub")
        chain.append(str(sub) if isinstance(sub, str) else "?")
        if len(chain) >= MAX_ACTORS:
            raise InvalidGrant("the subject token's actor chain is too long")
        act = act.get("act")
    return chain
