"""PKCE with S256 only (RFC 7636; OAuth 2.1 forbids `plain`)."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import ClassVar, Literal


def code_challenge(verifier: str) -> str:
    """BASE64URL(SHA256(ASCII(code_verifier))) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True)
class Pkce:
    """A fresh verifier (86 characters, 512 bits of entropy) and its S256 challenge."""

    verifier: str = field(default_factory=lambda: secrets.token_urlsafe(64), repr=False)

    @property
    def challenge(self) -> str:
        return code_challenge(self.verifier)

    method: ClassVar[Literal["S256"]] = "S256"
