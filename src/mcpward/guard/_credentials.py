"""Reading the credentials a request carries: the ``Authorization`` header's scheme and
token, and a token wrongly put in the URI query (RFC 6750 §2.3, which OAuth 2.1 and MCP
forbid)."""

from __future__ import annotations

import re

from mcpward.guard._challenge import Scheme
from mcpward.guard._errors import InvalidToken, MissingToken

__all__ = ["credentials", "query_has_token"]

# RFC 6750 §2.1 b64token
_B64TOKEN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


def credentials(header: bytes, *, dpop: bool) -> tuple[str, str]:
    """(scheme, token) of an Authorization header: ``bearer``, or ``dpop`` when the
    resource accepts DPoP (RFC 9449 §7.1); the token an RFC 6750 §2.1 b64token."""
    try:
        value = header.decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidToken("the Authorization header is malformed") from exc
    scheme, _, token = value.strip().partition(" ")
    scheme = scheme.lower()
    if scheme != "bearer" and (scheme != "dpop" or not dpop):
        raise MissingToken("use Bearer or DPoP" if dpop else "use the Bearer scheme")
    token = token.strip()
    if not token or not _B64TOKEN.fullmatch(token):
        used: Scheme = "DPoP" if scheme == "dpop" else "Bearer"
        raise InvalidToken("the access token is malformed", scheme=used)
    return scheme, token


def query_has_token(query: bytes) -> bool:
    if not query:
        return False
    lowered = query.lower()
    return lowered.startswith(b"access_token=") or b"&access_token=" in lowered
