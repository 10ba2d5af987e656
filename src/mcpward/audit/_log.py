"""The audit log and its sinks: one JSON object per line, shared by the authorization
server and the guard."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

from mcpward._clock import Clock, system_clock
from mcpward.audit.events import AuditEvent


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
