"""Revocation, shared by the authorization server (which records it) and the guard (which
honours it on every request).

The authorization server writes each :class:`Revocation` to the ``revocations`` table in the
same transaction as the change that caused it (so it is durable before the HTTP answer),
then hands it to a :class:`RevocationPublisher` so that guards learn of it at once: in the
same process directly, across processes through Redis, or at the guard's next poll of the
table.
"""

from __future__ import annotations

from mcpward.revocation._memory import InProcessRevocations
from mcpward.revocation._types import (
    FanOut,
    NullPublisher,
    Resync,
    RevocationPublisher,
    RevocationView,
    TokenRef,
    matches,
)
from mcpward.storage.records import Revocation, RevocationKind

__all__ = [
    "FanOut",
    "InProcessRevocations",
    "NullPublisher",
    "Resync",
    "Revocation",
    "RevocationKind",
    "RevocationPublisher",
    "RevocationView",
    "TokenRef",
    "matches",
]
