"""The audit trail: one JSON object per line, never a token or a secret.

``events`` holds the catalogue of event names and the record type; ``AuditLog`` writes
each event to its sinks (stdout, a file, memory for tests, Grafana Loki via ``loki``).
"""

from __future__ import annotations

from mcpward.audit._log import (
    AuditLog,
    AuditSink,
    FileSink,
    MemorySink,
    StreamSink,
    sink_from_spec,
)
from mcpward.audit.events import EVENTS, AuditEvent, EventName, Outcome

__all__ = [
    "EVENTS",
    "AuditEvent",
    "AuditLog",
    "AuditSink",
    "EventName",
    "FileSink",
    "MemorySink",
    "Outcome",
    "StreamSink",
    "sink_from_spec",
]
