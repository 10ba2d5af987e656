"""Credentials this system hands out: client secrets, refresh tokens, authorization codes.

Each is ``mcpw_<kind>_`` + 43 base62 characters of randomness (256 bits) + a 6-character
CRC-32 checksum, so that secret scanners can match them with one rule and tell a real
credential from a look-alike without calling us (see ``security/gitleaks.toml``). Only the
SHA-256 of a credential is ever stored; high-entropy secrets need no slow password hash.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import zlib
from typing import Literal

CredentialKind = Literal["cs", "rt", "ac"]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BODY_LEN = 43  # 62**43 > 2**256
_CHECK_LEN = 6  # 62**6 > 2**32
PREFIX = "mcpw_"


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_ALPHABET[rem])
    return "".join(reversed(chars))


def _checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), _CHECK_LEN)


def new_credential(kind: CredentialKind) -> str:
    body = _base62(secrets.randbits(256), _BODY_LEN)
    return f"{PREFIX}{kind}_{body}{_checksum(body)}"


def is_well_formed(value: str, kind: CredentialKind) -> bool:
    """Cheap structural check (prefix, length, alphabet, checksum) before any lookup."""
    head = f"{PREFIX}{kind}_"
    if not value.startswith(head) or len(value) != len(head) + _BODY_LEN + _CHECK_LEN:
        return False
    rest = value[len(head) :]
    if not (rest.isascii() and rest.isalnum()):  # exactly the base62 alphabet
        return False
    body, check = rest[:_BODY_LEN], rest[_BODY_LEN:]
    return hmac.compare_digest(_checksum(body), check)


def credential_hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def hint(value: str) -> str:
    """The last four characters, to tell secrets apart in listings."""
    return value[-4:]


def new_id(nbytes: int = 16) -> str:
    """An identifier (jti, family id, user id): random, URL-safe, not a secret."""
    return secrets.token_urlsafe(nbytes)
