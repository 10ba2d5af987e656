"""Time-based one-time passwords (RFC 6238) as the optional second factor.

Secrets are encrypted under the data key (AES-GCM, bound to the user id). A code is
accepted once: a replayed code within its validity window is refused.
"""

from __future__ import annotations

import re
from typing import Protocol

import pyotp

from mcpward.server._crypto import DataKey

_CODE = re.compile(r"^\d{6}$")


def _context(user_id: str) -> str:
    return f"totp:{user_id}"


def new_secret() -> str:
    return str(pyotp.random_base32())


def encrypt_secret(key: DataKey, user_id: str, secret: str) -> bytes:
    return key.encrypt(secret.encode("ascii"), _context(user_id))


def decrypt_secret(key: DataKey, user_id: str, blob: bytes) -> str:
    return key.decrypt(blob, _context(user_id)).decode("ascii")


def provisioning_uri(secret: str, username: str, issuer_name: str) -> str:
    return str(pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer_name))


def current_code(secret: str, at: float) -> str:
    return str(pyotp.TOTP(secret).at(int(at)))


class StepLedger(Protocol):
    async def advance_totp_step(self, user_id: str, step: int) -> bool: ...


async def verify(ledger: StepLedger, user_id: str, secret: str, code: str, now: float) -> bool:
    """Check ``code`` allowing one step of clock drift either way; a code (or an older
    one) already used is refused, on every replica when the ledger is shared."""
    code = code.replace(" ", "")
    if not _CODE.match(code):
        return False
    totp = pyotp.TOTP(secret)
    step = int(now) // totp.interval
    for candidate in (step - 1, step, step + 1):
        if pyotp.utils.strings_equal(str(totp.generate_otp(candidate)), code):
            return await ledger.advance_totp_step(user_id, candidate)
    return False
