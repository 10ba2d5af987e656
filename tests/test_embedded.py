"""`mcpward serve --demo`, the embedded default behind `make run`, run as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.services import free_port


@contextmanager
def running_serve(data_dir: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    env = {
        **os.environ,
        "MCPWARD_DATA_DIR": str(data_dir),
        "MCPWARD_CONFIG": str(data_dir / "absent.toml"),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "mcpward", "serve", "--demo", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("mcpward serve did not become ready")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)


def test_first_start_creates_demo_credentials_once(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_serve(tmp_path, port) as proc:
        demo = json.loads((tmp_path / "demo.json").read_text())
        assert stat.S_IMODE((tmp_path / "demo.json").stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "data-key").stat().st_mode) == 0o600
        assert demo["issuer"] == base and demo["resource"] == base + "/mcp"

        meta = httpx.get(base + "/.well-known/oauth-authorization-server").json()
        assert meta["issuer"] == base
        resp = httpx.post(
            base + "/token",
            data={"grant_type": "client_credentials", "resource": demo["resource"]},
            auth=(demo["client_id"], demo["client_secret"]),
        )
        assert resp.status_code == 200, resp.text
        assert resp.json()["scope"] == "orders.read"
    _, stderr = proc.communicate()
    # SIGTERM: uvicorn finishes requests in flight, shuts the app down, then re-raises the
    # signal so the exit status still says why the process ended.
    assert proc.returncode in (0, -signal.SIGTERM)
    assert "Finished server process" in stderr
    assert demo["client_secret"] in stderr  # shown once, on first start ...
    assert demo["password"] in stderr

    with running_serve(tmp_path, port) as proc:
        pass
    _, stderr = proc.communicate()
    assert demo["client_secret"] not in stderr  # ... and never again
    assert "demo.json" in stderr
