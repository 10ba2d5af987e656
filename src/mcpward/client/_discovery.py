"""Finding the authorization server for an MCP server.

Order (MCP authorization 2025-11-25 and later; RFC 9728, RFC 8414, OpenID Connect Discovery):
1. Protected Resource Metadata: the `resource_metadata` URL from the 401 challenge, then
   `/.well-known/oauth-protected-resource/<path>`, then `/.well-known/oauth-protected-resource`.
2. Authorization server metadata for the first listed issuer: RFC 8414 path-suffix form,
   OpenID configuration path-suffix form, OpenID configuration path-appended form.
3. Servers on 2025-03-26 publish no PRM: the MCP server's origin is the authorization server,
   and with no metadata there either, `/authorize`, `/token` and `/register` on that origin.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from mcpward.client._challenge import BearerChallenge, parse_bearer
from mcpward.client.errors import MetadataError

logger = logging.getLogger("mcpward.client")

_PRM = "/.well-known/oauth-protected-resource"
_OAUTH = "/.well-known/oauth-authorization-server"
_OIDC = "/.well-known/openid-configuration"


def canonical_resource(url: str) -> str:
    """The resource indicator for a server URL (RFC 8707 §2): lower-case scheme and host,
    no fragment, no trailing slash unless it is the whole path."""
    parts = urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else ""
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, parts.query, ""))


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _path(url: str) -> str:
    return urlsplit(url).path.rstrip("/")


def resource_metadata_urls(server_url: str, challenge: BearerChallenge | None) -> list[str]:
    urls = []
    if challenge is not None and challenge.resource_metadata:
        urls.append(challenge.resource_metadata)
    origin, path = _origin(server_url), _path(server_url)
    if path:
        urls.append(f"{origin}{_PRM}{path}")
    urls.append(f"{origin}{_PRM}")
    return list(dict.fromkeys(urls))


def authorization_server_metadata_urls(issuer: str) -> list[str]:
    origin, path = _origin(issuer), _path(issuer)
    if not path:
        return [f"{origin}{_OAUTH}", f"{origin}{_OIDC}"]
    return [f"{origin}{_OAUTH}{path}", f"{origin}{_OIDC}{path}", f"{origin}{path}{_OIDC}"]


def resource_allowed(server_url: str, resource: str) -> bool:
    """A PRM `resource` may name the server URL itself or a parent of it on the same origin."""
    want, have = canonical_resource(server_url), canonical_resource(resource)
    if _origin(want) != _origin(have):
        return False
    parent = _path(have)
    return _path(want) == parent or _path(want).startswith(parent + "/")


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


@dataclass(frozen=True)
class ResourceMetadata:
    """RFC 9728 Protected Resource Metadata."""

    resource: str
    authorization_servers: list[str]
    scopes_supported: list[str] | None = None


@dataclass(frozen=True)
class ServerMetadata:
    """RFC 8414 authorization server metadata (the fields a client acts on)."""

    issuer: str
    authorization_endpoint: str | None
    token_endpoint: str
    registration_endpoint: str | None = None
    scopes_supported: list[str] | None = None
    grant_types_supported: list[str] | None = None
    code_challenge_methods_supported: list[str] | None = None
    token_endpoint_auth_methods_supported: list[str] | None = None
    authorization_response_iss_parameter_supported: bool = False
    client_id_metadata_document_supported: bool = False
    revocation_endpoint: str | None = None
    # RFC 9449 §5.1: the DPoP proof algorithms the server accepts (none: no DPoP).
    dpop_signing_alg_values_supported: list[str] | None = None
    # False when nothing was published and the 2025-03-26 default endpoints are assumed.
    published: bool = True
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ServerMetadata:
        issuer, token_endpoint = data.get("issuer"), data.get("token_endpoint")
        if not isinstance(issuer, str) or not isinstance(token_endpoint, str):
            raise MetadataError("authorization server metadata lacks issuer or token_endpoint")

        def text(name: str) -> str | None:
            value = data.get(name)
            return value if isinstance(value, str) else None

        return cls(
            issuer=issuer,
            authorization_endpoint=text("authorization_endpoint"),
            token_endpoint=token_endpoint,
            registration_endpoint=text("registration_endpoint"),
            scopes_supported=_strings(data.get("scopes_supported")),
            grant_types_supported=_strings(data.get("grant_types_supported")),
            code_challenge_methods_supported=_strings(data.get("code_challenge_methods_supported")),
            token_endpoint_auth_methods_supported=_strings(
                data.get("token_endpoint_auth_methods_supported")
            ),
            authorization_response_iss_parameter_supported=data.get(
                "authorization_response_iss_parameter_supported"
            )
            is True,
            client_id_metadata_document_supported=data.get("client_id_metadata_document_supported")
            is True,
            revocation_endpoint=text("revocation_endpoint"),
            dpop_signing_alg_values_supported=_strings(
                data.get("dpop_signing_alg_values_supported")
            ),
            raw=data,
        )

    @classmethod
    def legacy_defaults(cls, origin: str) -> ServerMetadata:
        """2025-03-26 §2.3.3: with no metadata, the default endpoints on the server's origin."""
        return cls(
            issuer=origin,
            authorization_endpoint=f"{origin}/authorize",
            token_endpoint=f"{origin}/token",
            registration_endpoint=f"{origin}/register",
            published=False,
        )

    @property
    def supports_offline_access(self) -> bool:
        grants = self.grant_types_supported
        return "offline_access" in (self.scopes_supported or []) and (
            grants is None or "refresh_token" in grants
        )


@dataclass(frozen=True)
class Discovery:
    """Where to get tokens for one MCP server, and which resource indicator to ask for."""

    server_url: str
    resource: str
    resource_metadata: ResourceMetadata | None
    server: ServerMetadata


async def _get_json(http: httpx.AsyncClient, url: str) -> tuple[int, dict[str, Any] | None]:
    try:
        response = await http.get(url, headers={"Accept": "application/json"})
    except httpx.HTTPError as exc:
        logger.debug("metadata fetch failed: %s (%s)", url, type(exc).__name__)
        return 0, None
    if response.status_code != 200:
        return response.status_code, None
    try:
        data = response.json()
    except ValueError:
        return response.status_code, None
    return response.status_code, data if isinstance(data, dict) else None


async def fetch_resource_metadata(
    http: httpx.AsyncClient, server_url: str, challenge: BearerChallenge | None
) -> ResourceMetadata | None:
    failures: list[int] = []
    for url in resource_metadata_urls(server_url, challenge):
        status, data = await _get_json(http, url)
        if data is None:
            failures.append(status)
            continue
        resource = data.get("resource")
        servers = _strings(data.get("authorization_servers")) or []
        if not isinstance(resource, str) or not servers:
            logger.debug("ignoring protected resource metadata without resource/servers: %s", url)
            continue
        if not resource_allowed(server_url, resource):
            # RFC 9728 §3.3: metadata for another resource could send our tokens elsewhere.
            raise MetadataError(
                f"protected resource metadata names resource {resource!r}, "
                f"which does not cover {canonical_resource(server_url)!r}"
            )
        return ResourceMetadata(resource, servers, _strings(data.get("scopes_supported")))
    if any(status >= 500 or status == 429 for status in failures):
        # A server error says nothing about the resource being a 2025-03-26 one.
        raise MetadataError("protected resource metadata request failed with a server error")
    return None


async def fetch_server_metadata(
    http: httpx.AsyncClient, issuer: str, *, legacy: bool
) -> ServerMetadata:
    for url in authorization_server_metadata_urls(issuer):
        _status, data = await _get_json(http, url)
        if data is None:
            continue
        metadata = ServerMetadata.from_json(data)
        # RFC 8414 §3.3: identical to the issuer the URL was built from. Compared as strings,
        # with no normalisation (MCP 2026-07-28, SEP-2468): "https://as/" is not "https://as".
        if metadata.issuer != issuer:
            raise MetadataError(
                f"authorization server metadata at {url} names issuer {metadata.issuer!r}, "
                f"expected {issuer!r}"
            )
        return metadata
    if legacy:
        return ServerMetadata.legacy_defaults(issuer)
    raise MetadataError(f"no authorization server metadata found for issuer {issuer!r}")


async def discover(
    http: httpx.AsyncClient,
    server_url: str,
    challenge: BearerChallenge | None = None,
    *,
    issuers: Sequence[str] | None = None,
) -> Discovery:
    """Resolve metadata for `server_url`; `issuers`, when given, picks among advertised servers."""
    prm = await fetch_resource_metadata(http, server_url, challenge)
    if prm is None:
        origin = _origin(server_url)
        server = await fetch_server_metadata(http, origin, legacy=True)
        return Discovery(server_url, canonical_resource(server_url), None, server)
    issuer = prm.authorization_servers[0]
    if issuers:
        preferred = [s for s in prm.authorization_servers if s in issuers]
        if not preferred:
            raise MetadataError("none of the configured issuers is advertised by the resource")
        issuer = preferred[0]
    server = await fetch_server_metadata(http, issuer, legacy=False)
    return Discovery(server_url, canonical_resource(prm.resource), prm, server)


async def probe(http: httpx.AsyncClient, server_url: str) -> BearerChallenge | None:
    """An unauthenticated request to the MCP endpoint, to read its 401 challenge."""
    try:
        response = await http.post(
            server_url,
            json={"jsonrpc": "2.0", "id": 0, "method": "ping"},
            headers={"Accept": "application/json, text/event-stream"},
        )
    except httpx.HTTPError:
        return None
    if response.status_code not in (401, 403):
        return None
    return parse_bearer(response.headers.get_list("www-authenticate"))
