"""Encryption at rest for signing keys, TOTP secrets and refresh-token successors:
AES-256-GCM under the operator's data key, or under a key derived from it for one purpose
(HKDF-SHA256, RFC 5869). The associated data binds each ciphertext to its purpose and row."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class DataKey:
    def __init__(self, encoded: str) -> None:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if len(raw) != 32:
            raise ValueError("the data key must be 32 bytes, base64url-encoded")
        self._raw = raw
        self._aead = AESGCM(raw)

    def derive(self, purpose: str) -> DataKey:
        """A key of its own for ``purpose``: a ciphertext made for one purpose can never
        be opened as another's, whatever its associated data."""
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
        derived = hkdf.derive(self._raw)
        return DataKey(base64.urlsafe_b64encode(derived).decode().rstrip("="))

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], context.encode())
