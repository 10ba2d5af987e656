"""uvicorn servers as the ``serve`` and ``gateway`` commands run them.

uvicorn stops gracefully on SIGINT/SIGTERM and then raises the signal again, so that
the process dies of it; code after ``serve()`` never runs. Ours return instead, so the
command can close what it opened (the audit log's batching sinks write what they hold,
the database closes) before the process exits. Imported by the commands that serve,
not by ``mcpward --help``.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

import uvicorn
from uvicorn.server import HANDLED_SIGNALS


class Readiness(Protocol):
    """A replica's or a gateway's ``/readyz``: told when the process is about to stop."""

    def drain(self) -> None: ...


class GracefulServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        original = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        self.should_exit = True  # how uvicorn is asked to shut down gracefully


class DrainingServer(GracefulServer):
    """Stops the way a replica behind a load balancer should: on SIGTERM /readyz turns
    503 at once and requests keep being served for ``drain`` seconds (the balancer
    notices and stops sending new ones), then uvicorn's graceful shutdown closes the
    socket and lets in-flight requests finish. A second SIGTERM, or SIGINT (Ctrl-C),
    skips the drain."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness, drain: float) -> None:
        super().__init__(config)
        self._readiness = readiness
        self._drain = drain
        self._drain_until: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._drain > 0 and self._drain_until is None:
            self._readiness.drain()
            self._drain_until = time.monotonic() + self._drain
        elif self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self._readiness.drain()
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        if self._drain_until is not None and time.monotonic() >= self._drain_until:
            self.should_exit = True
        return await super().on_tick(counter)


class Companion(GracefulServer):
    """A second server in the same event loop (the operator console): the main server's
    signal handlers stop both, so this one installs none."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
