"""What happened recently, from the ``audit_events`` table: a search by subject, client,
``jti``, tool, outcome and time range, the abuse counts operators look at first
(denials, rate-limit hits per token and per client, failed client authentications) and
those counts over time, for a chart.

Guards' denials are counted once per request (``mcp.request``), not again per tool call.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from mcpward.operations._base import Page, decode_cursor, encode_cursor
from mcpward.server import AuthorizationServer
from mcpward.storage.records import EventFilter, StoredEvent

Category = Literal["insufficient_scope", "forbidden", "rate_limited", "client_auth_failed"]
CATEGORIES: dict[Category, str] = {
    "insufficient_scope": "Denied: insufficient scope",
    "forbidden": "Denied: forbidden by policy",
    "rate_limited": "Rate limited (429)",
    "client_auth_failed": "Failed client authentications",
}
HOUR = 3600.0
BUCKETS = 24
_COUNTED_EVENTS = ("mcp.request", "client.authentication_failed")
_COUNTED_OUTCOMES = ("forbidden", "rate_limited", "unauthorized")


@dataclass(frozen=True, slots=True)
class Ranked:
    key: str
    count: int


@dataclass(frozen=True, slots=True)
class Report:
    """An activity view: the events found, and the counts over the same filter."""

    where: EventFilter
    events: Page[StoredEvent]
    totals: dict[Category, int]
    rate_limited_tokens: list[Ranked]
    rate_limited_clients: list[Ranked]
    failing_clients: list[Ranked]
    # Per category, one count per bucket of (until - since) / BUCKETS seconds.
    series: dict[Category, list[int]] = field(default_factory=dict)

    @property
    def bucket_seconds(self) -> float:
        return (self.where.until - self.where.since) / BUCKETS


def _category(event: str | None, outcome: str | None, reason: str | None) -> Category | None:
    if event == "client.authentication_failed":
        return "client_auth_failed"
    if event != "mcp.request":
        return None
    if outcome == "rate_limited":
        return "rate_limited"
    if outcome == "forbidden":
        return "insufficient_scope" if reason == "insufficient_scope" else "forbidden"
    return None


class Activity:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.store = server.store.audit_events

    def default_filter(self, hours: float = 24) -> EventFilter:
        now = self.server.clock()
        return EventFilter(since=now - hours * HOUR, until=now + 1)

    async def events(
        self, where: EventFilter, cursor: str | None = None, *, limit: int = 50
    ) -> Page[StoredEvent]:
        position = decode_cursor(cursor)
        before = position[0] if position and isinstance(position[0], int) else None
        rows = await self.store.search(where, before_id=before, limit=limit + 1)
        more, rows = len(rows) > limit, rows[:limit]
        return Page(rows, encode_cursor(rows[-1].id) if more else None)

    async def report(
        self, where: EventFilter, cursor: str | None = None, *, limit: int = 50, top: int = 5
    ) -> Report:
        events = await self.events(where, cursor, limit=limit)
        # The counts keep the search's identifiers and range, not its event or outcome:
        # each category names its own. Only the rows that can count are read (along the
        # outcome index), not every request in the range.
        base = dataclasses.replace(
            where, event=None, outcome=None, events=_COUNTED_EVENTS, outcomes=_COUNTED_OUTCOMES
        )
        totals: dict[Category, int] = dict.fromkeys(CATEGORIES, 0)
        for (event, outcome, reason), n in await self.store.counts(
            base, ("event", "outcome", "reason"), limit=1000
        ):
            category = _category(event, outcome, reason)
            if category is not None:
                totals[category] += n
        limited = dataclasses.replace(
            base, event="mcp.request", outcome="rate_limited", events=(), outcomes=()
        )
        failed = dataclasses.replace(
            base, event="client.authentication_failed", events=(), outcomes=()
        )
        series: dict[Category, list[int]] = {c: [0] * BUCKETS for c in CATEGORIES}
        for bucket, (event, outcome, reason), n in await self.store.series(
            base, ("event", "outcome", "reason"), buckets=BUCKETS
        ):
            category = _category(event, outcome, reason)
            if category is not None:
                series[category][bucket] += n
        return Report(
            where=where,
            events=events,
            totals=totals,
            rate_limited_tokens=await self._ranked(limited, "jti", top),
            rate_limited_clients=await self._ranked(limited, "client_id", top),
            failing_clients=await self._ranked(failed, "client_id", top),
            series=series,
        )

    async def _ranked(
        self, where: EventFilter, column: Literal["jti", "client_id"], top: int
    ) -> list[Ranked]:
        rows = await self.store.counts(where, (column,), limit=top + 1)
        return [Ranked(key, n) for (key,), n in rows if key is not None][:top]
