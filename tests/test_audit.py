"""The audit line format shared by the server and the guard."""

from __future__ import annotations

import json
import random
import stat
from datetime import UTC, datetime
from pathlib import Path
from typing import get_args

from mcpward.audit import EVENTS, AuditEvent, AuditLog, EventName, FileSink


def test_line_has_the_fields_and_no_empty_ones() -> None:
    event = AuditEvent(
        "mcp.tool_call", "forbidden", client_id="c", subject="s", jti="j", scopes=("a",), tool="t"
    )
    record = json.loads(event.to_json(1764211565.938))
    assert record == {
        "client_id": "c",
        "event": "mcp.tool_call",
        "jti": "j",
        "outcome": "forbidden",
        "scopes": ["a"],
        "subject": "s",
        "timestamp": "2025-11-27T02:46:05.938Z",
        "tool": "t",
    }


def test_timestamp_matches_datetime_formatting() -> None:
    rng = random.Random(7)
    for t in [0.0, 0.0005, 1764211565.938, *(rng.uniform(0, 4e9) for _ in range(5000))]:
        expected = datetime.fromtimestamp(t, tz=UTC).isoformat(timespec="milliseconds")
        assert json.loads(AuditEvent("logout", "ok").to_json(t))["timestamp"] == expected.replace(
            "+00:00", "Z"
        )


def test_file_sink_is_private_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "audit" / "audit.jsonl"
    log = AuditLog([FileSink(path)], clock=lambda: 1.0)
    log.emit(AuditEvent("login.succeeded", "ok"))
    log.emit(AuditEvent("logout", "error"))
    log.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [json.loads(line)["event"] for line in path.read_text().splitlines()] == [
        "login.succeeded",
        "logout",
    ]


def test_every_event_name_is_described() -> None:
    """The catalogue: each name in the EventName vocabulary has a description, and nothing
    is described that cannot be emitted."""
    assert set(EVENTS) == set(get_args(EventName))
    assert all(description for description in EVENTS.values())
