"""Revocations held in this process's memory.

Used directly in embedded mode (the authorization server publishes into the same object
the guard reads: zero delay), and as the local store behind the table-polling view.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcpward._clock import Clock, system_clock
from mcpward.revocation._types import TokenRef
from mcpward.storage.records import Revocation


class InProcessRevocations:
    """A :class:`RevocationPublisher` and a :class:`RevocationView` in one object."""

    def __init__(self, clock: Clock = system_clock) -> None:
        self._clock = clock
        # kind -> key -> (revoked_at, expires_at); the latest revocation of a key wins.
        self._by_kind: dict[str, dict[str, tuple[float, float]]] = {
            "jti": {},
            "family": {},
            "subject": {},
            "client": {},
        }
        self._count = 0

    async def publish(self, revocations: Sequence[Revocation]) -> None:
        self.add(revocations)

    def add(self, revocations: Sequence[Revocation]) -> None:
        for r in revocations:
            table = self._by_kind.get(r.kind)
            if table is None:
                continue  # a kind this guard does not know: ignore rather than fail
            old = table.get(r.key)
            if old is None or r.revoked_at >= old[0]:
                table[r.key] = (r.revoked_at, max(r.expires_at, old[1] if old else 0.0))
        self._count += len(revocations)
        if self._count > 1024:
            self.prune()

    def prune(self) -> None:
        now = self._clock()
        for table in self._by_kind.values():
            for key in [k for k, (_, exp) in table.items() if exp <= now]:
                del table[key]
        self._count = 0

    async def is_revoked(self, token: TokenRef) -> bool:
        return self.check(token)

    def check(self, token: TokenRef) -> bool:
        by = self._by_kind
        if token.jti is not None and token.jti in by["jti"]:
            return True
        if token.family is not None and token.family in by["family"]:
            return True
        for kind, key in (("subject", token.subject), ("client", token.client_id)):
            hit = by[kind].get(key)
            if hit is not None and (token.issued_at is None or token.issued_at <= hit[0]):
                return True
        return False

    def count(self) -> int:
        # Deliberately not __len__: an empty view must not be falsy where code writes
        # ``publisher or NullPublisher()``.
        return sum(len(t) for t in self._by_kind.values())
