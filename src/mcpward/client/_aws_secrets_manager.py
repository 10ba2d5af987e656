"""AWS Secrets Manager for clients: an agent's secret read from it, and sessions kept in it.

`AwsSecret` is a `SecretSource`: read at every token request and again after the server
answers ``invalid_client``, so the secret mcpward's rotation puts there (``secret_sink =
"aws-sm:…"``) reaches a running agent without a restart. `AwsSecretsManagerStore` is a
`TokenStore` that processes on several machines can share (see `_shared_store`).

Both take a boto3 ``secretsmanager`` client, or build one from the standard AWS
configuration (region, credentials, ``AWS_ENDPOINT_URL_SECRETS_MANAGER``) on first use.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mcpward._secret_stores.aws import CURRENT, AwsSecrets
from mcpward.client._shared_store import Doc, SharedStore

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
    ``prefix``; each save is a new version whose id follows from the one it replaces."""

    def __init__(
        self, prefix: str = "mcpward/sessions", *, client: SecretsManagerClient | None = None
    ) -> None:
        super().__init__(_AwsDocuments(AwsSecrets(client)), prefix)


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
