"""Server-provided DPoP nonces (RFC 9449 §8, §9) that need no storage.

A nonce is the HMAC-SHA256 of the current time step under a secret every replica holds
(the authorization server derives it from the data key), so every replica hands out and
accepts the same values without sharing a store, as ``oidc-provider`` does. A nonce is
accepted during its own step and the next one: between ``step`` and twice ``step``
seconds after it was first handed out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math

from mcpward._clock import Clock, system_clock

__all__ = ["NonceSource"]


class NonceSource:
    def __init__(self, secret: bytes, *, step: float = 120.0, clock: Clock = system_clock) -> None:
        if len(secret) < 32:
            raise ValueError("a DPoP nonce secret needs at least 32 bytes")
        if step <= 0:
            raise ValueError("the nonce step must be positive")
        self._secret = secret
        self.step = step
        self._clock = clock
        # (step index, nonce) of the two steps last computed.
        self._memo: dict[int, str] = {}

    def current(self) -> str:
        """The nonce to hand out now (``DPoP-Nonce``)."""
        return self._at(self._index())

    def is_valid(self, nonce: str) -> bool:
        """Whether ``nonce`` is this step's or the previous one's (constant time)."""
        index = self._index()
        encoded = nonce.encode("ascii", "replace")
        current = hmac.compare_digest(self._at(index).encode(), encoded)
        previous = hmac.compare_digest(self._at(index - 1).encode(), encoded)
        return current | previous

    def _index(self) -> int:
        return math.floor(self._clock() / self.step)

    def _at(self, index: int) -> str:
        value = self._memo.get(index)
        if value is None:
            if len(self._memo) > 4:
                self._memo.clear()
            mac = hmac.new(self._secret, index.to_bytes(8, "big", signed=True), hashlib.sha256)
            value = base64.urlsafe_b64encode(mac.digest()).rstrip(b"=").decode("ascii")
            self._memo[index] = value
        return value
