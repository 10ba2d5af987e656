"""Recent audit events in the ``audit_events`` table: appended in batches by the
database audit sink, searched and counted by the operator console, purged by age.

Every query is bounded by a time range (``EventFilter.since``/``until``) and, for lists,
by a page size, so it reads one index range however large the table has grown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Integer, Select, cast, delete, func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.contracts import EventColumn
from mcpward.storage.database import writer
from mcpward.storage.records import EventFilter, StoredEvent
from mcpward.storage.schema import audit_events

_GROUPABLE: frozenset[str] = frozenset(
    ("event", "outcome", "reason", "client_id", "subject", "jti", "tool")
)
# Rows deleted per transaction when purging: keeps each write lock short (SQLite).
PURGE_BATCH = 5000


def _conditions(where: EventFilter) -> list[ColumnElement[bool]]:
    c = audit_events.c
    found = [c.timestamp >= where.since, c.timestamp < where.until]
    for name in ("subject", "client_id", "jti", "tool", "outcome", "event", "actor"):
        value = getattr(where, name)
        if value is not None:
            found.append(c[name] == value)
    if where.events:
        found.append(c.event.in_(where.events))
    if where.outcomes:
        found.append(c.outcome.in_(where.outcomes))
    return found


def _columns(by: Sequence[EventColumn]) -> list[Any]:
    unknown = set(by) - _GROUPABLE
    if unknown:
        raise ValueError(f"cannot group audit events by {sorted(unknown)}")
    return [audit_events.c[name] for name in by]


def _row(values: Any) -> StoredEvent:
    data = dict(values._mapping)
    data["scopes"] = tuple((data.get("scopes") or "").split())
    data["detail"] = data.get("detail") or {}
    return StoredEvent(**data)


class SqlAuditEvents:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def append(self, events: Sequence[StoredEvent]) -> None:
        if not events:
            return
        rows = [
            {
                "timestamp": e.timestamp,
                "event": e.event,
                "outcome": e.outcome,
                "client_id": e.client_id,
                "subject": e.subject,
                "jti": e.jti,
                "tool": e.tool,
                "method": e.method,
                "audience": e.audience,
                "scopes": " ".join(e.scopes) or None,
                "reason": e.reason,
                "actor": e.actor,
                "request_id": e.request_id,
                "duration_ms": e.duration_ms,
                "detail": e.detail,
            }
            for e in events
        ]
        async with self._writer.begin() as conn:
            await conn.execute(audit_events.insert(), rows)

    async def search(
        self, where: EventFilter, *, before_id: int | None = None, limit: int = 50
    ) -> list[StoredEvent]:
        query = select(audit_events).where(*_conditions(where))
        if before_id is not None:
            query = query.where(audit_events.c.id < before_id)
        query = query.order_by(audit_events.c.id.desc()).limit(limit)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]

    async def counts(
        self, where: EventFilter, by: Sequence[EventColumn], *, limit: int = 100
    ) -> list[tuple[tuple[str | None, ...], int]]:
        columns = _columns(by)
        n = func.count().label("n")
        query: Select[Any] = (
            select(*columns, n)
            .where(*_conditions(where))
            .group_by(*columns)
            .order_by(n.desc(), *columns)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(tuple(r[:-1]), int(r[-1])) for r in rows]

    async def series(
        self, where: EventFilter, by: Sequence[EventColumn], *, buckets: int
    ) -> list[tuple[int, tuple[str | None, ...], int]]:
        if buckets < 1 or where.until <= where.since:
            raise ValueError("a series needs at least one bucket over a non-empty range")
        width = (where.until - where.since) / buckets
        offset = (audit_events.c.timestamp - where.since) / width
        # Non-negative within the range, so truncation is the floor on both databases
        # (PostgreSQL's CAST rounds, hence floor() there).
        bucket = (
            cast(func.floor(offset), Integer)
            if self._engine.dialect.name == "postgresql"
            else cast(offset, Integer)
        ).label("bucket")
        columns = _columns(by)
        query: Select[Any] = (
            select(bucket, *columns, func.count())
            .where(*_conditions(where))
            .group_by(bucket, *columns)
            .order_by(bucket)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(min(int(r[0]), buckets - 1), tuple(r[1:-1]), int(r[-1])) for r in rows]

    async def purge(self, before: float) -> int:
        """In batches of ``PURGE_BATCH`` rows, oldest first, each its own transaction."""
        total = 0
        while True:
            oldest = (
                select(audit_events.c.id)
                .where(audit_events.c.timestamp < before)
                .order_by(audit_events.c.timestamp)
                .limit(PURGE_BATCH)
            )
            async with self._writer.begin() as conn:
                result = await conn.execute(
                    delete(audit_events).where(audit_events.c.id.in_(oldest.scalar_subquery()))
                )
            deleted = int(result.rowcount or 0)
            total += deleted
            if deleted < PURGE_BATCH:
                return total
