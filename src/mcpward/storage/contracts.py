"""What the authorization server needs from storage, one Protocol per concern.

The SQL backend (``storage/sql``, SQLite and PostgreSQL) is one implementation. Another
backend implements these Protocols in one module and hands a :class:`Store` to the
composition root (``mcpward.compose``); nothing else changes. The contracts that matter
for security are stated on the methods: which steps must be atomic, and what a second,
concurrent caller sees.

Times are seconds since the epoch (``float``), as the clock gives them.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any, Protocol

from mcpward.storage.records import (
    CachedDocument,
    ClientRecord,
    CodeRecord,
    ConsentRecord,
    FamilyRecord,
    RefreshRecord,
    ResourceRecord,
    Revocation,
    RevocationKind,
    Rotation,
    SecretRecord,
    SigningKeyRecord,
    UserRecord,
)


class ClientStore(Protocol):
    """Registered clients and their secrets (hashes only)."""

    async def get(self, client_id: str) -> ClientRecord | None: ...

    async def all(self) -> list[ClientRecord]:
        """Every client, oldest first."""
        ...

    async def get_many(self, client_ids: Collection[str]) -> dict[str, ClientRecord]:
        """The stored clients among ``client_ids``, in one lookup (ids not stored, such as
        metadata-document clients, are absent)."""
        ...

    async def create(
        self, record: ClientRecord, secret: tuple[str, str, float] | None = None
    ) -> None:
        """Insert a client and its first secret as ``(hash, hint, expires_at)``, in one
        transaction: a client is never visible without the secret it was created with."""
        ...

    async def set_disabled(self, client_id: str, at: float | None) -> bool:
        """Disable (``at``) or enable (``None``); False when there is no such client."""
        ...

    async def secrets(self, client_id: str) -> list[SecretRecord]:
        """The client's secrets, oldest first, expired ones included."""
        ...

    async def rotate_secret(
        self,
        client_id: str,
        *,
        new_hash: str,
        hint: str,
        now: float,
        expires_at: float,
        old_valid_until: float,
    ) -> None:
        """Add a new secret and cut every live older one down to ``old_valid_until``, in
        one transaction (never a moment with neither the old nor the new one valid)."""
        ...

    async def newest_secret_expiry(self) -> dict[str, float]:
        """client_id -> expiry of its newest secret, for enabled clients that have one."""
        ...


class GrantStore(Protocol):
    """Authorization codes, refresh-token families, the revocations log and client
    assertion ``jti`` replay records.

    Every check-then-act step below is atomic: of two concurrent callers presenting the
    same code or refresh token, exactly one succeeds and the other sees the effect."""

    async def save_code(self, record: CodeRecord) -> None: ...

    async def get_code(self, code_hash: str) -> CodeRecord | None: ...

    async def burn_code(self, code_hash: str, now: float) -> None:
        """Spend a code without issuing anything (a failed PKCE or redirect check)."""
        ...

    async def redeem_code(
        self, code_hash: str, now: float, family: FamilyRecord, refresh: RefreshRecord | None
    ) -> bool:
        """Mark the code used and create its family (and first refresh token) in one
        atomic step, only if the code is unused. False, and nothing written, when it was
        already used: a concurrent redemption of the same code gets False."""
        ...

    async def revoke_family_of_code(
        self, code_hash: str, now: float, reason: str, expires_at: float
    ) -> Revocation | None:
        """Revoke the family a (replayed) code created and log the revocation, in one
        transaction; None when the code created none or it was already revoked."""
        ...

    async def get_refresh(self, token_hash: str) -> tuple[RefreshRecord, FamilyRecord] | None: ...

    async def rotate_refresh(
        self,
        old_hash: str,
        now: float,
        new: RefreshRecord,
        successor_enc: bytes | None = None,
        successor_until: float | None = None,
    ) -> Rotation:
        """Rotate a refresh token, in one atomic step that either happens whole or not
        at all; of any number of concurrent callers presenting ``old_hash`` (on one
        replica or several), exactly one rotates.

        If ``old_hash`` is unspent and its family unrevoked: mark it spent at ``now``,
        insert ``new`` (whose ``parent_hash`` is ``old_hash``), keep ``successor_enc``
        (``new``'s token, encrypted by the caller) on the spent record until
        ``successor_until``, and erase the successor stored on the record ``old_hash``
        was itself rotated from (the chain has moved on: presenting that one again is a
        reuse from now on). Returns ``Rotation(rotated=True)``.

        Otherwise nothing is written, and the result carries the successor stored on the
        spent record when its window is still open at ``now`` and its family unrevoked,
        read after any concurrent rotation of the same token committed: every caller
        that loses a race to the rotation, or retries within the window, finds the
        winner's successor. ``Rotation(rotated=False, successor_enc=None)`` means a reuse.
        """
        ...

    async def revoke_family(
        self, family_id: str, now: float, reason: str, expires_at: float
    ) -> Revocation | None:
        """Revoke the family and log the revocation in one transaction; None when it
        was already revoked (nothing new for guards)."""
        ...

    async def families_of(
        self, *, subject: str | None = None, client_id: str | None = None
    ) -> list[FamilyRecord]: ...

    async def last_issued(self, subject: str) -> dict[tuple[str, str], float]:
        """(client_id, resource) -> when the subject's grant last issued a token (its newest
        refresh token, else the family's creation)."""
        ...

    async def revoke_all(
        self, kind: RevocationKind, key: str, now: float, expires_at: float, reason: str
    ) -> Revocation:
        """Revoke every family of a subject or a client and log a revocation that makes
        guards refuse access tokens issued up to ``now``, in one transaction."""
        ...

    async def add_revocations(self, items: Sequence[Revocation]) -> None:
        """Append to the revocations log (durable before the caller answers)."""
        ...

    async def is_revoked(
        self, *, jti: str, family_id: str | None, subject: str, client_id: str, iat: float
    ) -> bool:
        """The authorization server's own view of the revocations log (introspection)."""
        ...

    async def remember_assertion(self, client_id: str, jti: str, expires_at: float) -> bool:
        """Record a client assertion's ``jti`` atomically; False when this client already
        used it (RFC 7523 §3 replay), also when two requests race with it."""
        ...

    async def purge_expired(self, now: float) -> None:
        """Forget codes, tokens, families, revocations and jtis past their expiry, and
        erase stored refresh-token successors whose retry window has closed."""
        ...


class RevocationLog(Protocol):
    """The revocations log read in order, for guards that poll it (``revocation/table``)."""

    async def revocations_since(
        self, seq: int, *, live_after: float | None = None, limit: int = 1000
    ) -> list[tuple[int, Revocation]]:
        """Entries with a sequence number above ``seq``, in order; with ``live_after``,
        only those that still matter at that time (a first load)."""
        ...


class KeyStore(Protocol):
    """Signing keys; private keys are stored encrypted by the caller."""

    async def all(self) -> list[SigningKeyRecord]:
        """Every key, by ``active_at``."""
        ...

    async def add(self, record: SigningKeyRecord) -> None: ...

    async def retire(self, kid: str, retired_at: float, published_until: float) -> None: ...


class ResourceStore(Protocol):
    """Protected resources (MCP servers) tokens are issued for."""

    async def get(self, uri: str) -> ResourceRecord | None: ...

    async def all(self) -> list[ResourceRecord]: ...

    async def put(self, record: ResourceRecord) -> None:
        """Create or replace, atomically."""
        ...


class SessionStore(Protocol):
    """Sign-in sessions ended on the server (the session itself is a signed cookie)."""

    async def revoke(self, sid: str, expires_at: float, now: float) -> None:
        """End ``sid`` until ``expires_at`` (idempotent)."""
        ...

    async def is_revoked(self, sid: str) -> bool: ...

    async def purge_expired(self, now: float) -> int: ...


class UserStore(Protocol):
    """People who sign in, and what they consented to."""

    async def get(self, user_id: str) -> UserRecord | None: ...

    async def by_username(self, username: str) -> UserRecord | None: ...

    async def by_email(self, email: str) -> list[UserRecord]: ...

    async def by_upstream(self, issuer: str, subject: str) -> UserRecord | None: ...

    async def all(self) -> list[UserRecord]: ...

    async def create(self, record: UserRecord) -> None: ...

    async def set_disabled(self, user_id: str, at: float | None) -> bool: ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool: ...

    async def set_totp_secret(self, user_id: str, encrypted: bytes | None) -> bool: ...

    async def link_upstream(self, user_id: str, issuer: str, subject: str) -> bool:
        """Link an upstream identity; False when it is linked to someone else already."""
        ...

    async def get_consent(
        self, user_id: str, client_id: str, resource: str
    ) -> ConsentRecord | None: ...

    async def put_consent(self, record: ConsentRecord) -> None:
        """Create or replace the consent of (user, client, resource)."""
        ...

    async def consents_of(self, user_id: str) -> list[ConsentRecord]: ...

    async def revoke_consent(self, user_id: str, client_id: str, resource: str) -> bool: ...

    async def forget_consents(self, user_id: str) -> int: ...


class MetadataDocumentStore(Protocol):
    """Validated Client ID Metadata Documents, cached by URL."""

    async def get(self, url: str) -> CachedDocument | None: ...

    async def put(
        self, url: str, document: dict[str, Any], *, fetched_at: float, expires_at: float
    ) -> None:
        """Insert or replace; concurrent writers of one URL do not conflict."""
        ...

    async def delete(self, url: str) -> bool: ...

    async def purge_expired(self, now: float) -> int: ...


class Store(Protocol):
    """Everything the authorization server stores, and the connection's life cycle."""

    @property
    def clients(self) -> ClientStore: ...

    @property
    def grants(self) -> GrantStore: ...

    @property
    def revocation_log(self) -> RevocationLog: ...

    @property
    def keys(self) -> KeyStore: ...

    @property
    def resources(self) -> ResourceStore: ...

    @property
    def sessions(self) -> SessionStore: ...

    @property
    def users(self) -> UserStore: ...

    @property
    def metadata_documents(self) -> MetadataDocumentStore: ...

    async def ping(self) -> None:
        """Raise when storage is unreachable (readiness)."""
        ...

    def is_unavailable(self, exc: BaseException) -> bool:
        """Whether ``exc``, raised by one of these stores, means storage cannot be reached
        now (the caller answers 503 and retries later) rather than a bug."""
        ...

    async def close(self) -> None: ...
