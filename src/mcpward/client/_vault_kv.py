"""Vault KV version 2 for clients: an agent's secret read from it, and sessions kept in it.

`VaultSecret` is a `SecretSource` read at every token request and again after
``invalid_client``, so the secret mcpward's rotation writes (``secret_sink = "vault:…"``)
reaches a running agent without a restart. `VaultStore` is a `TokenStore` that processes
on several machines can share; every write is a check-and-set (see `_shared_store`).

Both take an ``hvac.Client``, or build one from Vault's standard environment (VAULT_ADDR,
VAULT_TOKEN, VAULT_CACERT, VAULT_NAMESPACE) on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mcpward._secret_stores.vault import VaultKv
from mcpward.client._shared_store import Doc, SharedStore

if TYPE_CHECKING:
    import hvac


class VaultSecret:
    """One field (``client_secret`` by default, as mcpward's rotation writes it) of the
    latest version at ``path`` in the KV v2 engine mounted at ``mount_point``."""

    def __init__(
        self,
        path: str,
        *,
        mount_point: str = "secret",
        field: str = "client_secret",
        client: hvac.Client | None = None,
    ) -> None:
        self.path = path
        self.field = field
        self._kv = VaultKv(mount_point, client)

    def read(self) -> str:
        where = f"Vault secret {self._kv.where(self.path)}"
        latest = self._kv.read(self.path)
        if latest.data is None:
            raise LookupError(f"{where} does not exist")
        value = latest.data.get(self.field)
        if not isinstance(value, str) or not value.strip():
            raise LookupError(f"{where} has no field {self.field!r}")
        return value.strip()

    def __repr__(self) -> str:
        return f"VaultSecret({self._kv.where(self.path)!r}, field={self.field!r})"


class _VaultDocuments:
    def __init__(self, kv: VaultKv) -> None:
        self._kv = kv

    def read(self, name: str) -> tuple[Doc | None, str | None]:
        latest = self._kv.read(name)
        return latest.data, str(latest.version) if latest.version else None

    def write(self, name: str, doc: Doc, after: str | None) -> str:
        return str(self._kv.write(name, doc, cas=int(after or 0)))


class VaultStore(SharedStore):
    """Sessions (client registration + refresh token) as one KV v2 path each under
    ``prefix``."""

    def __init__(
        self,
        prefix: str = "mcpward/sessions",
        *,
        mount_point: str = "secret",
        client: hvac.Client | None = None,
    ) -> None:
        super().__init__(_VaultDocuments(VaultKv(mount_point, client)), prefix)
