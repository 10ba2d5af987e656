"""Password hashing with argon2id (RFC 9106), through argon2-cffi.

Verification runs in a worker thread (it is deliberately slow) and always does the same
work, whether the account exists or not, so response times do not reveal usernames.
"""

from __future__ import annotations

import asyncio
import functools

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_LENGTH = 12
MAX_LENGTH = 1024

# RFC 9106 §4 second recommended option (64 MiB, 3 passes, 4 lanes): argon2-cffi's default.
_hasher = PasswordHasher(type=Type.ID)


@functools.cache
def _dummy() -> str:
    """A hash to verify against when there is no user, so the work is the same. Made on
    first use, not at import (one argon2id hash costs ~0.5 s of CPU: every `mcpward`
    command would pay it)."""
    return _hasher.hash("mcpward-dummy-password-for-timing")


def hash_password(password: str) -> str:
    problem = weakness(password)
    if problem:
        raise ValueError(problem)
    return _hasher.hash(password)


def weakness(password: str) -> str | None:
    if len(password) < MIN_LENGTH:
        return f"the password must have at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"the password must have at most {MAX_LENGTH} characters"
    return None


def _verify(stored: str | None, password: str) -> bool:
    try:
        return _hasher.verify(stored or _dummy(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password(stored: str | None, password: str) -> bool:
    """True when ``password`` matches ``stored``; ``None`` (no such user, or no local
    password) costs the same and is always False."""
    if len(password) > MAX_LENGTH:
        return False
    return await asyncio.to_thread(_verify, stored, password)


def needs_rehash(stored: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored)
    except InvalidHashError:
        return False
