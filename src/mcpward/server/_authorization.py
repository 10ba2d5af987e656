"""The code-issuing core of the authorization endpoint (RFC 6749 §4.1, OAuth 2.1 §4.1,
RFC 9207, RFC 8707). The login and consent pages plug into it: they call
:func:`validate_request` before showing anything, then :func:`issue_code` once the user
has signed in and approved, or :func:`error_redirect` when they deny.

Errors come in two kinds (§4.1.2.1): :class:`UnsafeRequest` when the client or the
redirect URI cannot be trusted (show it on a page, never redirect), and an ``OAuthError``
wrapped in :class:`RedirectableError` once the redirect URI is known to be registered.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

from mcpward._secrets import credential_hash, new_credential
from mcpward.audit import AuditEvent
from mcpward.server import _rfc7636, _scopes
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import (
    InvalidRequest,
    OAuthError,
    UnauthorizedClient,
    UnsupportedResponseType,
)
from mcpward.storage.records import ClientRecord, CodeRecord, ResourceRecord

MAX_STATE = 1024
# A JWK SHA-256 thumbprint: 32 bytes, base64url without padding (RFC 7638, RFC 9449 §10).
_JKT = re.compile(r"[A-Za-z0-9_-]{43}")


class UnsafeRequest(Exception):
    """Not redirectable: unknown client or unregistered redirect URI. Shown on a page."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class RedirectableError(Exception):
    def __init__(self, error: OAuthError, redirect_to: str) -> None:
        super().__init__(error.error)
        self.error = error
        self.redirect_to = redirect_to


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    client: ClientRecord
    redirect_uri: str
    state: str | None
    code_challenge: str
    resource: ResourceRecord
    scopes: tuple[str, ...]
    # RFC 9449 §10: the DPoP key the code will be bound to.
    dpop_jkt: str | None = None

    @property
    def scope(self) -> str:
        return _scopes.render(self.scopes)


def redirect_uri_matches(registered: tuple[str, ...], presented: str, native: bool) -> bool:
    """Exact string match (OAuth 2.1 §2.3.1), except that a native client's loopback
    redirect may use any port (RFC 8252 §7.3)."""
    if presented in registered:
        return True
    if not native:
        return False
    p = urlsplit(presented)
    if p.scheme != "http" or not _is_loopback_ip(p.hostname):
        return False
    for candidate in registered:
        r = urlsplit(candidate)
        if (
            r.scheme == "http"
            and r.hostname == p.hostname
            and r.path == p.path
            and r.query == p.query
            and not r.fragment
            and not p.fragment
            and not p.username
            and not p.password
        ):
            return True
    return False


def _is_loopback_ip(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def validate_request(
    server: AuthorizationServer, params: Mapping[str, str], resources: list[str]
) -> AuthorizationRequest:
    client_id = params.get("client_id", "")
    if not client_id:
        raise UnsafeRequest("The request names no client.")
    client = await server.clients.get(client_id)
    if client is None or client.disabled_at is not None:
        raise UnsafeRequest("The application that sent you here is not registered.")
    redirect_uri = params.get("redirect_uri", "")
    if not redirect_uri:
        # OAuth 2.1 lets a client with one registered URI omit it; MCP clients send it.
        if len(client.redirect_uris) != 1:
            raise UnsafeRequest("The request names no redirect URI.")
        redirect_uri = client.redirect_uris[0]
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in redirect_uri) or not redirect_uri_matches(
        client.redirect_uris, redirect_uri, client.application_type == "native"
    ):
        raise UnsafeRequest("The redirect URI is not registered for this application.")

    state = params.get("state")

    def fail(error: OAuthError) -> RedirectableError:
        return RedirectableError(error, _with_params(server, redirect_uri, state, error.body()))

    if state is not None and len(state) > MAX_STATE:
        raise fail(InvalidRequest("state is too long"))
    if params.get("response_type") != "code":
        raise fail(UnsupportedResponseType("response_type must be code"))
    # With DPoP off the parameter is unknown, and unknown parameters are ignored.
    dpop_jkt = params.get("dpop_jkt") if server.dpop.verifier is not None else None
    if dpop_jkt is not None and not _JKT.fullmatch(dpop_jkt):
        raise fail(InvalidRequest("dpop_jkt must be a JWK SHA-256 thumbprint"))
    if "authorization_code" not in client.grant_types:
        raise fail(UnauthorizedClient("this client may not use the authorization code grant"))
    try:
        challenge = _rfc7636.check_challenge(
            params.get("code_challenge"), params.get("code_challenge_method")
        )
        resource = server.resolve_resource(resources)
        # A pre-registered client may be limited to some scopes: it is offered what it
        # asked for within them; without a scope parameter, everything it may have.
        scopes = _scopes.grantable(
            _scopes.parse(params.get("scope")), resource, client.allowed_scope
        )
    except OAuthError as error:
        raise fail(error) from None
    return AuthorizationRequest(client, redirect_uri, state, challenge, resource, scopes, dpop_jkt)


async def issue_code(
    server: AuthorizationServer,
    request: AuthorizationRequest,
    *,
    subject: str,
    auth_time: float,
    scopes: tuple[str, ...] | None = None,
) -> str:
    """Store a single-use code (hash only) and return the redirect URL carrying it, the
    ``state`` and the ``iss`` (RFC 9207). ``scopes`` may narrow what the user approved."""
    granted = request.scopes if scopes is None else scopes
    if not set(granted) <= set(request.scopes):
        raise ValueError("approved scopes must be a subset of the requested ones")
    now = server.clock()
    code = new_credential("ac")
    await server.store.grants.save_code(
        CodeRecord(
            code_hash=credential_hash(code),
            client_id=request.client.client_id,
            redirect_uri=request.redirect_uri,
            code_challenge=request.code_challenge,
            resource=request.resource.uri,
            scope=_scopes.render(granted),
            subject=subject,
            auth_time=auth_time,
            created_at=now,
            expires_at=now + server.settings.lifetimes.authorization_code,
            dpop_jkt=request.dpop_jkt,
        )
    )
    server.audit.emit(
        AuditEvent(
            "code.issued",
            "ok",
            client_id=request.client.client_id,
            subject=subject,
            scopes=granted,
            audience=request.resource.uri,
        )
    )
    return _with_params(server, request.redirect_uri, request.state, {"code": code})


def error_redirect(
    server: AuthorizationServer, request: AuthorizationRequest, error: OAuthError
) -> str:
    return _with_params(server, request.redirect_uri, request.state, error.body())


def _with_params(
    server: AuthorizationServer, redirect_uri: str, state: str | None, values: Mapping[str, str]
) -> str:
    params = dict(values)
    if state is not None:
        params["state"] = state
    params["iss"] = server.settings.issuer
    parts = urlsplit(redirect_uri)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))
