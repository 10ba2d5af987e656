"""Signing keys: generation, encryption at rest, rotation and the published JWKS.

Rotation follows the rule that no verifier is ever surprised:

- a new key is published at ``created_at`` and signs only from ``active_at`` (later by
  ``signing_key_publish_lead``, so guards' JWKS caches have picked it up);
- the key it replaces stops signing at that moment and stays published until every token
  it signed has expired (``published_until`` = retirement + access-token lifetime + leeway).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from joserfc.jwk import ECKey, OKPKey

from mcpward._clock import Clock
from mcpward._secrets import new_id
from mcpward.server._crypto import DataKey
from mcpward.storage.contracts import KeyStore
from mcpward.storage.records import SigningAlg, SigningKeyRecord

AnyKey = ECKey | OKPKey


@dataclass(frozen=True, slots=True)
class ActiveKey:
    kid: str
    alg: SigningAlg
    key: AnyKey


def _generate(alg: SigningAlg) -> AnyKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256", private=True)
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519", private=True)
    raise ValueError(f"unsupported signing algorithm {alg}")


def _import(alg: str, jwk: dict[str, Any]) -> AnyKey:
    return ECKey.import_key(jwk) if alg == "ES256" else OKPKey.import_key(jwk)


class KeyRing:
    """The keys this server signs with and publishes, reloaded from storage on demand so
    that replicas follow a rotation done elsewhere."""

    def __init__(
        self,
        store: KeyStore,
        data_key: DataKey,
        clock: Clock,
        *,
        alg: SigningAlg,
        publish_lead: float,
        token_lifetime: float,
        leeway: float,
    ) -> None:
        self._store = store
        self._data_key = data_key
        self._clock = clock
        self.alg = alg
        self.publish_lead = publish_lead
        self.token_lifetime = token_lifetime
        self.leeway = leeway
        self._records: list[SigningKeyRecord] = []
        self._private: dict[str, AnyKey] = {}
        self._public: dict[str, AnyKey] = {}

    async def load(self) -> None:
        records = await self._store.all()
        for rec in records:
            if rec.kid not in self._private:
                context = f"signing-key:{rec.kid}"
                jwk = json.loads(self._data_key.decrypt(rec.private_jwk_enc, context))
                self._private[rec.kid] = _import(rec.alg, jwk)
                self._public[rec.kid] = _import(rec.alg, rec.public_jwk)
        self._records = records

    async def ensure_one(self) -> None:
        """First start: a key that signs at once (nothing can have cached an older JWKS)."""
        await self.load()
        if not self._records:
            await self.rotate(immediate=True)

    async def rotate(self, *, immediate: bool = False) -> SigningKeyRecord:
        now = self._clock()
        active_at = now if immediate else now + self.publish_lead
        key = _generate(self.alg)
        kid = new_id(12)
        private = key.as_dict(private=True)
        public = key.as_dict(private=False)
        public.update({"kid": kid, "alg": self.alg, "use": "sig"})
        record = SigningKeyRecord(
            kid=kid,
            alg=self.alg,
            public_jwk=public,
            private_jwk_enc=self._data_key.encrypt(
                json.dumps(private).encode(), f"signing-key:{kid}"
            ),
            created_at=now,
            active_at=active_at,
        )
        await self._store.add(record)
        # Keys still signing hand over at active_at, then stay published for their tokens.
        for old in self._records:
            if old.retired_at is None:
                await self._store.retire(
                    old.kid, active_at, active_at + self.token_lifetime + self.leeway
                )
        await self.load()
        return record

    def signing_key(self) -> ActiveKey:
        now = self._clock()
        candidates = [
            r
            for r in self._records
            if r.active_at <= now and (r.retired_at is None or r.retired_at > now)
        ]
        if not candidates:
            raise RuntimeError("no signing key is active; run `mcpward keys rotate`")
        newest = max(candidates, key=lambda r: r.active_at)
        return ActiveKey(newest.kid, newest.alg, self._private[newest.kid])

    def public_key(self, kid: str) -> AnyKey | None:
        record = next((r for r in self._records if r.kid == kid), None)
        if record is None or not self._is_published(record):
            return None
        return self._public[kid]

    def records(self) -> list[SigningKeyRecord]:
        return list(self._records)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [dict(r.public_jwk) for r in self._records if self._is_published(r)]}

    def _is_published(self, record: SigningKeyRecord) -> bool:
        return record.published_until is None or record.published_until > self._clock()
