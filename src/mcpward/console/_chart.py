"""A small line chart of the activity counts over time, drawn on the server as SVG: no
script, nothing fetched, colours from the stylesheet (classes, not style attributes)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

K = TypeVar("K", bound=str)
# The plot's own coordinates: the SVG stretches to its box (preserveAspectRatio="none",
# strokes that do not scale), and the axis labels are text beside it, so the chart reads
# the same on a phone and on a wide screen.
WIDTH, HEIGHT, PAD = 1000, 200, 4


@dataclass(frozen=True, slots=True)
class Line:
    key: str  # CSS class suffix: .series-<key>
    label: str
    points: str  # SVG polyline points
    total: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    lines: list[Line]
    grid: list[float]  # y of the horizontal grid lines (0, half, top)
    x_labels: list[str]  # at 0, 25, 50, 75 and 100 % of the range
    y_labels: list[str]  # top, half, 0
    summary: str  # what a screen reader hears


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5, 10, 20, 50 ...)."""
    if value <= 2:
        return 2
    magnitude = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _label(timestamp: float, span: float) -> str:
    at = datetime.fromtimestamp(timestamp, tz=UTC)
    return at.strftime("%H:%M" if span <= 2 * 86400 else "%m-%d %H:%M")


def build_chart(
    series: Mapping[K, Sequence[int]],
    labels: Mapping[K, str],
    since: float,
    until: float,
) -> Chart:
    buckets = max((len(v) for v in series.values()), default=1)
    top = _nice_max(max((max(v, default=0) for v in series.values()), default=0))
    step = WIDTH / max(buckets - 1, 1)

    def y(count: float) -> float:
        return round(HEIGHT - PAD - (HEIGHT - 2 * PAD) * count / top, 1)

    lines = [
        Line(
            key=key,
            label=labels.get(key, key),
            points=" ".join(f"{round(i * step, 1)},{y(n)}" for i, n in enumerate(counts)),
            total=sum(counts),
        )
        for key, counts in series.items()
    ]
    span = until - since
    summary = "; ".join(f"{line.label}: {line.total}" for line in lines)
    return Chart(
        WIDTH,
        HEIGHT,
        lines,
        grid=[y(0), y(top / 2), y(top)],
        x_labels=[_label(since + span * f, span) for f in (0.0, 0.25, 0.5, 0.75, 1.0)],
        y_labels=[str(top), f"{top / 2:g}", "0"],
        summary=f"Counts from {_label(since, span)} to {_label(until, span)} UTC. {summary}.",
    )
