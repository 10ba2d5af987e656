"""The resource guard: what every MCP server runs to check each request.

Wrap any ASGI MCP app::

    guard = make_guard(issuer=..., resource="https://mcp.example.com/mcp", manifest=...)
    app = protect(mcp_server.streamable_http_app(), guard)

or use :func:`protect_mcp_server` for an ``mcp`` SDK ``MCPServer``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx
from starlette.types import ASGIApp

from mcpward._clock import Clock, system_clock
from mcpward.audit import AuditLog
from mcpward.dpop import ALGORITHMS as DPOP_ALGORITHMS
from mcpward.dpop import NonceSource, ProofVerifier
from mcpward.guard._challenge import Schemes, www_authenticate
from mcpward.guard._claims import AUTH0, CLERK, KEYCLOAK, MCPWARD, OKTA, PRESETS, ClaimMapping
from mcpward.guard._discovery import (
    IssuerDiscoveryError,
    IssuerKeys,
    KeySource,
    LocalKeys,
    RemoteJWKS,
    StaticKeys,
    discover,
)
from mcpward.guard._downstream import (
    DownstreamTokenError,
    DownstreamTokens,
    ExchangeRefused,
    ExchangeUnavailable,
)
from mcpward.guard._dpop import ResourceProofs
from mcpward.guard._errors import (
    BadAuthorization,
    BadMessage,
    GuardError,
    InsufficientScope,
    InvalidDPoPProof,
    InvalidToken,
    MissingToken,
    PolicyDenied,
    RateLimited,
    Unavailable,
    UseDPoPNonce,
)
from mcpward.guard._guard import Authenticated, FailureMode, Guard, RateLimits
from mcpward.guard._identity import Identity, current_identity, require_identity
from mcpward.guard._introspection import IntrospectionVerifier
from mcpward.guard._lists import ListVisibility
from mcpward.guard._manifest import Manifest, ManifestError, OAuthBlock, manifest_from_code
from mcpward.guard._metrics import GuardMetrics
from mcpward.guard._policy import POLICY_MODEL, CasbinPolicy, Policy
from mcpward.guard._rfc9728 import ProtectedResourceMetadata, metadata_url
from mcpward.guard._scopes import ScopeRules
from mcpward.guard._verify import ByFormat, JWTVerifier, TokenVerifier
from mcpward.guard.middleware import GuardMiddleware
from mcpward.revocation import RevocationView
from mcpward.state import Bucket, Limit, MemoryRateLimiter, RateLimiter, ReplayCache


def make_guard(
    *,
    issuer: str,
    resource: str,
    manifest: Manifest,
    keys: KeySource | None = None,
    claims: ClaimMapping | str = MCPWARD,
    default_scopes: Iterable[str] | None = None,
    verifier: TokenVerifier | None = None,
    revocations: RevocationView | None = None,
    rate_limiter: RateLimiter | None = None,
    rate_limits: RateLimits | None = None,
    policy: Policy | None = None,
    audit: AuditLog | None = None,
    http: httpx.AsyncClient | None = None,
    rate_limit_failure: FailureMode = "closed",
    clock: Clock = system_clock,
    leeway: float = 30.0,
    list_visibility: ListVisibility | None = None,
    dpop: bool = True,
    dpop_required: bool = False,
    dpop_algorithms: Iterable[str] = DPOP_ALGORITHMS,
    dpop_nonces: NonceSource | None = None,
    replay: ReplayCache | None = None,
) -> Guard:
    """A guard for tokens from ``issuer`` whose audience is ``resource``. Without ``keys``
    the issuer's JWKS is found by discovery (RFC 8414, then OpenID) on first use.

    DPoP (RFC 9449): ``Authorization: DPoP`` with a proof is accepted unless ``dpop`` is
    False; a DPoP-bound token (``cnf.jkt``) is never accepted as a bearer token;
    ``dpop_required`` refuses bearer tokens altogether. ``dpop_nonces`` makes every proof
    carry this resource's nonce (§9). Proof ``jti``s are spent in ``replay`` (default:
    this process's memory; pass the shared state's Redis cache when several replicas
    serve the resource, with its rate limiter for one round trip per request).

    ``list_visibility``: ``"annotate"`` (every usable entry of ``*/list`` results, with
    the scopes it requires and whether the token holds them, so hosts can step up) or
    ``"filter"`` (only what the token can use now); default: the manifest's
    ``list_visibility``, else ``"annotate"``."""
    mapping = PRESETS[claims] if isinstance(claims, str) else claims
    if verifier is None:
        verifier = JWTVerifier(
            issuer=issuer,
            audience=resource,
            keys=keys if keys is not None else IssuerKeys(issuer, http, clock=clock),
            claims=mapping,
            clock=clock,
            leeway=leeway,
        )
    proofs = None
    if dpop or dpop_required:
        proofs = ResourceProofs(
            ProofVerifier(
                algorithms=tuple(dpop_algorithms),
                leeway=leeway,
                nonces=dpop_nonces,
                require_nonce=dpop_nonces is not None,
                clock=clock,
            ),
            resource=resource,
            required=dpop_required,
        )
    return Guard(
        resource=resource,
        authorization_servers=[issuer],
        verifier=verifier,
        rules=ScopeRules(manifest, default_scopes, list_visibility),
        revocations=revocations,
        rate_limiter=rate_limiter,
        rate_limits=rate_limits,
        policy=policy,
        audit=audit,
        resource_name=manifest.name,
        rate_limit_failure=rate_limit_failure,
        proofs=proofs,
        replay=replay,
        clock=clock,
    )


def protect(app: ASGIApp, guard: Guard, **kwargs: Any) -> GuardMiddleware:
    """Any ASGI MCP app (FastMCP's ``http_app()`` included) behind the guard."""
    return GuardMiddleware(app, guard, **kwargs)


def protect_mcp_server(server: Any, guard: Guard, **app_kwargs: Any) -> GuardMiddleware:
    """An ``mcp`` SDK ``MCPServer`` served over streamable HTTP behind the guard.
    ``app_kwargs`` go to ``streamable_http_app()`` (e.g. ``stateless_http=True``)."""
    return GuardMiddleware(server.streamable_http_app(**app_kwargs), guard)


def protect_fastmcp(server: Any, guard: Guard, **app_kwargs: Any) -> GuardMiddleware:
    """A FastMCP (``fastmcp`` package) server's ``http_app()`` behind the guard."""
    return GuardMiddleware(server.http_app(**app_kwargs), guard)


def identity_of(ctx: Any) -> Identity | None:
    """The verified caller inside an ``mcp`` SDK tool: ``identity_of(ctx)`` where ``ctx`` is
    the tool's ``Context``. Works in stateful sessions, where a context variable set by
    the middleware would not reach the session's task."""
    try:
        request = ctx.request_context.request
    except (AttributeError, ValueError):
        return current_identity()
    scope = getattr(request, "scope", None)
    found = scope.get("mcpward.identity") if isinstance(scope, dict) else None
    return found if isinstance(found, Identity) else current_identity()


__all__ = [
    "AUTH0",
    "CLERK",
    "DPOP_ALGORITHMS",
    "KEYCLOAK",
    "MCPWARD",
    "OKTA",
    "POLICY_MODEL",
    "PRESETS",
    "Authenticated",
    "BadAuthorization",
    "BadMessage",
    "Bucket",
    "ByFormat",
    "CasbinPolicy",
    "ClaimMapping",
    "DownstreamTokenError",
    "DownstreamTokens",
    "ExchangeRefused",
    "ExchangeUnavailable",
    "FailureMode",
    "Guard",
    "GuardError",
    "GuardMetrics",
    "GuardMiddleware",
    "Identity",
    "InsufficientScope",
    "IntrospectionVerifier",
    "InvalidDPoPProof",
    "InvalidToken",
    "IssuerDiscoveryError",
    "IssuerKeys",
    "JWTVerifier",
    "KeySource",
    "Limit",
    "ListVisibility",
    "LocalKeys",
    "Manifest",
    "ManifestError",
    "MemoryRateLimiter",
    "MissingToken",
    "OAuthBlock",
    "Policy",
    "PolicyDenied",
    "ProtectedResourceMetadata",
    "RateLimited",
    "RateLimiter",
    "RateLimits",
    "RemoteJWKS",
    "ResourceProofs",
    "Schemes",
    "ScopeRules",
    "StaticKeys",
    "TokenVerifier",
    "Unavailable",
    "UseDPoPNonce",
    "current_identity",
    "discover",
    "identity_of",
    "make_guard",
    "manifest_from_code",
    "metadata_url",
    "protect",
    "protect_fastmcp",
    "protect_mcp_server",
    "require_identity",
    "www_authenticate",
]
