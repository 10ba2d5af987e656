"""The JWT bearer grant (RFC 7523 §2.1, RFC 7521 §4.1) with two assertion profiles:

- an Identity Assertion JWT Authorization Grant (``typ: oauth-id-jag+jwt``) from a
  trusted enterprise IdP, redeemed by a confidential client (MCP SEP-990,
  ``server._id_jag``);
- a workload JWT from a trusted platform, mapped by a workload rule to a client
  (MCP SEP-1933, ``server._workload``). With no other client authentication the JWT is
  the client's credential.

Neither issues a refresh token: the client presents a new assertion when its access token
expires (draft-ietf-oauth-identity-assertion-authz-grant §4.4.3). Every refusal is
audited with the assertion's issuer and ``jti`` once they are known to be genuine.
"""

from __future__ import annotations

from typing import Any, ClassVar, NoReturn

from mcpward.audit import AuditEvent
from mcpward.server import _id_jag, _scopes
from mcpward.server._assertions import AssertionRejected, VerifiedAssertion, peek
from mcpward.server._workload import WorkloadMatch
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import InvalidGrant, InvalidRequest, OAuthError, TemporarilyUnavailable
from mcpward.server.grants._common import TokenRequest, issue
from mcpward.storage.records import JWT_BEARER

ID_JAG_PROFILE = "urn:ietf:params:oauth:grant-profile:id-jag"


class JwtBearer:
    grant_type: ClassVar[str] = JWT_BEARER

    async def respond(self, server: AuthorizationServer, request: TokenRequest) -> dict[str, Any]:
        authenticated = request.authenticated
        token = request.form.get("assertion")
        if not token:
            raise InvalidRequest("assertion is required")
        if authenticated.workload is not None and "client_assertion" not in request.form:
            # This very assertion, a workload JWT, authenticated the client: it was
            # verified and spent then. (A workload client assertion is only the client's
            # authentication; the grant's assertion is judged below.)
            return _workload_token(server, request, authenticated.workload)
        try:
            profile = peek(token).profile
        except AssertionRejected as rejected:
            _refuse(server, request, rejected, "workload")
        if profile == "workload":
            match = await server.workload.authenticate(token, authenticated.client.client_id)
            return _workload_token(server, request, match)
        return await _id_jag_token(server, request, token)


async def _id_jag_token(
    server: AuthorizationServer, request: TokenRequest, token: str
) -> dict[str, Any]:
    authenticated = request.authenticated
    assertion: VerifiedAssertion | None = None
    try:
        _id_jag.require_confidential(authenticated)
        assertion = await server.assertion_verifier.verify(token, "id-jag")
        grant = await _id_jag.redeem(
            server,
            assertion,
            authenticated,
            resources=request.resources,
            scope=request.form.get("scope"),
            jkt=request.jkt,
        )
    except AssertionRejected as rejected:
        _refuse(server, request, rejected, "id-jag")
    except OAuthError as error:
        if assertion is None or isinstance(error, TemporarilyUnavailable):
            raise
        _refuse(
            server,
            request,
            assertion.rejected(error.error, error.description or ""),
            "id-jag",
            error,
        )
    auth_time = grant.assertion.claims.get("auth_time")
    return issue(
        server,
        event="token.issued_from_assertion",
        client_id=authenticated.client.client_id,
        subject=grant.user.id,
        resource=grant.resource.uri,
        scopes=grant.scopes,
        requested=grant.requested,
        auth_time=float(auth_time) if isinstance(auth_time, int | float) else None,
        # With a DPoP proof the token is bound to its key (a cnf-bound ID-JAG's key).
        jkt=request.jkt,
        detail={
            "grant_type": JWT_BEARER,
            "profile": "id-jag",
            "assertion_issuer": grant.assertion.iss,
            "assertion_jti": grant.assertion.jti,
        },
    )


def _workload_token(
    server: AuthorizationServer, request: TokenRequest, match: WorkloadMatch
) -> dict[str, Any]:
    client = match.client
    try:
        resource = server.resolve_resource(request.resources)
        requested = _scopes.parse(request.form.get("scope"))
        granted = _scopes.within(
            _scopes.grantable(requested, resource, client.allowed_scope),
            match.rule.scopes,
            f"workload rule {match.rule.name} allows none of the requested scopes",
        )
    except OAuthError as error:
        rejected = match.assertion.rejected(error.error, error.description or "")
        _refuse(server, request, rejected, "workload", error, client_id=client.client_id)
    return issue(
        server,
        event="token.issued_from_assertion",
        client_id=client.client_id,
        subject=client.client_id,
        resource=resource.uri,
        scopes=granted,
        requested=requested,
        jkt=request.jkt,
        detail={"grant_type": JWT_BEARER, **match.audit_detail()},
    )


def _refuse(
    server: AuthorizationServer,
    request: TokenRequest,
    rejected: AssertionRejected,
    profile: str,
    error: OAuthError | None = None,
    *,
    client_id: str | None = None,
) -> NoReturn:
    """Audit a refused JWT grant, then answer with ``error`` (``invalid_grant`` for the
    assertion itself, RFC 7521 §5.2)."""
    server.audit.emit(
        AuditEvent(
            "assertion.rejected",
            "denied",
            client_id=client_id or request.authenticated.client.client_id,
            reason=rejected.reason,
            detail={
                "grant_type": JWT_BEARER,
                "profile": profile,
                "assertion_issuer": rejected.issuer,
                "assertion_jti": rejected.jti,
            },
        )
    )
    raise error if error is not None else InvalidGrant(rejected.description) from None
