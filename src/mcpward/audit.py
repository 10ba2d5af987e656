"""The audit trail: one JSON object per line, shared by the authorization server and the guard.

What goes in is fixed by :class:`AuditEvent`: identifiers (``jti``, client id, subject),
scopes, audience, tool or method, outcome and timing. There is deliberately no free-form
field that could carry a token, a code, a verifier or a secret, raw or hashed.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Literal, Protocol

import orjson

from mcpward._clock import Clock, system_clock

Outcome = Literal[
    "ok",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "error",
    "denied",
    "invalid",
    "reuse_detected",
]


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: str
    outcome: Outcome
    client_id: str | None = None
    subject: str | None = None
    jti: str | None = None
    scopes: Sequence[str] = ()
    audience: str | None = None
    tool: str | None = None
    method: str | None = None
    duration_ms: float | None = None
    request_id: str | None = None
    # A short machine-readable reason such as an OAuth error code; never user input.
    reason: str | None = None
    # Other identifiers (family id, kid, count); values are ids, never secrets.
    detail: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    timestamp: float | None = None

    def to_json(self, now: float) -> str:
        # Field by field rather than dataclasses.asdict, which deep-copies: this runs on
        # every token issued and every tool call.
        record: dict[str, object] = {
            name: value
            for name in _FIELDS
            if (value := getattr(self, name)) is not None and value != () and value != {}
        }
        record["scopes"] = list(self.scopes)
        record["timestamp"] = _iso8601(self.timestamp or now)
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


_FIELDS = tuple(f.name for f in fields(AuditEvent))
_second_cache: tuple[int, str] = (-1, "")


def _iso8601(timestamp: float) -> str:
    """UTC with milliseconds, e.g. 2026-11-27T02:46:05.938Z. The formatted second is
    reused while it lasts: events come many per second."""
    global _second_cache
    second = int(timestamp)
    if _second_cache[0] != second:
        _second_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    # Round to microseconds first, as datetime does, so 0.938 is not shown as .937.
    millis = min(999, round((timestamp - second) * 1_000_000) // 1000)
    return f"{_second_cache[1]}.{millis:03d}Z"


class AuditSink(Protocol):
    def write(self, line: str) -> None: ...

    def close(self) -> None: ...


class StreamSink:
    """JSON lines to a stream (stdout by default)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._stream.write(line + "\n")
            self._stream.flush()

    def close(self) -> None:
        pass


class FileSink:
    """JSON lines appended to a file created with mode 0600."""

    def __init__(self, path: str | Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def write(self, line: str) -> None:
        with self._lock:
            self._file.write(line + "\n")

    def close(self) -> None:
        self._file.close()


class MemorySink:
    """Keeps lines in a list. For the testing kit and for tests that read the trail."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        pass

    def events(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.lines]


class AuditLog:
    def __init__(self, sinks: Sequence[AuditSink] = (), clock: Clock = system_clock) -> None:
        self.sinks = list(sinks)
        self._clock = clock

    def emit(self, event: AuditEvent) -> None:
        if not self.sinks:
            return
        line = event.to_json(self._clock())
        for sink in self.sinks:
            sink.write(line)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()


def sink_from_spec(spec: str) -> AuditSink:
    """``stdout``, ``stderr`` or ``file:/path/to/audit.jsonl``."""
    if spec == "stdout":
        return StreamSink(sys.stdout)
    if spec == "stderr":
        return StreamSink(sys.stderr)
    if spec.startswith("file:"):
        return FileSink(spec.removeprefix("file:"))
    raise ValueError(f"unknown audit sink {spec!r}: use stdout, stderr or file:PATH")
