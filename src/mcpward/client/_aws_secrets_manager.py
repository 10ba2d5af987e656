"""AWS Secrets Manager for clients: an agent's secret read from it, and sessions kept in it.

`AwsSecret` is a `SecretSource`: read at every token request and again after the server
answers ``invalid_client``, so the secret mcpward's rotation puts there (``secret_sink =
"aws-sm:…"``) reaches a running agent without a restart. `AwsSecretsManagerStore` is a
`TokenStore` that processes on several machines can share (see `_shared_store`).

Both take a boto3 ``secretsmanager`` client, or build one from the standard AWS
configuration (region, credentials, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``) on first use.
"""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from mcpward._secret_stores import SecretStoreError, StoreConflict
from mcpward._secret_stores.aws import CURRENT, AwsSecrets
from mcpward.client._shared_store import Doc, Lease, SharedStore

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient


class AwsSecret:
    """One secret's current value, or a field of it when the value is a JSON object
    (``client_secret`` by default, as mcpward's rotation writes it; ``field=None`` for a
    plain string such as a PEM key)."""

    def __init__(
        self,
        secret_id: str,
        *,
        field: str | None = "client_secret",
        stage: str = CURRENT,
        client: SecretsManagerClient | None = None,
    ) -> None:
        self.secret_id = secret_id
        self.field = field
        self.stage = stage
        self._store = AwsSecrets(client)

    def read(self) -> str:
        version = self._store.read(self.secret_id, self.stage)
        if version is None:
            raise LookupError(f"AWS secret {self.secret_id} has no {self.stage} version")
        return field_of(version.value, self.field, f"AWS secret {self.secret_id}")

    def __repr__(self) -> str:
        return f"AwsSecret({self.secret_id!r}, field={self.field!r}, stage={self.stage!r})"


class _AwsDocuments:
    def __init__(self, store: AwsSecrets) -> None:
        self._store = store

    def read(self, name: str) -> tuple[Doc | None, str | None]:
        version = self._store.read(name)
        if version is None:
            return None, None
        return json.loads(version.value), version.version_id

    def write(self, name: str, doc: Doc, after: str | None) -> str:
        return self._store.put_successor(name, json.dumps(doc), after)


class AwsSecretsManagerStore(SharedStore):
    """Sessions (client registration + refresh token) as one secret each under
    ``prefix``; each save is a new version whose id follows from the one it replaces.

    AWS asks for no more than one new version per secret every 10 minutes or so (it keeps
    every version younger than a day, up to a quota), so the lease is not a version of
    its own but a staging label ``mcpward-lock-UNTIL-HOLDER`` on the current version: a
    process attaches its label, then looks again, and backs off if another live lock
    label is there too; the save that follows is the one new version of a refresh.
    """

    def __init__(
        self, prefix: str = "mcpward/sessions", *, client: SecretsManagerClient | None = None
    ) -> None:
        self._aws = AwsSecrets(client)
        super().__init__(_AwsDocuments(self._aws), prefix)

    def _try_acquire(self, name: str, holder: str) -> Lease | None:
        doc, version = self._docs.read(name)
        if version is None:  # a label needs a version to hang on: write an empty one
            with contextlib.suppress(StoreConflict):
                self._docs.write(name, {"session": None, "lease": None}, None)
            return None
        if self._locked(name, version):
            return None
        label = f"{_LOCK}{int(self._clock() + self.lease_ttl)}-{holder[:16]}"
        self._aws.add_label(name, label, version)
        if self._locked(name, version, mine=label):  # another process attached one too
            self._drop_label(name, label, version)
            return None
        return Lease(name, holder, version, doc or {}, label=label)

    def _locked(self, name: str, version: str | None, mine: str | None = None) -> bool:
        if version is None:
            return False
        labels = (self._aws.stages(name) or {}).get(version, [])
        if CURRENT not in labels:
            return True  # a newer version was written since it was read
        live = False
        for label in labels:
            if label.startswith(_LOCK) and label != mine:
                if _until(label) > self._clock():
                    live = True
                else:  # left by a crashed process
                    self._drop_label(name, label, version)
        return live

    def _release(self, lease: Lease) -> None:
        if lease.label is not None and lease.version is not None:
            self._drop_label(lease.name, lease.label, lease.version)

    def _saved(self, lease: Lease, previous: str | None) -> None:
        # A label keeps a version from ever being cleaned up: take it off the old one.
        if lease.label is not None and previous is not None:
            self._drop_label(lease.name, lease.label, previous)

    def _drop_label(self, name: str, label: str, version: str) -> None:
        with contextlib.suppress(SecretStoreError):  # gone already
            self._aws.remove_label(name, label, version)


_LOCK = "mcpward-lock-"


def _until(label: str) -> float:
    try:
        return float(label.removeprefix(_LOCK).split("-")[0])
    except ValueError:
        return 0.0


def field_of(value: str, field: str | None, where: str) -> str:
    """The secret itself: the whole value, or one field of a JSON object."""
    if field is None:
        text = value.strip()
    else:
        try:
            parsed: Any = json.loads(value)
        except ValueError:
            parsed = None
        text = parsed.get(field, "") if isinstance(parsed, dict) else ""
        if not isinstance(text, str) or not text:
            raise LookupError(f"{where} has no field {field!r}")
    if not text:
        raise LookupError(f"{where} is empty")
    return text
