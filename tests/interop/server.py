"""One real `mcpward serve --demo` process for the whole matrix: a temp data directory, a
free port, short-lived access tokens and the audit trail in a file the tests read."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from tests.services import free_port

# Seconds an access token lives. Short, so the refresh cells need not wait long; every
# client still has time to finish its sign-in before its first token expires.
ACCESS_TOKEN_LIFETIME = 8
# The demo's guard accepts a token this long past its `exp` (make_guard's default).
GUARD_LEEWAY = 30
ALL_SCOPES = ("orders.read", "orders.write", "refund.admin")


@dataclass(frozen=True)
class DemoServer:
    base: str
    data_dir: Path
    audit_path: Path
    demo: dict[str, str] = field(repr=False)  # holds the demo secrets

    @property
    def resource(self) -> str:
        return self.base + "/mcp"

    @property
    def m2m_client_id(self) -> str:
        return self.demo["client_id"]

    @property
    def m2m_secret(self) -> str:
        return self.demo["client_secret"]

    def events(
        self, name: str | None = None, client_ids: Iterable[str] | None = None
    ) -> list[dict[str, Any]]:
        wanted = set(client_ids) if client_ids is not None else None
        found = []
        for line in self.audit_path.read_text(encoding="utf-8").splitlines():
            event: dict[str, Any] = json.loads(line)
            if name is not None and event["event"] != name:
                continue
            if wanted is not None and event.get("client_id") not in wanted:
                continue
            found.append(event)
        return found

    def token_expiry(self, client_ids: Iterable[str]) -> float:
        """When the guard stops accepting the newest token issued to these clients."""
        issued = [e for e in self.events(client_ids=client_ids) if e["event"].startswith("token.")]
        assert issued, "no token was ever issued to this client"
        newest = max(_epoch(e["timestamp"]) for e in issued)
        return newest + ACCESS_TOKEN_LIFETIME + GUARD_LEEWAY

    async def wait_for_expiry(self, client_ids: Iterable[str]) -> None:
        """Wait until the client's newest access token is refused by the guard. The moment is
        known exactly from the server's own record of when it issued the token; one second
        more covers the whole-second `exp` claim."""
        remaining = self.token_expiry(client_ids) + 1.0 - time.time()
        if remaining > 0:
            await asyncio.sleep(remaining)


def _epoch(timestamp: str) -> float:
    return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()


@contextmanager
def demo_server(root: Path) -> Iterator[DemoServer]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data_dir = root / "data"
    audit = root / "audit.jsonl"
    env = {
        **os.environ,
        "MCPWARD_DATA_DIR": str(data_dir),
        "MCPWARD_CONFIG": str(root / "absent.toml"),
        "MCPWARD_LIFETIMES__ACCESS_TOKEN": str(ACCESS_TOKEN_LIFETIME),
        "MCPWARD_AUDIT_SINK": f"file:{audit}",
    }
    log = (root / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpward", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "mcpward serve exited: " + (root / "serve.log").read_text()
            try:
                if httpx.get(base + "/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "mcpward serve did not become ready"
            time.sleep(0.1)
        demo = json.loads((data_dir / "demo.json").read_text())
        yield DemoServer(base, data_dir, audit, demo)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
