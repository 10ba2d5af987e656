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
from collections.abc import Iterator

import uvicorn
from uvicorn.server import HANDLED_SIGNALS


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


class Companion(GracefulServer):
    """A second server in the same event loop (the operator console): the main server's
    signal handlers stop both, so this one installs none."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield
