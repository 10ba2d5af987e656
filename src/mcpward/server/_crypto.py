"""Encryption at rest for signing keys and TOTP secrets: AES-256-GCM under the operator's
data key. The associated data binds each ciphertext to its purpose and row."""

from __future__ import annotations

import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class DataKey:
    def __init__(self, encoded: str) -> None:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        if len(raw) != 32:
            raise ValueError("the data key must be 32 bytes, base64url-encoded")
        self._aead = AESGCM(raw)

    def encrypt(self, plaintext: bytes, context: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, context.encode())

    def decrypt(self, blob: bytes, context: str) -> bytes:
        return self._aead.decrypt(blob[:12], blob[12:], context.encode())
