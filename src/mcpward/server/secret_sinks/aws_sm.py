"""AWS Secrets Manager: one secret per client (``mcpward/clients/{client_id}`` by default),
whose value is ``{"client_id", "client_secret", "expires_at"}`` as JSON.

A new secret is staged as a version labelled AWSPENDING, the label AWS's own rotation
uses for "being rotated to", and promoted by moving AWSCURRENT to it, which moves
AWSPREVIOUS to the version readers had, so the old secret stays readable for the overlap
window. Promotion names the version that was current at staging (``RemoveFromVersionId``),
so a concurrent change of the secret fails it instead of being overwritten.
"""

from __future__ import annotations

import asyncio
import json
import uuid

from mcpward._secret_stores import SecretStoreError
from mcpward._secret_stores.aws import CURRENT, PENDING, AwsSecrets
from mcpward.server.secret_sinks._base import Staged, name_for

DEFAULT_TEMPLATE = "mcpward/clients/{client_id}"


class AwsSecretsManagerSink:
    def __init__(self, template: str = DEFAULT_TEMPLATE, store: AwsSecrets | None = None) -> None:
        self.template = template
        self.store = store or AwsSecrets()

    readback = True

    def name(self, client_id: str) -> str:
        return name_for(self.template, client_id)

    async def current(self, client_id: str) -> str | None:
        version = await asyncio.to_thread(self.store.read, self.name(client_id), CURRENT)
        return _secret_of(version.value)[0] if version is not None else None

    async def stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        version_id = str(uuid.uuid4())
        value = json.dumps(
            {"client_id": client_id, "client_secret": secret, "expires_at": int(expires_at)}
        )
        await asyncio.to_thread(
            self.store.put, self.name(client_id), value, version_id=version_id, stages=[PENDING]
        )
        return Staged(client_id, secret, expires_at, version_id)

    async def promote(self, staged: Staged) -> None:
        await asyncio.to_thread(self._promote, self.name(staged.client_id), staged.version)

    def _promote(self, name: str, version_id: str) -> None:
        stages = self.store.stages(name) or {}
        labels = stages.get(version_id)
        if labels is None:
            raise SecretStoreError(f"AWS Secrets Manager: the staged version of {name} is gone")
        if CURRENT not in labels:  # a new secret's first version is current already
            current = next((v for v, ls in stages.items() if CURRENT in ls), None)
            self.store.move_current(name, to=version_id, from_=current)
        if PENDING in labels:
            self.store.remove_label(name, PENDING, version_id)

    async def staged(self, client_id: str) -> Staged | None:
        return await asyncio.to_thread(self._staged, client_id)

    def _staged(self, client_id: str) -> Staged | None:
        name = self.name(client_id)
        stages = self.store.stages(name) or {}
        if not any(PENDING in ls and CURRENT not in ls for ls in stages.values()):
            return None
        version = self.store.read(name, PENDING)
        if version is None:
            return None
        secret, expires_at = _secret_of(version.value)
        if secret is None:
            return None  # not written by mcpward: not ours to promote
        return Staged(client_id, secret, expires_at, version.version_id)

    async def discard(self, staged: Staged) -> None:
        # A version with no label left is deprecated; AWS deletes such versions itself.
        await asyncio.to_thread(
            self.store.remove_label, self.name(staged.client_id), PENDING, staged.version
        )


def _secret_of(value: str) -> tuple[str | None, float]:
    """The client secret and expiry in a value mcpward wrote; (None, 0) in any other."""
    try:
        parsed = json.loads(value)
        return str(parsed["client_secret"]), float(parsed.get("expires_at") or 0)
    except (ValueError, KeyError, TypeError):
        return None, 0.0
