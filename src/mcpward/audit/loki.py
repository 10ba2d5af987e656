"""An audit sink that pushes to Grafana Loki (``POST /loki/api/v1/push``, JSON format).

``write`` never blocks a request: it appends to a bounded queue and returns; when the
queue is full the newest line is dropped and counted (``dropped``), because an audit
backlog must not turn into memory growth or latency. A background thread sends batches
(every ``flush_interval`` or ``batch_size`` lines), retrying 429/5xx and connection errors
with exponential backoff (capped at ``max_backoff``) until Loki takes them, so an outage
loses nothing while the queue holds (``max_queue`` lines); with ``max_retries`` it gives up
on a batch after that many retries (counted in ``failed``). A batch Loki refuses as
malformed (4xx other than 429) is not retried. An outage is logged once when it starts and
once when Loki takes batches again. Labels stay low-cardinality: static ones plus
``event`` and ``outcome``; identifiers such as jti stay in the line, where LogQL's
``| json`` finds them.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Mapping

import httpx

from mcpward._outage import OutageLog

PUSH_PATH = "/loki/api/v1/push"
log = logging.getLogger("mcpward.audit")


class LokiSink:
    def __init__(
        self,
        url: str,
        *,
        labels: Mapping[str, str] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        max_retries: int | None = None,
        backoff: float = 0.5,
        max_backoff: float = 5.0,
        timeout: float = 5.0,
        tenant: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.url = url.rstrip("/") + PUSH_PATH if not url.endswith(PUSH_PATH) else url
        self.labels = dict(labels or {"service": "mcpward"})
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_retries = max_retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self._outage = OutageLog(
            "Loki", log, f"audit events are queued (up to {max_queue}) until it returns"
        )
        self._overflowing = False
        self.dropped = 0
        self.failed = 0
        self.sent = 0
        self._queue: collections.deque[tuple[int, str]] = collections.deque()
        self._max_queue = max_queue
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        extra = dict(headers or {})
        if tenant:
            extra["X-Scope-OrgID"] = tenant
        self._http = httpx.Client(timeout=timeout, headers=extra)
        self._thread = threading.Thread(target=self._run, name="mcpward-loki", daemon=True)
        self._thread.start()

    def write(self, line: str) -> None:
        with self._lock:
            if len(self._queue) >= self._max_queue:
                self.dropped += 1
                if not self._overflowing:
                    self._overflowing = True
                    log.error("audit queue for Loki full: dropping events until it drains")
                return
            self._overflowing = False
            self._queue.append((time.time_ns(), line))
            full = len(self._queue) >= self.batch_size
        if full:
            self._wake.set()

    def close(self, timeout: float = 5.0) -> None:
        self._closing.set()
        self._wake.set()
        self._thread.join(timeout)
        self._http.close()

    def _take(self) -> list[tuple[int, str]]:
        with self._lock:
            n = min(len(self._queue), self.batch_size)
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            while True:
                batch = self._take()
                if not batch:
                    break
                self._send(batch)
            if self._closing.is_set():
                return

    def _payload(self, batch: list[tuple[int, str]]) -> bytes:
        streams: dict[tuple[str, str], list[list[str]]] = {}
        for ts, line in batch:
            try:
                record = json.loads(line)
                key = (str(record.get("event", "")), str(record.get("outcome", "")))
            except ValueError:
                key = ("", "")
            streams.setdefault(key, []).append([str(ts), line])
        body: dict[str, list[dict[str, object]]] = {
            "streams": [
                {"stream": {**self.labels, "event": e, "outcome": o}, "values": values}
                for (e, o), values in streams.items()
            ]
        }
        return json.dumps(body, separators=(",", ":")).encode()

    def _send(self, batch: list[tuple[int, str]]) -> None:
        payload = self._payload(batch)
        delay = self.backoff
        attempt = 0
        while True:
            try:
                r = self._http.post(
                    self.url, content=payload, headers={"content-type": "application/json"}
                )
                if r.status_code < 300:
                    self.sent += len(batch)
                    self._outage.succeeded()
                    return
                if r.status_code != 429 and r.status_code < 500:
                    log.error("Loki refused an audit batch (HTTP %d)", r.status_code)
                    break  # the batch itself is refused (400): retrying will not help
                self._outage.failed(f"HTTP {r.status_code}")
            except httpx.HTTPError as exc:
                self._outage.failed(type(exc).__name__)
            if self._closing.is_set() or (
                self.max_retries is not None and attempt >= self.max_retries
            ):
                break
            attempt += 1
            # Sleep, but wake at once when the sink is closed.
            self._closing.wait(delay)
            delay = min(delay * 2, self.max_backoff)
        self.failed += len(batch)
