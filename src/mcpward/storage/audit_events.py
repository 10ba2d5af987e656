"""What the operator console needs from the store of recent audit events (the
``audit_events`` table): its Protocol, beside the others in :mod:`.contracts`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from mcpward.storage.records import EventFilter, StoredEvent

# Columns of ``audit_events`` that counts may be grouped by.
EventColumn = Literal["event", "outcome", "reason", "client_id", "subject", "jti", "tool"]


class AuditEventStore(Protocol):
    """Recent audit events, for the operator console's activity view. Written in batches
    by the database audit sink, purged after the configured retention."""

    async def append(self, events: Sequence[StoredEvent]) -> None:
        """Insert events (their ``id`` is assigned by the store)."""
        ...

    async def search(
        self, where: EventFilter, *, before_id: int | None = None, limit: int = 50
    ) -> list[StoredEvent]:
        """Matching events, newest first, ``limit`` of them below ``before_id``."""
        ...

    async def counts(
        self, where: EventFilter, by: Sequence[EventColumn], *, limit: int = 100
    ) -> list[tuple[tuple[str | None, ...], int]]:
        """How many matching events per distinct value of the ``by`` columns, most first."""
        ...

    async def series(
        self, where: EventFilter, by: Sequence[EventColumn], *, buckets: int
    ) -> list[tuple[int, tuple[str | None, ...], int]]:
        """Counts per time bucket (``where.since`` to ``where.until`` cut in ``buckets``
        equal parts, numbered from 0) and per value of the ``by`` columns."""
        ...

    async def purge(self, before: float) -> int:
        """Forget events older than ``before``; how many."""
        ...
