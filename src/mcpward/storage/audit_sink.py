"""An audit sink that writes to the ``audit_events`` table, where the operator console
searches recent activity (Loki or files stay the long-term record).

``write`` never blocks a request and never touches the database: it appends the line to
a bounded queue and returns; when the queue is full the line is dropped and counted
(``dropped``), as in the Loki sink. A thread of its own, with its own event loop and a
one-connection engine, inserts batches (every ``flush_interval`` or ``batch_size``
lines), retries a failed batch with backoff, and gives up on it after ``max_retries``
(counted in ``failed``); an outage is logged once, by exception type, never with data.
The same sink serves the authorization server, the CLI, and guards or gateways in other
processes (``mcpward gateway --audit-db URL``). The table comes from the server's
migrations (``mcpward db upgrade``). It lives with storage, not with the audit
vocabulary, so that the roles using ``mcpward.audit`` (the guard, the client) need no
database; it reads the lines an ``AuditLog`` hands every sink.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from datetime import datetime
from typing import Any

import orjson

from mcpward.storage.records import StoredEvent

log = logging.getLogger("mcpward.audit")

_TEXT_FIELDS = (
    "client_id",
    "subject",
    "jti",
    "tool",
    "method",
    "audience",
    "reason",
    "actor",
    "request_id",
)


def parse_line(line: str) -> StoredEvent | None:
    """An audit line (``AuditEvent.to_json``) as a row; None when it is not one."""
    try:
        record: dict[str, Any] = orjson.loads(line)
        when = datetime.fromisoformat(str(record["timestamp"])).timestamp()
        texts = {name: _text(record.get(name)) for name in _TEXT_FIELDS}
        duration = record.get("duration_ms")
        detail = record.get("detail")
        return StoredEvent(
            id=0,
            timestamp=when,
            event=str(record["event"])[:64],
            outcome=str(record["outcome"])[:20],
            scopes=tuple(str(s) for s in record.get("scopes") or ()),
            duration_ms=float(duration) if isinstance(duration, int | float) else None,
            detail=detail if isinstance(detail, dict) else {},
            **texts,
        )
    except (ValueError, KeyError, TypeError):
        return None


def _text(value: object) -> str | None:
    return None if value is None else str(value)[:255]


class DatabaseSink:
    def __init__(
        self,
        url: str,
        *,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        max_queue: int = 10_000,
        max_retries: int = 5,
        backoff: float = 0.5,
    ) -> None:
        self.url = url
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.dropped = 0
        self.failed = 0
        self.written = 0
        self._down = False  # in an outage (logged once, when it starts)
        self._max_queue = max_queue
        self._queue: collections.deque[str] = collections.deque()
        # Lines accepted and not yet written or given up on (queued or in a batch).
        self._pending = 0
        self._settled = threading.Condition()
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._ready = threading.Event()
        # SQLAlchemy and the driver are loaded here, on the caller's thread at start-up:
        # loading a C extension holds the interpreter lock throughout, and on the sink's
        # thread that would stall the requests of a process that had not loaded them yet.
        from mcpward.storage.database import open_engine
        from mcpward.storage.sql.audit_events import SqlAuditEvents

        small = {} if url.startswith("sqlite") else {"pool_size": 1, "max_overflow": 1}
        self._engine = open_engine(url, **small)
        self._events = SqlAuditEvents(self._engine)
        self._thread = threading.Thread(target=self._main, name="mcpward-audit-db", daemon=True)
        self._thread.start()
        self._ready.wait(10)

    # -- the caller's side: never waits for the database ----------------------------------

    def write(self, line: str) -> None:
        with self._settled:
            if len(self._queue) >= self._max_queue:
                self.dropped += 1
                return
            self._queue.append(line)
            self._pending += 1
            full = len(self._queue) >= self.batch_size
        if full:
            self._kick()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every accepted line is written (or given up on); for the CLI before
        it exits, and for tests. False on timeout."""
        self._kick()
        with self._settled:
            return self._settled.wait_for(lambda: self._pending == 0, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        self._closing.set()
        self._kick()
        self._thread.join(timeout)

    def _kick(self) -> None:
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None:
            with contextlib.suppress(RuntimeError):  # the loop has stopped
                loop.call_soon_threadsafe(wake.set)

    # -- the sink's thread -----------------------------------------------------------------

    def _main(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._ready.set()
        engine, events = self._engine, self._events
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.flush_interval)
                self._wake.clear()
                while batch := self._take():
                    await self._send(events, batch)
                if self._closing.is_set():
                    return
        finally:
            await engine.dispose()

    def _take(self) -> list[str]:
        with self._settled:
            n = min(len(self._queue), self.batch_size)
            return [self._queue.popleft() for _ in range(n)]

    async def _send(self, events: Any, batch: list[str]) -> None:
        rows = [row for row in map(parse_line, batch) if row is not None]
        delay = self.backoff
        try:
            for attempt in range(self.max_retries + 1):
                try:
                    await events.append(rows)
                except Exception as exc:  # the database is down, or the table is missing
                    if not self._down:
                        self._down = True
                        log.warning("audit database write failed: %s", type(exc).__name__)
                    if attempt == self.max_retries or self._closing.is_set():
                        self.failed += len(batch)
                        return
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 30.0)
                else:
                    self.written += len(rows)
                    if self._down:
                        self._down = False
                        log.warning("audit database writes resumed")
                    return
        finally:
            with self._settled:
                self._pending -= len(batch)
                self._settled.notify_all()
