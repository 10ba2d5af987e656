"""Client registry: pre-registered clients, their secrets and the 90-day rotation cycle.

Client lookups are cached for ``cache_ttl`` seconds because the token endpoint reads the
client on every request. Disabling a client invalidates this process's cache at once; other
replicas notice within ``cache_ttl``, which is why a client revocation is recorded as
reaching ``cache_ttl`` into the future (see :meth:`ClientRegistry.disable`).
"""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

from mcpward._clock import Clock
from mcpward._secrets import credential_hash, hint, is_well_formed, new_credential
from mcpward.storage.contracts import ClientStore
from mcpward.storage.records import AUTH_METHODS, GRANT_TYPES, ClientRecord, SecretRecord

__all__ = ["AUTH_METHODS", "GRANT_TYPES", "ClientRegistry", "MetadataResolver", "NewSecret"]

# Client ID Metadata Documents are resolved by a separate component (server/_cimd.py).
MetadataResolver = Callable[[str], Awaitable[ClientRecord | None]]


@dataclass(frozen=True, slots=True)
class NewSecret:
    client_id: str
    secret: str = field(repr=False)  # never in a traceback's or a log's repr
    expires_at: float


class ClientRegistry:
    def __init__(
        self,
        store: ClientStore,
        clock: Clock,
        *,
        secret_lifetime: float,
        secret_overlap: float,
        cache_ttl: float = 2.0,
        metadata_resolver: MetadataResolver | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self.secret_lifetime = secret_lifetime
        self.secret_overlap = secret_overlap
        self.cache_ttl = cache_ttl
        self._cache: dict[str, tuple[float, ClientRecord | None, list[SecretRecord]]] = {}
        self._inflight: dict[
            str, asyncio.Future[tuple[ClientRecord | None, list[SecretRecord]]]
        ] = {}
        # Client ID Metadata Documents (server/_cimd.py), when enabled.
        self._metadata_resolver = metadata_resolver

    # -- lookups -----------------------------------------------------------------------

    async def get(self, client_id: str) -> ClientRecord | None:
        return (await self._cached(client_id))[0]

    async def _cached(self, client_id: str) -> tuple[ClientRecord | None, list[SecretRecord]]:
        hit = self._cache.get(client_id)
        if hit is not None and hit[0] > self._clock():
            return hit[1], hit[2]
        # One lookup per client at a time: when an entry expires under load, the requests
        # that find it stale wait for the same query instead of each sending their own.
        pending = self._inflight.get(client_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(client_id))
            self._inflight[client_id] = pending
            pending.add_done_callback(lambda _: self._inflight.pop(client_id, None))
        return await asyncio.shield(pending)

    async def _load(self, client_id: str) -> tuple[ClientRecord | None, list[SecretRecord]]:
        client = await self._store.get(client_id)
        resolver = self._metadata_resolver
        if client is None and resolver is not None and client_id.startswith("https://"):
            client = await resolver(client_id)
        secrets = await self._store.secrets(client_id) if client is not None else []
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[client_id] = (self._clock() + self.cache_ttl, client, secrets)
        return client, secrets

    def invalidate(self, client_id: str) -> None:
        self._cache.pop(client_id, None)
        self._inflight.pop(client_id, None)

    async def check_secret(self, client_id: str, presented: str) -> bool:
        """Constant-time comparison against every secret still within its validity."""
        if not is_well_formed(presented, "cs"):
            return False
        _, secrets = await self._cached(client_id)
        now = self._clock()
        presented_hash = credential_hash(presented)
        ok = False
        for record in secrets:
            match = hmac.compare_digest(record.secret_hash, presented_hash)
            ok |= match and record.expires_at > now
        return ok

    # -- changes -----------------------------------------------------------------------

    async def create(self, client: ClientRecord) -> NewSecret | None:
        """Store a client; confidential clients using a shared secret get one, returned
        here once and stored only as a hash."""
        now = self._clock()
        client = replace(client, created_at=now)
        secret: str | None = None
        expires_at = now + self.secret_lifetime
        if client.token_endpoint_auth_method in ("client_secret_basic", "client_secret_post"):
            secret = new_credential("cs")
            await self._store.create(client, (credential_hash(secret), hint(secret), expires_at))
        else:
            await self._store.create(client)
        self.invalidate(client.client_id)
        return NewSecret(client.client_id, secret, expires_at) if secret else None

    def new_secret(self, client_id: str) -> NewSecret:
        """A fresh secret and its expiry, not stored yet: automated rotation hands it to
        the secret store before committing it (server/secret_rotation.py)."""
        return NewSecret(client_id, new_credential("cs"), self._clock() + self.secret_lifetime)

    async def rotate_secret(
        self, client_id: str, overlap: float | None = None, *, secret: NewSecret | None = None
    ) -> NewSecret:
        """Store a new secret (``secret``, or a fresh one); the old ones keep working for
        the overlap window."""
        now = self._clock()
        secret = secret or self.new_secret(client_id)
        await self._store.rotate_secret(
            client_id,
            new_hash=credential_hash(secret.secret),
            hint=hint(secret.secret),
            now=now,
            expires_at=secret.expires_at,
            old_valid_until=now + (self.secret_overlap if overlap is None else overlap),
        )
        self.invalidate(client_id)
        return secret

    async def due_for_rotation(self, within: float) -> list[str]:
        """Clients whose newest secret expires within ``within`` seconds (or has expired).

        With the default 7-day overlap, calling this with ``within`` = the overlap means
        the new secret exists before the old one dies, so no deployment breaks."""
        horizon = self._clock() + within
        expiries = await self._store.newest_secret_expiry()
        return sorted(cid for cid, expires in expiries.items() if expires <= horizon)

    async def disable(self, client_id: str) -> bool:
        now = self._clock()
        changed = await self._store.set_disabled(client_id, now)
        if not changed and client_id.startswith("https://"):
            # A metadata-document client has no row of its own: a disabled one blocks it,
            # since stored clients are looked up before documents are fetched.
            await self._store.create(
                ClientRecord(
                    client_id=client_id,
                    name=client_id,
                    source="cimd",
                    token_endpoint_auth_method="none",
                    grant_types=(),
                    redirect_uris=(),
                    created_at=now,
                    disabled_at=now,
                )
            )
            changed = True
        self.invalidate(client_id)
        return changed
