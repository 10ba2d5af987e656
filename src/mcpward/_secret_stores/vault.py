"""Vault's KV version 2 secrets engine through hvac: every write is a new version, and
every write here is a check-and-set (``options.cas``) on the version that was read, so
two writers never overwrite each other unnoticed.

The address, token and TLS settings come from Vault's standard environment (VAULT_ADDR,
VAULT_TOKEN or ~/.vault-token, VAULT_CACERT, VAULT_NAMESPACE); pass an ``hvac.Client`` to
choose otherwise (AppRole, Kubernetes auth ...).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mcpward._secret_stores import SecretStoreError, StoreConflict, import_extra

if TYPE_CHECKING:
    import hvac

T = TypeVar("T")


@dataclass(frozen=True)
class Document:
    """The latest version of a path: ``data`` is None when it was never written (version
    0) or its latest version is deleted."""

    data: dict[str, Any] | None = field(repr=False)
    version: int


class VaultKv:
    def __init__(self, mount_point: str = "secret", client: hvac.Client | None = None) -> None:
        self.mount_point = mount_point.strip("/")
        self._client = client

    @property
    def client(self) -> hvac.Client:
        if self._client is None:
            module = import_extra("hvac", "vault")
            self._client = module.Client(namespace=os.environ.get("VAULT_NAMESPACE"))
        return self._client

    def where(self, path: str) -> str:
        return f"{self.mount_point}/data/{path}"

    def read(self, path: str) -> Document:
        exceptions = import_extra("hvac.exceptions", "vault")

        def call() -> dict[str, Any]:
            got: dict[str, Any] = self.client.secrets.kv.v2.read_secret_version(
                path, mount_point=self.mount_point, raise_on_deleted_version=False
            )
            return got

        try:
            got = self._call("read", path, call)
        except exceptions.InvalidPath as exc:
            if exc.errors:  # "no handler for route": the mount is not there
                raise self._no_mount() from None
            return Document(None, 0)
        return Document(got["data"]["data"], int(got["data"]["metadata"]["version"]))

    def write(self, path: str, data: dict[str, Any], cas: int) -> int:
        """Write a new version if ``cas`` is still the latest one (0: nothing written yet);
        returns the new version's number, or raises StoreConflict."""
        exceptions = import_extra("hvac.exceptions", "vault")

        def call() -> dict[str, Any]:
            written: dict[str, Any] = self.client.secrets.kv.v2.create_or_update_secret(
                path, secret=data, cas=cas, mount_point=self.mount_point
            )
            return written

        try:
            written = self._call("write", path, call)
        except exceptions.InvalidPath:
            raise self._no_mount() from None
        return int(written["data"]["version"])

    def _no_mount(self) -> SecretStoreError:
        return SecretStoreError(f"Vault has no KV version 2 engine mounted at {self.mount_point}/")

    def _call(self, operation: str, path: str, call: Callable[[], T]) -> T:
        """hvac's and requests' errors as SecretStoreError naming the path, never a value;
        InvalidPath (404) is left to the caller, where it means different things."""
        hvac_errors = import_extra("hvac.exceptions", "vault")
        requests = import_extra("requests", "vault")
        where = self.where(path)
        try:
            return call()
        except hvac_errors.InvalidPath:
            raise
        except hvac_errors.Forbidden:
            raise SecretStoreError(
                f"Vault denied {operation} on {where}: the token's policy must grant it"
            ) from None
        except hvac_errors.InvalidRequest as exc:
            errors = "; ".join(exc.errors or [])
            if "check-and-set" in errors:
                raise StoreConflict(f"Vault: {where} was changed by another writer") from None
            raise SecretStoreError(f"Vault refused {operation} on {where}: {errors}") from None
        except hvac_errors.VaultDown:
            raise SecretStoreError(
                f"Vault is sealed or unavailable ({operation} {where})"
            ) from None
        except hvac_errors.VaultError as exc:
            raise SecretStoreError(
                f"Vault {operation} on {where} failed: {type(exc).__name__}"
            ) from None
        except requests.RequestException as exc:
            raise SecretStoreError(
                f"cannot reach Vault for {operation} on {where}: {type(exc).__name__}"
            ) from None
