"""A real ``mcpward gateway`` process answers a load balancer: ``/healthz`` and ``/readyz``
without a token, readiness following its upstream, and on SIGTERM a drain (``/readyz``
503 while tool calls are still served) before a clean exit."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from pathlib import Path

import httpx
from starlette.types import ASGIApp

from mcpward.demo import create_demo_app
from mcpward.server import create_app
from mcpward.testing import authorization_server
from tests.conftest import serve as serve_in_loop

from .support import free_port, serve, wait_http

CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "search_orders", "arguments": {"query": "acme"}},
}
ACCEPT = {"accept": "application/json, text/event-stream"}


def upstream_app() -> ASGIApp:
    return create_demo_app(stateless_http=True, json_response=True)[0]


async def _readiness(http: httpx.AsyncClient, url: str, want: str, within: float = 10) -> None:
    deadline = time.monotonic() + within
    seen: list[object] = []
    while time.monotonic() < deadline:
        resp = await http.get(url)
        seen.append((resp.status_code, resp.json()))
        if resp.json()["status"] == want:
            assert resp.status_code == (200 if want == "ready" else 503)
            assert resp.headers["cache-control"] == "no-store"
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"/readyz never said {want!r}: {seen[-3:]}")


async def test_gateway_probes_follow_the_upstream_and_drain_on_sigterm(tmp_path: Path) -> None:
    as_port, up_port, port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    resource = f"http://127.0.0.1:{port}/mcp"
    base = f"http://127.0.0.1:{port}"
    async with (
        authorization_server(tmp_path, issuer=issuer) as authority,
        serve_in_loop(create_app(authority.server), as_port),
    ):
        token = authority.token("orders.read", resource=resource)
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "mcpward", "gateway"],
            *["--upstream", f"http://127.0.0.1:{up_port}/mcp", "--issuer", issuer],
            *["--port", str(port), "--shutdown-drain", "1.5", "--audit", "stderr"],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_http(base + "/healthz", within=20)
            async with httpx.AsyncClient(timeout=10) as http:
                # No upstream yet: alive, not ready. No token is needed for either.
                health = await http.get(base + "/healthz")
                assert (health.status_code, health.json()) == (200, {"status": "ok"})
                await _readiness(http, base + "/readyz", "upstream unreachable")
                auth = {"authorization": f"Bearer {token}", **ACCEPT}
                with serve(upstream_app(), up_port):
                    await _readiness(http, base + "/readyz", "ready")
                await _readiness(http, base + "/readyz", "upstream unreachable")  # it stopped
                with serve(upstream_app(), up_port):
                    await _readiness(http, base + "/readyz", "ready")  # and it is back
                    assert (await http.post(resource, json=CALL, headers=auth)).status_code == 200
                    # The probes are the gateway's own: never forwarded, never guarded.
                    assert (await http.post(resource, json=CALL)).status_code == 401

                    proc.send_signal(signal.SIGTERM)
                    await _readiness(http, base + "/readyz", "draining", within=1.0)
                    # Draining: out of rotation, and still serving what comes meanwhile.
                    served = await http.post(resource, json=CALL, headers=auth)
                    assert served.status_code == 200, served.text
                    assert '"isError":false' in served.text.replace(" ", "")
                    assert await asyncio.wait_for(proc.wait(), 10) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.stderr is not None
    err = (await proc.stderr.read()).decode()
    assert "Traceback" not in err
    assert token not in err
