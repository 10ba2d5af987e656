"""Authorization server metadata (RFC 8414), also served as an OpenID-style document."""

from __future__ import annotations

from typing import Any

from mcpward.server._client_auth import ASSERTION_ALGS
from mcpward.server.core import AuthorizationServer
from mcpward.server.grants.jwt_bearer import ID_JAG_PROFILE
from mcpward.storage.records import JWT_BEARER, TOKEN_EXCHANGE

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


def metadata(server: AuthorizationServer) -> dict[str, Any]:
    endpoints = server.endpoints
    scopes = sorted({s for r in server.resources() for s in r.scopes})
    doc: dict[str, Any] = {
        "issuer": server.settings.issuer,
        "authorization_endpoint": endpoints.authorization,
        "token_endpoint": endpoints.token,
        "jwks_uri": endpoints.jwks,
        "revocation_endpoint": endpoints.revocation,
        "introspection_endpoint": endpoints.introspection,
        "scopes_supported": scopes,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": grant_types(server),
        "token_endpoint_auth_methods_supported": AUTH_METHODS,
        "token_endpoint_auth_signing_alg_values_supported": ASSERTION_ALGS,
        "revocation_endpoint_auth_methods_supported": AUTH_METHODS,
        "introspection_endpoint_auth_methods_supported": AUTH_METHODS[:3],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": True,
        "client_id_metadata_document_supported": (
            server.settings.client_metadata_documents.enabled
        ),
    }
    if server.dpop.algorithms:
        # RFC 9449 §5.1: asymmetric algorithms only, never "none".
        doc["dpop_signing_alg_values_supported"] = list(server.dpop.algorithms)
    if server.settings.dynamic_client_registration:
        doc["registration_endpoint"] = endpoints.registration
    if any("id-jag" in i.profiles for i in server.settings.trusted_issuers):
        # draft-ietf-oauth-identity-assertion-authz-grant §6.2
        doc["authorization_grant_profiles_supported"] = [ID_JAG_PROFILE]
    return doc


def grant_types(server: AuthorizationServer) -> list[str]:
    """The grants this server can answer as configured: the JWT bearer grant once an
    issuer is trusted, token exchange once a policy allows one."""
    settings = server.settings
    grants = ["authorization_code", "refresh_token", "client_credentials"]
    if settings.trusted_issuers:
        grants.append(JWT_BEARER)
    if settings.token_exchange:
        grants.append(TOKEN_EXCHANGE)
    return grants


def well_known_paths(issuer_path: str) -> list[str]:
    """Every path a client may try (RFC 8414 §3.1 path-suffix form, OIDC Discovery §4 path
    append form, and the MCP spec's list) for an issuer whose URL path is ``issuer_path``."""
    path = issuer_path.rstrip("/")
    paths = [
        "/.well-known/oauth-authorization-server" + path,
        "/.well-known/openid-configuration" + path,
    ]
    if path:
        paths.append(path + "/.well-known/openid-configuration")
        paths.append(path + "/.well-known/oauth-authorization-server")
    return paths
