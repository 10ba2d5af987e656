"""Where a signed-in session survives the process: the OS keychain, else a private file.

What is stored per MCP server and authorization server (`session_key`): the client
registration, the refresh token and, with DPoP, the private key the refresh token is bound
to (RFC 9449 §5). Access tokens are never stored; they live in memory only.
Client credentials belong to one authorization server (MCP 2026-07-28, SEP-2352), so a server
that moves to another one gets a session of its own rather than the old one's credentials.

`default_store()` uses `keyring` (Secret Service, macOS Keychain, Windows Credential
Locker). With no usable backend it falls back to a JSON file created 0600 in a 0700
directory, and logs that once per process.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mcpward.client._registration import Registration

logger = logging.getLogger("mcpward.client")

SERVICE = "mcpward"


def session_key(resource: str, issuer: str) -> str:
    """The store key of a session: the MCP server's URL and its authorization server's issuer,
    separated by a space, which neither URL can contain."""
    return f"{resource} {issuer}"


@dataclass(frozen=True)
class StoredSession:
    resource: str
    registration: Registration
    refresh_token: str | None = field(default=None, repr=False)
    scope: str | None = None
    # The session's DPoP key as a private JWK (``mcpward.dpop.ProofKey.private_jwk``).
    dpop_key: dict[str, str] | None = field(default=None, repr=False)

    def to_json(self) -> str:
        return json.dumps(
            {
                "resource": self.resource,
                "registration": self.registration.to_json(),
                "refresh_token": self.refresh_token,
                "scope": self.scope,
                "dpop_key": self.dpop_key,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> StoredSession:
        data = json.loads(text)
        return cls(
            resource=data["resource"],
            registration=Registration.from_json(data["registration"]),
            refresh_token=data.get("refresh_token"),
            scope=data.get("scope"),
            dpop_key=data.get("dpop_key"),
        )


class TokenStore(Protocol):
    """Persistence for sessions; implementations must be safe to call from several processes.

    The methods are synchronous (keyring's API is); the async flows call them through
    `OffLoopStore`, on a worker thread, because a keychain may block on an unlock prompt."""

    def load(self, key: str) -> StoredSession | None: ...

    def save(self, key: str, session: StoredSession) -> None: ...

    def delete(self, key: str) -> None: ...


@runtime_checkable
class SharedTokenStore(TokenStore, Protocol):
    """A store processes on several machines share (AWS, Vault): it locks a session
    itself, since `session_lock`'s file lock cannot span machines."""

    def lock(self, key: str) -> contextlib.AbstractAsyncContextManager[None]: ...


class MemoryStore:
    """Keeps sessions for the life of the object (tests, the conformance client, one-shot tools)."""

    def __init__(self) -> None:
        self._sessions: dict[str, StoredSession] = {}

    def load(self, key: str) -> StoredSession | None:
        return self._sessions.get(key)

    def save(self, key: str, session: StoredSession) -> None:
        self._sessions[key] = session

    def delete(self, key: str) -> None:
        self._sessions.pop(key, None)


class KeyringStore:
    """One keychain item per session, service "mcpward", user name = `session_key`."""

    def __init__(self, service: str = SERVICE) -> None:
        self.service = service

    def load(self, key: str) -> StoredSession | None:
        import keyring

        text = keyring.get_password(self.service, key)
        return StoredSession.from_json(text) if text else None

    def save(self, key: str, session: StoredSession) -> None:
        import keyring

        keyring.set_password(self.service, key, session.to_json())

    def delete(self, key: str) -> None:
        import keyring
        from keyring.errors import PasswordDeleteError

        with contextlib.suppress(PasswordDeleteError):
            keyring.delete_password(self.service, key)


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "mcpward"


class FileStore:
    """A JSON file only its owner can read (0600), replaced atomically on every write."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or state_dir() / "credentials.json"

    def _read(self) -> dict[str, str]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        with os.fdopen(fd) as f:
            if os.fstat(f.fileno()).st_mode & 0o077:
                os.fchmod(f.fileno(), 0o600)
                logger.warning("%s was readable by others; made it private (0600)", self.path)
            data: dict[str, str] = json.load(f)
            return data

    def _write(self, data: dict[str, str]) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".credentials.")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def load(self, key: str) -> StoredSession | None:
        text = self._read().get(key)
        return StoredSession.from_json(text) if text else None

    def save(self, key: str, session: StoredSession) -> None:
        with _file_lock(self.path.with_name(".credentials.lock")):
            data = self._read()
            data[key] = session.to_json()
            self._write(data)

    def delete(self, key: str) -> None:
        with _file_lock(self.path.with_name(".credentials.lock")):
            data = self._read()
            if data.pop(key, None) is not None:
                self._write(data)


@contextlib.contextmanager
def _file_lock(path: Path) -> Any:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def keyring_usable() -> bool:
    try:
        import keyring
        from keyring.backends import fail
    except ImportError:
        return False
    backend = keyring.get_keyring()
    if isinstance(backend, fail.Keyring):
        return False
    # The chainer with nothing to chain behaves like the fail backend.
    return not (hasattr(backend, "backends") and not backend.backends)


_fallback_announced = False


def default_store() -> TokenStore:
    global _fallback_announced
    if keyring_usable():
        return KeyringStore()
    store = FileStore()
    if not _fallback_announced:
        _fallback_announced = True
        logger.warning(
            "no OS keychain available; keeping sign-in sessions in %s (readable only by you)",
            store.path,
        )
    return store


class OffLoopStore:
    """A `TokenStore` for coroutines: each call runs on a worker thread, so a keychain that
    waits for the user to unlock it (or a slow D-Bus) never stalls the event loop."""

    def __init__(self, store: TokenStore) -> None:
        self.store = store

    async def load(self, key: str) -> StoredSession | None:
        return await asyncio.to_thread(self.store.load, key)

    async def save(self, key: str, session: StoredSession) -> None:
        await asyncio.to_thread(self.store.save, key, session)

    async def delete(self, key: str) -> None:
        await asyncio.to_thread(self.store.delete, key)

    async def load_or_adopt(
        self, key: str, legacy_key: str, issuer: str | None
    ) -> StoredSession | None:
        """The session at ``key``. Releases before SEP-2352 keyed a session by the MCP
        server's URL alone (``legacy_key``): take it over if it belongs to this very
        ``issuer``, and leave it otherwise."""
        stored = await self.load(key)
        if stored is not None or issuer is None:
            return stored
        legacy = await self.load(legacy_key)
        if legacy is None or legacy.registration.issuer != issuer:
            return None
        await self.save(key, legacy)
        await self.delete(legacy_key)
        return legacy


@contextlib.asynccontextmanager
async def session_lock(
    key: str, lock_dir: Path | None = None, store: TokenStore | None = None
) -> AsyncIterator[None]:
    """Held across "read refresh token → refresh → store the new one", so that two processes
    signed in to the same server never both spend one refresh token (rotation would revoke
    the family). Polls a non-blocking flock so the event loop keeps running."""
    if isinstance(store, SharedTokenStore):
        async with store.lock(key):
            yield
        return
    directory = lock_dir or state_dir() / "locks"
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    name = hashlib.sha256(key.encode()).hexdigest()[:32]
    fd = os.open(directory / f"{name}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                await asyncio.sleep(0.02)
        yield
    finally:
        os.close(fd)
