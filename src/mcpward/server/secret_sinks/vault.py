"""Vault KV version 2: one path per client (``vault:secret/mcpward/clients/{client_id}``:
mount ``secret``, path ``mcpward/clients/{client_id}``), whose data is
``{"client_id", "client_secret", "expires_at"}``.

KV v2 has no labels, so a new secret is staged in a version that still carries the
current secret plus ``pending_client_secret`` / ``pending_expires_at``, and promoted by a
version holding only the new one; earlier versions keep the old secret readable
(``max_versions``, 10 by default, covers five rotations). Every write is a check-and-set
on the version read before it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mcpward._secret_stores.vault import VaultKv
from mcpward.server.secret_sinks._base import Staged, name_for

DEFAULT_TEMPLATE = "mcpward/clients/{client_id}"
_PENDING = ("pending_client_secret", "pending_expires_at")


class VaultSink:
    def __init__(self, kv: VaultKv, template: str = DEFAULT_TEMPLATE) -> None:
        self.kv = kv
        self.template = template

    @classmethod
    def from_spec(cls, spec: str) -> VaultSink:
        """``MOUNT/PATH-TEMPLATE``; the first segment is the engine's mount point."""
        mount, _, template = spec.strip("/").partition("/")
        if not mount or not template:
            raise ValueError("secret_sink vault: needs MOUNT/PATH, e.g. vault:secret/mcpward")
        return cls(VaultKv(mount), template)

    readback = True

    def path(self, client_id: str) -> str:
        return name_for(self.template, client_id)

    async def current(self, client_id: str) -> str | None:
        latest = await asyncio.to_thread(self.kv.read, self.path(client_id))
        secret = (latest.data or {}).get("client_secret")
        return secret if isinstance(secret, str) else None

    async def stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        return await asyncio.to_thread(self._stage, client_id, secret, expires_at)

    def _stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        path = self.path(client_id)
        current = self.kv.read(path)
        data: dict[str, Any] = {**(current.data or {}), "client_id": client_id}
        data.update(pending_client_secret=secret, pending_expires_at=int(expires_at))
        version = self.kv.write(path, data, cas=current.version)
        return Staged(client_id, secret, expires_at, str(version))

    async def promote(self, staged: Staged) -> None:
        data = {
            "client_id": staged.client_id,
            "client_secret": staged.secret,
            "expires_at": int(staged.expires_at),
        }
        path = self.path(staged.client_id)
        await asyncio.to_thread(self.kv.write, path, data, int(staged.version))

    async def staged(self, client_id: str) -> Staged | None:
        latest = await asyncio.to_thread(self.kv.read, self.path(client_id))
        data = latest.data or {}
        if not isinstance(data.get("pending_client_secret"), str):
            return None
        expires_at = float(data.get("pending_expires_at") or 0)
        return Staged(client_id, data["pending_client_secret"], expires_at, str(latest.version))

    async def discard(self, staged: Staged) -> None:
        await asyncio.to_thread(self._discard, staged)

    def _discard(self, staged: Staged) -> None:
        path = self.path(staged.client_id)
        latest = self.kv.read(path)
        kept = {k: v for k, v in (latest.data or {}).items() if k not in _PENDING}
        self.kv.write(path, kept, int(staged.version))
