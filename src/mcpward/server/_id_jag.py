"""The Identity Assertion JWT Authorization Grant, redeemed (MCP extension SEP-990,
draft-ietf-oauth-identity-assertion-authz-grant §4.4): the enterprise IdP signed the
person in and, by its own policy, let this client act for them at this server. No
consent page: the IdP decided.

On top of the shared checks (``_assertions``): ``typ`` exactly ``oauth-id-jag+jwt``;
``aud`` exactly this server's issuer (a one-element array allowed); ``client_id`` the
authenticated, confidential client; a ``cnf``-bound ID-JAG redeemed only with a DPoP
proof of that key (draft §7.4); the token audience from the ID-JAG's ``resource``
(a request may only choose among them); scopes = requested ∩ ID-JAG ∩ what the client
may have; the person resolved to a local user linked to (``iss``, ``sub``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from mcpward._secrets import new_id
from mcpward.audit import AuditEvent
from mcpward.server import _scopes
from mcpward.server._assertions import VerifiedAssertion, single_audience
from mcpward.server._client_auth import AuthenticatedClient
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidTarget, UnauthorizedClient
from mcpward.storage.records import ResourceRecord, UserRecord

MAX_RESOURCES = 16


@dataclass(frozen=True, slots=True)
class IdJagGrant:
    assertion: VerifiedAssertion
    user: UserRecord
    resource: ResourceRecord
    scopes: tuple[str, ...]
    requested: tuple[str, ...]


async def redeem(
    server: AuthorizationServer,
    assertion: VerifiedAssertion,
    authenticated: AuthenticatedClient,
    *,
    resources: Sequence[str],
    scope: str | None,
    jkt: str | None,
) -> IdJagGrant:
    """What the ID-JAG grants this client; its ``jti`` is spent last, so a refused
    request does not burn it. ``jkt``: the key the request's DPoP proof proved."""
    client = authenticated.client
    if single_audience(assertion.claims) != server.settings.issuer:
        raise assertion.rejected("audience", "the ID-JAG's aud must be exactly this issuer")
    if assertion.claims.get("client_id") != client.client_id:
        raise assertion.rejected("client_id", "the ID-JAG was issued to another client")
    if assertion.jkt is not None and assertion.jkt != jkt:
        # draft §7.4.1/§7.4.2: a bound ID-JAG needs a DPoP proof of that very key.
        raise assertion.rejected(
            "cnf_mismatch" if jkt else "cnf_without_proof",
            "the ID-JAG is bound to a DPoP key this request does not prove",
        )
    resource = _resource(server, assertion, resources)
    requested = _scopes.parse(scope)
    granted = _scopes.grantable(requested, resource, client.allowed_scope)
    jag_scope = assertion.claims.get("scope")
    if jag_scope is not None:
        if not isinstance(jag_scope, str):
            raise assertion.rejected("bad_scope", "the ID-JAG's scope is not a string")
        # The IdP's grant bounds it (draft §4.4.1: the RAS may grant a subset). No scope
        # claim: the IdP set no bound, and the client's own limit applies.
        granted = _scopes.within(
            granted, _scopes.parse(jag_scope), "the ID-JAG grants none of the requested scopes"
        )
    user = await _local_user(server, assertion)
    await server.assertion_verifier.first_use(server.replay, assertion)
    return IdJagGrant(assertion, user, resource, granted, requested)


def _resource(
    server: AuthorizationServer, assertion: VerifiedAssertion, requested: Sequence[str]
) -> ResourceRecord:
    """The token audience comes from the ID-JAG; a request's ``resource`` only picks one
    of those it names (RFC 8707 §2)."""
    claim = assertion.claims.get("resource")
    named = [claim] if isinstance(claim, str) else claim if isinstance(claim, list) else []
    if not named or len(named) > MAX_RESOURCES or not all(isinstance(r, str) for r in named):
        raise assertion.rejected("no_resource", "the ID-JAG names no resource")
    if requested:
        if any(r not in named for r in requested):
            raise InvalidTarget("the requested resource is not one the ID-JAG grants")
        return server.resolve_resource(requested)
    if len(named) > 1:
        raise InvalidTarget("the ID-JAG names several resources: choose one with resource")
    return server.resolve_resource(named)


async def _local_user(server: AuthorizationServer, assertion: VerifiedAssertion) -> UserRecord:
    """The local user the IdP's (``iss``, ``sub``) is linked to, created on first sight
    when the issuer's ``create_users`` allows it (just-in-time provisioning, draft §3)."""
    users = server.store.users
    iss, sub = assertion.iss, assertion.subject
    user = await users.by_upstream(iss, sub)
    if user is None:
        if not assertion.issuer.create_users:
            raise assertion.rejected("unknown_user", "the person has no account here")
        user = UserRecord(
            id=new_id(),
            username=f"{_host(iss)}:{sub}"[:200],
            email=None,
            display_name=None,
            password_hash=None,
            created_at=server.clock(),
            upstream_issuer=iss,
            upstream_subject=sub,
        )
        try:
            await users.create(user)
        except Exception:
            # Two first requests at once: the other created the user (the pair is unique).
            found = await users.by_upstream(iss, sub)
            if found is None:
                raise
            user = found
        else:
            server.audit.emit(
                AuditEvent("user.created", "ok", subject=user.id, detail={"upstream": iss})
            )
    if user.disabled_at is not None:
        raise assertion.rejected("user_disabled", "the person's account is disabled")
    return user


def require_confidential(authenticated: AuthenticatedClient) -> None:
    """draft §7.1: only for confidential clients; public clients use the authorization
    code grant, where the person consents at this server."""
    if authenticated.method == "none":
        raise UnauthorizedClient("an ID-JAG is redeemed by a client that authenticates")


def _host(url: str) -> str:
    return urlsplit(url).netloc or url
