"""The vocabulary of revocation: what publishers and views promise, and which token a
revocation matches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from mcpward.storage.records import Revocation


class RevocationPublisher(Protocol):
    async def publish(self, revocations: Sequence[Revocation]) -> None:
        """Tell guards about revocations already committed to storage."""
        ...


class Resync(Protocol):
    """A publisher whose store can lose what it was given (a Redis restarted without
    persistence): the log relay asks, and publishes every live revocation again."""

    async def lost(self) -> bool:
        """Whether what was published may be gone (no full load since the store began)."""
        ...

    async def restored(self) -> None:
        """A full load of the log has just been published."""
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


class FanOut:
    """A publisher that tells several others (this process's own view and Redis, say),
    in order; each was given revocations already committed to storage."""

    def __init__(self, *publishers: RevocationPublisher) -> None:
        self.publishers = publishers

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        for publisher in self.publishers:
            await publisher.publish(revocations)
