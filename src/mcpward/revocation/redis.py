"""Revocations through Redis: one key per revoked thing, expiring with it.

``mcpward:rev:{kind}:{key}`` holds the ``revoked_at`` time and expires at ``expires_at``,
so Redis forgets a revocation when no token it matches can still be valid. A guard reads
the (at most four) keys a token could match in one ``MGET``, or, with the Redis rate
limiter, inside the same script as the rate-limit counters: one round trip per request.
Propagation is immediate: the key is set before the authorization server answers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcpward.revocation import Revocation, TokenRef

if TYPE_CHECKING:
    from redis.asyncio import Redis

DEFAULT_PREFIX = "mcpward:rev:"


def revocation_keys(token: TokenRef, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """The keys to read, in the order jti, family, subject, client (empty id: unused)."""
    return [
        f"{prefix}jti:{token.jti or ''}",
        f"{prefix}family:{token.family or ''}",
        f"{prefix}subject:{token.subject}",
        f"{prefix}client:{token.client_id}",
    ]


def decide(token: TokenRef, values: Sequence[Any]) -> bool:
    jti, family, subject, client = values
    if token.jti and jti is not None:
        return True
    if token.family and family is not None:
        return True
    for value in (subject, client):
        if value is not None and (token.issued_at is None or token.issued_at <= float(value)):
            return True
    return False


class RedisRevocations:
    """A :class:`RevocationPublisher` and a :class:`RevocationView` over one Redis."""

    def __init__(self, redis: Redis, *, prefix: str = DEFAULT_PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        async with self.redis.pipeline(transaction=False) as pipe:
            for r in revocations:
                key = f"{self.prefix}{r.kind}:{r.key}"
                # A later revocation of the same key replaces the earlier one: its
                # revoked_at is later, so it covers every token the earlier one did.
                pipe.set(key, repr(r.revoked_at), pxat=max(1, int(r.expires_at * 1000)))
            await pipe.execute()

    async def is_revoked(self, token: TokenRef) -> bool:
        values = await self.redis.mget(revocation_keys(token, self.prefix))
        return decide(token, values)
