"""The overview and the activity pages: recent audit events searched by subject, client,
``jti``, tool, outcome, event and time range, with the abuse counts and their chart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import get_args
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mcpward.audit import EVENTS, Outcome
from mcpward.console._chart import build_chart
from mcpward.console._core import Console, Operator
from mcpward.console._display import SOURCES, client_link, short_id, stamp, user_link
from mcpward.operations import CATEGORIES
from mcpward.operations.activity import HOUR
from mcpward.storage.records import EventFilter

RANGES = {"1": "Last hour", "6": "Last 6 hours", "24": "Last 24 hours", "168": "Last 7 days"}
OUTCOMES: tuple[str, ...] = get_args(Outcome)
FIELDS = ("subject", "client", "jti", "tool", "outcome", "event")
_LOCAL = "%Y-%m-%dT%H:%M"


def _parse_time(value: str) -> float | None:
    """A ``datetime-local`` value, read as UTC (the console shows UTC everywhere)."""
    try:
        return datetime.strptime(value[:16], _LOCAL).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _local(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).strftime(_LOCAL)


class ActivityPages:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.ops

    async def _filter(self, request: Request) -> tuple[EventFilter, dict[str, str], str | None]:
        q = request.query_params
        form = {name: q.get(name, "").strip()[:255] for name in FIELDS}
        if form["outcome"] not in OUTCOMES:
            form["outcome"] = ""
        if form["event"] not in EVENTS:
            form["event"] = ""
        hours = q.get("hours", "24") if q.get("hours", "24") in RANGES else "24"
        now = self.console.now()
        since, until = _parse_time(q.get("since", "")), _parse_time(q.get("until", ""))
        if since is None or until is None or until <= since:
            since, until = now - float(hours) * HOUR, now + 1
            form["since"], form["until"] = "", ""
        else:
            form["since"], form["until"] = _local(since), _local(until)
        form["hours"] = hours
        note = None
        subject = form["subject"] or None
        if subject:
            # Operators know usernames; events carry user ids.
            user = await self.console.server.store.users.by_username(subject)
            if user is not None:
                note = f"Subject {subject} is user {user.id}."
                subject = user.id
        where = EventFilter(
            since=since,
            until=until,
            subject=subject,
            client_id=form["client"] or None,
            jti=form["jti"] or None,
            tool=form["tool"] or None,
            outcome=form["outcome"] or None,
            event=form["event"] or None,
        )
        return where, form, note

    async def activity(self, request: Request, operator: Operator) -> Response:
        where, form, note = await self._filter(request)
        report = await self.ops.activity.report(
            where, request.query_params.get("cursor"), limit=self.console.settings.page_size
        )
        kept = {k: v for k, v in form.items() if v}
        return self.console.page(
            "activity.html",
            {
                "report": report,
                "form": form,
                "note": note,
                "ranges": RANGES,
                "outcomes": OUTCOMES,
                "events": sorted(EVENTS),
                "categories": CATEGORIES,
                "chart": build_chart(report.series, CATEGORIES, where.since, where.until),
                "next_url": "/activity?" + urlencode({**kept, "cursor": report.events.next})
                if report.events.next
                else None,
                "first_url": "/activity?" + urlencode(kept)
                if request.query_params.get("cursor")
                else None,
                "filter_url": lambda **extra: "/activity?" + urlencode({**kept, **extra}),
                "stamp": stamp,
                "short_id": short_id,
                "client_link": client_link,
                "user_link": user_link,
            },
            operator=operator,
            section="activity",
        )

    async def overview(self, request: Request, operator: Operator) -> Response:
        ops = self.ops
        counts = await ops.clients.counts()
        by_source = dict.fromkeys(SOURCES, 0)
        disabled = 0
        for (source, off), n in counts.items():
            by_source[source] = by_source.get(source, 0) + n
            disabled += n if off else 0
        where = ops.activity.default_filter(24)
        report = await ops.activity.report(where, limit=10)
        keys = await ops.keys.list()
        return self.console.page(
            "overview.html",
            {
                "by_source": by_source,
                "sources": SOURCES,
                "disabled": disabled,
                "users": await ops.users.count(),
                "operators": len((await ops.users.page(operators_only=True, limit=100)).items),
                "report": report,
                "categories": CATEGORIES,
                "chart": build_chart(report.series, CATEGORIES, where.since, where.until),
                "signing": next((k for k in keys if k.state == "signing"), None),
                "keys": keys,
                "stamp": stamp,
                "short_id": short_id,
                "client_link": client_link,
            },
            operator=operator,
            section="overview",
        )
