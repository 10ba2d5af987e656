"""OAuth 2.0 Protected Resource Metadata (RFC 9728)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

WELL_KNOWN = "/.well-known/oauth-protected-resource"
OFFLINE_ACCESS = "offline_access"


@dataclass(frozen=True, slots=True)
class ProtectedResourceMetadata:
    resource: str
    authorization_servers: tuple[str, ...]
    scopes_supported: tuple[str, ...] = ()
    resource_name: str | None = None
    resource_documentation: str | None = None
    # RFC 9728 §2: the DPoP algorithms accepted, and whether only DPoP-bound tokens are.
    dpop_signing_alg_values_supported: tuple[str, ...] = ()
    dpop_bound_access_tokens_required: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def document(self) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "resource": self.resource,
            "authorization_servers": list(self.authorization_servers),
            # RFC 6750 §2.1 only: a token in a form body or the query is refused.
            "bearer_methods_supported": ["header"],
        }
        # offline_access asks the authorization server for a refresh token; it is not a
        # permission of this resource, and a client that requests every scope listed here
        # must not ask for it on the resource's behalf (MCP SEP-2207).
        scopes = sorted(s for s in self.scopes_supported if s != OFFLINE_ACCESS)
        if scopes:
            doc["scopes_supported"] = scopes
        if self.resource_name:
            doc["resource_name"] = self.resource_name
        if self.resource_documentation:
            doc["resource_documentation"] = self.resource_documentation
        if self.dpop_signing_alg_values_supported:
            doc["dpop_signing_alg_values_supported"] = list(self.dpop_signing_alg_values_supported)
            doc["dpop_bound_access_tokens_required"] = self.dpop_bound_access_tokens_required
        doc.update(self.extra)
        return doc

    @property
    def url(self) -> str:
        """Where this document is served (RFC 9728 §3.1, path-suffixed)."""
        return metadata_url(self.resource)

    @property
    def paths(self) -> tuple[str, ...]:
        """Request paths that serve the document: the path-suffixed form, and the bare
        well-known path (clients of MCP 2025-06-18 try it first)."""
        path = urlsplit(self.url).path
        return (path,) if path == WELL_KNOWN else (path, WELL_KNOWN)


def metadata_url(resource: str) -> str:
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))
