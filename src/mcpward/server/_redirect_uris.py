"""Redirect URI rules for registered clients: OAuth 2.1 §2.3.1 and RFC 8252, by
``application_type``.

* ``web`` clients: ``https`` only, never a loopback host (``localhost``, 127.0.0.0/8,
  ``::1``).
* ``native`` clients: ``http`` on a loopback host (RFC 8252 §7.3; the port may vary at the
  authorization endpoint for IP literals), claimed ``https`` URIs (§7.2) and private-use
  schemes such as ``com.example.app:/cb`` (§7.1). ``http://localhost`` is accepted although
  RFC 8252 §8.3 calls it NOT RECOMMENDED, because widely used MCP clients (Claude Code,
  MCP Inspector) register it; it matches exactly (port included), unlike IP literals.
* No fragments, no user-info, no wildcards, no whitespace or non-ASCII characters, and no
  dangerous schemes (``javascript:``, ``data:``, ``file:`` ...).
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import SplitResult, urlsplit

from mcpward._hosts import is_loopback_host
from mcpward.server.errors import InvalidRedirectUri

ApplicationType = Literal["native", "web"]

# Never acceptable as a redirect target, whatever the application type.
FORBIDDEN_SCHEMES = frozenset(
    {
        "javascript",
        "vbscript",
        "data",
        "file",
        "about",
        "blob",
        "filesystem",
        "view-source",
        "ws",
        "wss",
        "ftp",
        "mailto",
        "tel",
        "sms",
    }
)
URI_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")


def parse_redirect_uri(uri: str) -> SplitResult:
    """The URI's parts, or InvalidRedirectUri when no client may use it."""
    if not URI_CHARS.match(uri) or "\\" in uri:
        raise InvalidRedirectUri("redirect_uris must be ASCII URIs without spaces")
    if "#" in uri:
        raise InvalidRedirectUri("redirect_uris must not contain a fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number
    except ValueError:
        raise InvalidRedirectUri("redirect_uris contains a malformed URI") from None
    if not parts.scheme or not _SCHEME.match(parts.scheme) or ":" not in uri:
        raise InvalidRedirectUri("redirect_uris must be absolute URIs")
    if parts.scheme in FORBIDDEN_SCHEMES:
        raise InvalidRedirectUri("redirect_uris uses a forbidden scheme")
    if "@" in parts.netloc:
        raise InvalidRedirectUri("redirect_uris must not contain user information")
    if "*" in parts.netloc:
        raise InvalidRedirectUri("redirect_uris must not contain wildcards")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise InvalidRedirectUri("redirect_uris must name a host")
    return parts


def native_only(parts: SplitResult) -> bool:
    """A loopback or private-use redirect, which only a native client can have."""
    return parts.scheme != "https" or is_loopback_host(parts.hostname)


def check_redirect_uri(parts: SplitResult, application_type: ApplicationType) -> None:
    """InvalidRedirectUri unless a client of ``application_type`` may use ``parts``."""
    loopback = is_loopback_host(parts.hostname)
    if application_type == "web":
        if parts.scheme != "https":
            raise InvalidRedirectUri("web clients must use https redirect URIs")
        if loopback:
            raise InvalidRedirectUri("web clients must not use loopback redirect URIs")
        return
    if parts.scheme == "http" and not loopback:
        raise InvalidRedirectUri("http redirect URIs must use a loopback host (RFC 8252)")
    # https (claimed, RFC 8252 §7.2) and private-use schemes (§7.1) are fine.
