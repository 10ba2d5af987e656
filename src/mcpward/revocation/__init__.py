"""Revocation, shared by the authorization server (which records it) and the guard (which
honours it on every request).

The authorization server writes each :class:`Revocation` to the ``revocations`` table in the
same transaction as the change that caused it (so it is durable before the HTTP answer),
then hands it to a :class:`RevocationPublisher` so that guards learn of it at once: in the
same process directly, across processes through Redis, or at the guard's next poll of the
table.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

RevocationKind = Literal["jti", "family", "subject", "client"]


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation.

    - ``jti``: the access token with that ``jti``.
    - ``family``: every token whose ``sid`` claim is that family id.
    - ``subject``: every token for that ``sub`` issued at or before ``revoked_at``.
    - ``client``: every token for that ``client_id`` issued at or before ``revoked_at``.

    ``expires_at`` is when no token it could match is still valid; the record may be
    forgotten after that.
    """

    kind: RevocationKind
    key: str
    revoked_at: float
    expires_at: float


class RevocationPublisher(Protocol):
    async def publish(self, revocations: Sequence[Revocation]) -> None:
        """Tell guards about revocations already committed to storage."""
        ...


class NullPublisher:
    """For deployments where guards only poll the table."""

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        return None


# --- The guard's side: asking whether a token is revoked. -------------------------------


@dataclass(frozen=True, slots=True)
class TokenRef:
    """The identifiers of a verified access token that revocations can match."""

    jti: str | None
    family: str | None
    subject: str
    client_id: str
    issued_at: float | None


class RevocationView(Protocol):
    async def is_revoked(self, token: TokenRef) -> bool:
        """Whether any revocation known to this view matches the token."""
        ...


def matches(revocation: Revocation, token: TokenRef) -> bool:
    """The matching rule of each kind (see :class:`Revocation`)."""
    if revocation.kind == "jti":
        return token.jti == revocation.key
    if revocation.kind == "family":
        return token.family == revocation.key
    if revocation.kind == "subject":
        hit = token.subject == revocation.key
    else:
        hit = token.client_id == revocation.key
    # A token without iat cannot prove it was issued after the revocation.
    return hit and (token.issued_at is None or token.issued_at <= revocation.revoked_at)


from mcpward.revocation._memory import InProcessRevocations  # noqa: E402

__all__ = [
    "InProcessRevocations",
    "NullPublisher",
    "Revocation",
    "RevocationKind",
    "RevocationPublisher",
    "RevocationView",
    "TokenRef",
    "matches",
]
