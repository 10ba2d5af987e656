"""PKCE (RFC 7636), S256 only: OAuth 2.1 and the MCP spec refuse ``plain``."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from mcpward.server.errors import InvalidGrant, InvalidRequest

# RFC 7636 §4.1: 43-128 characters of [A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"
_VERIFIER = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")
# A base64url SHA-256 digest without padding is exactly 43 characters.
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-_]{43}$")


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def check_challenge(challenge: str | None, method: str | None) -> str:
    """Validate an authorization request's challenge; return it."""
    if not challenge:
        raise InvalidRequest("code_challenge is required (PKCE S256)")
    if method != "S256":
        raise InvalidRequest("code_challenge_method must be S256")
    if not _CHALLENGE.match(challenge):
        raise InvalidRequest("code_challenge is not a base64url SHA-256 digest")
    return challenge


def verify(verifier: str | None, challenge: str) -> None:
    if not verifier:
        raise InvalidRequest("code_verifier is required")
    if not _VERIFIER.match(verifier):
        raise InvalidGrant("code_verifier is malformed")
    if not hmac.compare_digest(s256(verifier), challenge):
        raise InvalidGrant("code_verifier does not match the code_challenge")
