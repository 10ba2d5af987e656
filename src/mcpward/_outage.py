"""One log line when a dependency becomes unreachable, one when it is back.

A dependency that goes away (Redis, the database, Loki) fails every request until it
returns; a line per failure, let alone a traceback each, would flood the log exactly when
operators read it. :class:`OutageLog` reports the first failure of an outage and, on the
first success after it, the recovery with the number of failures in between. Callers
report each outcome; the cost of a success is one integer comparison.
"""

from __future__ import annotations

import logging
import threading


class OutageLog:
    def __init__(self, name: str, logger: logging.Logger, consequence: str) -> None:
        self.name = name
        self.failures = 0
        self._log = logger
        self._consequence = consequence
        # The Loki sink reports from its own thread.
        self._lock = threading.Lock()

    def failed(self, cause: str) -> None:
        with self._lock:
            first = self.failures == 0
            self.failures += 1
        if first:
            self._log.error("%s unreachable (%s); %s", self.name, cause, self._consequence)

    def succeeded(self) -> None:
        if not self.failures:
            return
        with self._lock:
            failures, self.failures = self.failures, 0
        if failures:
            self._log.warning("%s reachable again after %d failures", self.name, failures)
