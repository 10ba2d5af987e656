"""A `TokenStore` on a secret store that processes on several machines share (AWS Secrets
Manager, Vault KV v2), with the guarantee the file store gives on one machine: two
processes never both spend one refresh token.

A file lock cannot span machines, so the lock is a lease kept in the store and taken
with its conditional writes. Here (Vault) the lease is written into the session's own
document, ``{"session": ..., "lease": {"holder", "until"}}``: taking it, and the save that
releases it, are each a check-and-set on the version just read, so of two processes only
one holds the lease; the other waits until it is released (with the rotated refresh
token) or expires (``lease_ttl``, after a crash). `AwsSecretsManagerStore` keeps the
lease in a staging label instead, since AWS limits how many versions a secret may gain a
day. Expiry compares wall clocks of different machines, so ``lease_ttl`` is far above
any refresh request and any sane clock skew.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from mcpward._secret_stores import SecretStoreError, StoreConflict
from mcpward.client._token_store import StoredSession

Doc = dict[str, Any]


class Documents(Protocol):
    """JSON documents by name with conditional writes; versions are opaque strings."""

    def read(self, name: str) -> tuple[Doc | None, str | None]:
        """The latest document and its version; (None, None) if never written."""
        ...

    def write(self, name: str, doc: Doc, after: str | None) -> str:
        """Write if ``after`` is still the latest version, else raise StoreConflict."""
        ...


@dataclass
class Lease:
    """A held lease: the version it was taken on, which the save must follow."""

    name: str
    holder: str
    version: str | None
    doc: Doc
    released: bool = False
    label: str | None = None  # AWS: the staging label that holds it

    def saved(self, version: str, doc: Doc) -> None:
        """The save that releases the lease wrote ``doc`` as ``version``."""
        self.version, self.doc, self.released = version, doc, True


# The leases this task holds, by (store, key): save() inside `lock()` writes on the lease's
# version. A context variable, because save() may run in a worker thread
# (asyncio.to_thread copies the context) and must not see another task's lease.
_held: ContextVar[dict[tuple[int, str], Lease] | None] = ContextVar(
    "mcpward_store_leases", default=None
)


def secret_name(prefix: str, key: str) -> str:
    """A readable, store-safe name for a session key (an MCP server URL)."""
    readable = "".join(c if c.isascii() and c.isalnum() else "-" for c in key)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return f"{prefix.rstrip('/')}/{readable.strip('-')[:64]}-{digest}"


class SharedStore:
    """Sessions as documents, one per key; see the module docstring for the lock."""

    lease_ttl = 60.0
    poll_interval = 0.05

    def __init__(
        self,
        documents: Documents,
        prefix: str,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._docs = documents
        self.prefix = prefix
        self._clock = clock

    def name(self, key: str) -> str:
        return secret_name(self.prefix, key)

    # -- TokenStore --------------------------------------------------------------------

    def load(self, key: str) -> StoredSession | None:
        lease = self._lease(key)
        doc = lease.doc if lease is not None else self._docs.read(self.name(key))[0]
        session = (doc or {}).get("session")
        return StoredSession.from_json(json.dumps(session)) if session else None

    def save(self, key: str, session: StoredSession) -> None:
        self._put(key, json.loads(session.to_json()))

    def delete(self, key: str) -> None:
        # A tombstone rather than deleting the secret: AWS keeps a deleted name reserved
        # for its recovery window, and the version chain keeps check-and-set working.
        self._put(key, None)

    # -- the lock ----------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lock(self, key: str) -> AsyncIterator[None]:
        """Hold the session's lease across "read refresh token -> refresh -> save"."""
        holder = uuid.uuid4().hex
        while True:  # the store has no change notification: poll it
            lease = await asyncio.to_thread(self._try_acquire, self.name(key), holder)
            if lease is not None:
                break
            # Jitter, so that two processes backing off from each other do not collide
            # again in step.
            await asyncio.sleep(self.poll_interval * (1 + random.random()))  # noqa: S311
        token = _held.set({**(_held.get() or {}), (id(self), key): lease})
        try:
            yield
        finally:
            _held.reset(token)
            if not lease.released:
                await asyncio.to_thread(self._release, lease)

    def _lease(self, key: str) -> Lease | None:
        return (_held.get() or {}).get((id(self), key))

    def _try_acquire(self, name: str, holder: str) -> Lease | None:
        """Take the lease, or None when another process holds it (or won a race)."""
        doc, version = self._docs.read(name)
        if self._leased_to_another(doc):
            return None
        leased = {"session": (doc or {}).get("session"), "lease": self._new_lease(holder)}
        try:
            new_version = self._docs.write(name, leased, version)
        except StoreConflict:
            return None
        return Lease(name, holder, new_version, leased)

    def _release(self, lease: Lease) -> None:
        """Give the lease up without saving (the refresh failed)."""
        with contextlib.suppress(StoreConflict):  # expired and taken over meanwhile
            self._docs.write(lease.name, {**lease.doc, "lease": None}, lease.version)

    def _saved(self, lease: Lease, previous: str | None) -> None:
        """After the save that released ``lease`` (AWS clears its label)."""

    def _put(self, key: str, session: Doc | None) -> None:
        lease = self._lease(key)
        doc: Doc = {"session": session, "lease": None}
        if lease is not None:
            previous = lease.version
            try:
                lease.saved(self._docs.write(lease.name, doc, lease.version), doc)
            except StoreConflict:
                raise SecretStoreError(
                    f"the lease on {lease.name} expired and another process took it; "
                    "this session's refresh token may have been spent twice"
                ) from None
            self._saved(lease, previous)
            return
        # Outside lock(): wait out another holder's lease, then write conditionally.
        name = self.name(key)
        while True:
            current, version = self._docs.read(name)
            if self._leased_to_another(current) or self._locked(name, version):
                time.sleep(self.poll_interval)
                continue
            with contextlib.suppress(StoreConflict):
                self._docs.write(name, doc, version)
                return

    def _locked(self, name: str, version: str | None) -> bool:
        """Whether a lease kept outside the document holds ``version`` (AWS)."""
        return False

    def _new_lease(self, holder: str) -> Doc:
        return {"holder": holder, "until": self._clock() + self.lease_ttl}

    def _leased_to_another(self, doc: Doc | None) -> bool:
        lease = (doc or {}).get("lease")
        return isinstance(lease, dict) and float(lease.get("until", 0)) > self._clock()
