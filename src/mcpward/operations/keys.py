"""Operator actions on the token signing keys: their life cycle, and rotation."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from mcpward.audit import AuditEvent
from mcpward.operations._base import Actor
from mcpward.server import AuthorizationServer
from mcpward.storage.records import SigningKeyRecord

KeyState = Literal["signing", "pending", "published", "expired"]


@dataclass(frozen=True, slots=True)
class KeyView:
    """A signing key and where it is in its life: ``pending`` (published, signing from
    ``active_at``), ``signing``, ``published`` (retired from signing, still in the JWKS for
    the tokens it signed; also a pending key an immediate rotation overtook, which never
    signs) or ``expired`` (no longer published)."""

    record: SigningKeyRecord
    state: KeyState


class KeyOperations:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server

    async def list(self) -> list[KeyView]:
        """By ``active_at``, with the state each is in now. Keys rotated by another process
        (the CLI, another replica) are read from storage first."""
        ring = self.server.keys
        await ring.load()
        now = self.server.clock()
        current = ring.signing_key().kid
        return [KeyView(r, _state(r, current, now)) for r in ring.records()]

    async def rotate(self, actor: Actor, *, immediate: bool = False) -> SigningKeyRecord:
        """A new key, published now and signing after the publish lead (every guard's JWKS
        cache has seen it by then); ``immediate`` signs at once (a compromised key)."""
        record = await self.server.keys.rotate(immediate=immediate)
        self.server.audit.emit(
            AuditEvent(
                "key.rotated",
                "ok",
                actor=str(actor),
                detail={"kid": record.kid, "immediate": immediate},
            )
        )
        return record


def _state(record: SigningKeyRecord, current: str, now: float) -> KeyState:
    if record.kid == current:
        return "signing"
    never_signs = record.retired_at is not None and record.retired_at <= record.active_at
    if record.active_at > now and not never_signs:
        return "pending"
    if record.published_until is None or record.published_until > now:
        return "published"
    return "expired"
