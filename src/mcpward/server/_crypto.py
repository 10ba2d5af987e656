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

    def derive(self, purpose: str) -> bytes:
        """A 32-byte key for ``purpose`` (HKDF-SHA256), the same on every replica
        holding this data key, so derived secrets need no storage."""
        info = f"mcpward {purpose}".encode()
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(self._raw)

    def derived(self, purpose: str) -> DataKey:
        """The data key of ``purpose`` (see :meth:`derive`), for encrypting with it."""
        return DataKey(base64.urlsafe_b64encode(self.derive(purpose)).decode().rstrip("="))

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], context.encode())
