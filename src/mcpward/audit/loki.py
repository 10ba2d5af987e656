"""An audit sink that pushes to Grafana Loki (``POST /loki/api/v1/push``, JSON format).

``write`` never blocks a request: it appends to a bounded queue and returns; when the
queue is full the newest line is dropped and counted (``dropped``), because an audit
backlog must not turn into memory growth or latency. A background thread sends batches
(every ``flush_interval`` or ``batch_size`` lines), retrying 429/5xx and connection errors
with exponential backoff, and gives up on a batch after ``max_retries`` (counted in
``failed``). Labels stay low-cardinality: static ones plus ``event`` and ``outcome``;
identifiers such as jti stay in the line, where LogQL's ``| json`` finds them.
"""

from __future__ import annotations

import collections
import json
import threading
import time
from collections.abc import Mapping

import httpx

PUSH_PATH = "/loki/api/v1/push"


class LokiSink:
    def __init__(
        self,
        url: str,
        *,
        labels: Mapping[str, str] | None = None,
        batch_size: int = 500,
        flush_interval: float = 1.0,
        max_queue: int = 10_000,
        max_retries: int = 5,
        backoff: float = 0.5,
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
                return
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
        for attempt in range(self.max_retries + 1):
            try:
                r = self._http.post(
                    self.url, content=payload, headers={"content-type": "application/json"}
                )
                if r.status_code < 300:
                    self.sent += len(batch)
                    return
                if r.status_code != 429 and r.status_code < 500:
                    break  # Loki refused the batch itself (400): retrying will not help
            except httpx.HTTPError:
                pass
            if attempt < self.max_retries and not self._closing.is_set():
                time.sleep(delay)
                delay = min(delay * 2, 30.0)
        self.failed += len(batch)
