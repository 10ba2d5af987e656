"""The secret sink as the operator commands use it: built from ``--sink`` or the
``secret_sink`` setting, its errors shown as one line, never a traceback or a value."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import click

from mcpward._secret_stores import SecretStoreError
from mcpward.server.secret_rotation import RotationReport
from mcpward.server.secret_sinks import SecretSink, sink_from_spec


def open_sink(spec: str | None) -> SecretSink | None:
    if not spec:
        return None
    try:
        return sink_from_spec(spec)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def store_errors() -> Iterator[None]:
    try:
        yield
    except SecretStoreError as exc:
        raise click.ClickException(str(exc)) from None


def report_output(report: RotationReport) -> tuple[dict[str, Any], list[str]]:
    lines = [f"rotated {len(report.rotated)} secret(s)", *(f"  {c}" for c in report.rotated)]
    lines += [f"finished an interrupted rotation of {c}" for c in report.finished]
    lines += [f"discarded an uncommitted staged secret of {c}" for c in report.discarded]
    lines += [f"FAILED {c}: {why}" for c, why in report.failed.items()]
    data = {
        "rotated": report.rotated,
        "finished": report.finished,
        "discarded": report.discarded,
        "failed": report.failed,
    }
    return data, lines
