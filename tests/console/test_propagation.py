"""From "revoke" in the console to refusal at a guard in another process, measured, next
to the same revocation made with the CLI.

All real processes: ``mcpward serve`` with its console on a listener of its own, a
``mcpward gateway`` in front of the demo MCP server (learning of revocations through
Redis, or by polling the server's database every 0.2 s, as in the gateway CLI test),
the ``mcp`` SDK client calling a tool through it, and ``mcpward tokens revoke`` for the
CLI's figure. The gateway also writes its audit events to the server's database
(``--audit-db``), where the console's activity view finds the refusals."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pyotp
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.demo import create_demo_app
from mcpward.storage.records import EventFilter
from mcpward.storage.sql import SqlStore
from tests.console.support import PASSWORD, OperatorClient
from tests.guard.support import bearer_client, serve, wait_http
from tests.services import free_port

MCPWARD = [sys.executable, "-m", "mcpward"]


@dataclass
class RealConsole:
    """The console of a real ``mcpward serve`` process, on the real clock."""

    url: str
    totp_secret: str

    def code(self) -> str:
        return pyotp.TOTP(self.totp_secret).now()


async def run(env: dict[str, str], *args: str, stdin: str = "") -> Any:
    proc = await asyncio.create_subprocess_exec(
        *MCPWARD, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(stdin.encode()), 60)
    assert proc.returncode == 0, err.decode()
    return json.loads(out) if "--json" in args else out.decode()


async def token(issuer: str, client_id: str, secret: str, resource: str) -> str:
    async with httpx.AsyncClient() as http:
        r = await http.post(
            f"{issuer}/token",
            data={"grant_type": "client_credentials", "resource": resource},
            auth=(client_id, secret),
        )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def until_refused(session: Client, since: float) -> tuple[float, int]:
    """Call the tool until the gateway refuses: seconds from ``since``, and how many
    calls were still served."""
    served = 0
    while True:
        try:
            await session.call_tool("search_orders", {"query": "acme"})
        except MCPError:
            return time.perf_counter() - since, served
        served += 1
        assert time.perf_counter() - since < 10, "the revocation never arrived"


@pytest.mark.parametrize("feed", ["table", pytest.param("redis", marks=pytest.mark.redis)])
async def test_console_revoke_reaches_a_gateway_process(
    tmp_path: Path, feed: str, request: pytest.FixtureRequest
) -> None:
    as_port, console_port, gw_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    resource = f"http://127.0.0.1:{gw_port}/mcp"
    database = f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}"
    env = {
        **os.environ,
        "MCPWARD_CONFIG": str(tmp_path / "none.toml"),
        "MCPWARD_DATA_DIR": str(tmp_path),
        "MCPWARD_DATABASE_URL": database,
        "MCPWARD_ISSUER": issuer,
        "MCPWARD_PORT": str(as_port),
        "MCPWARD_CONSOLE__ENABLED": "true",
        "MCPWARD_CONSOLE__PORT": str(console_port),
        "MCPWARD_AUDIT_SINK": f"file:{tmp_path / 'audit.jsonl'}",
    }
    gateway_feed = ["--revocations-db", database, "--poll-interval", "0.2"]
    if feed == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        env["MCPWARD_REDIS_URL"] = redis_url
        gateway_feed = ["--redis", redis_url]

    await run(env, "db", "upgrade")
    await run(env, "resources", "add", resource, "--scope", "orders.read=Read orders")
    secrets = {}
    for name in ("agent-console", "agent-cli"):
        created = await run(env, "clients", "create", name, "--scope", "orders.read", "--json")
        secrets[name] = created["client_secret"]
    olivia = await run(
        env, "users", "add", "olivia", "--password-stdin", "--totp", "--json", stdin=PASSWORD + "\n"
    )
    await run(env, "users", "grant-operator", "olivia")

    processes = []
    upstream_app, _ = create_demo_app()
    try:
        processes.append(
            await asyncio.create_subprocess_exec(
                *MCPWARD, "serve", "--port", str(as_port), env=env,
                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            )
        )  # fmt: skip
        with serve(upstream_app) as upstream:
            processes.append(
                await asyncio.create_subprocess_exec(
                    *MCPWARD, "gateway", "--upstream", f"{upstream}/mcp", "--issuer", issuer,
                    "--resource", resource, "--port", str(gw_port), *gateway_feed,
                    "--audit", "stderr", "--audit-db", database, env=env,
                    stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
                )
            )  # fmt: skip
            console = RealConsole(f"http://127.0.0.1:{console_port}", olivia["totp_secret"])
            await wait_http(f"{issuer}/healthz")
            await wait_http(console.url + "/sign-in")
            await wait_http(resource)
            tokens = {n: await token(issuer, n, s, resource) for n, s in secrets.items()}
            http_console = bearer_client(tokens["agent-console"])
            http_cli = bearer_client(tokens["agent-cli"])
            async with (
                Client(streamable_http_client(resource, http_client=http_console)) as by_console,
                Client(streamable_http_client(resource, http_client=http_cli)) as by_cli,
                OperatorClient(console) as operator,
            ):
                for session in (by_console, by_cli):
                    result = await session.call_tool("search_orders", {"query": "acme"})
                    assert "ord_1001" in str(result.structured_content)
                assert (await operator.sign_in()).status_code == 303
                # The console: "Revoke all tokens" of the client, confirmed.
                page = await operator.get("/clients/revoke?id=agent-console")
                assert page.status_code == 200
                clicked = time.perf_counter()
                done = await operator.confirm("/clients/revoke?id=agent-console")
                answered = time.perf_counter()
                assert done.status_code == 303
                console_delay, console_served = await until_refused(by_console, answered)
                console_total = console_delay + (answered - clicked)
                # The CLI: the same revocation of the other client.
                started = time.perf_counter()
                await run(env, "tokens", "revoke", "--client", "agent-cli")
                exited = time.perf_counter()
                cli_delay, cli_served = await until_refused(by_cli, exited)
    finally:
        for proc in processes:
            proc.terminate()
        codes = [await proc.wait() for proc in processes]
    # SIGTERM is a graceful stop: both close what they opened (the audit sinks write
    # what they hold) and exit normally.
    assert codes == [0, 0]

    print(
        f"\nrevocation via {feed}, gateway in its own process:\n"
        f"  console: answered in {(answered - clicked) * 1000:.0f} ms, refused "
        f"{console_delay * 1000:.1f} ms after the answer ({console_total * 1000:.0f} ms after "
        f"the click), {console_served} call(s) still served\n"
        f"  CLI:     ran {(exited - started) * 1000:.0f} ms, refused {cli_delay * 1000:.1f} ms "
        f"after it exited, {cli_served} call(s) still served"
    )
    if feed == "redis":
        assert console_served == 0 and cli_served == 0  # the very next call
    assert console_delay < 1.5 and cli_delay < 1.5

    # Both revocations in the audit trail with who made them; the gateway's refusals
    # in the audit table the console searches.
    lines = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    revoked = [e for e in lines if e["event"] == "tokens.revoked"]
    assert {(e["client_id"], e["actor"]) for e in revoked} == {
        ("agent-console", "console:olivia"),
        ("agent-cli", f"cli:{getpass.getuser()}"),
    }
    # (A refused token is not trusted for its claims: those events carry only the
    # reason, no client id.)
    store = await SqlStore.open(database, migrate=False)
    everything = EventFilter(0.0, time.time() + 60, event="mcp.request")
    try:
        deadline = time.monotonic() + 10
        while True:
            rows = await store.audit_events.search(everything, limit=500)
            served = {e.client_id for e in rows if e.outcome == "ok"}
            refused = [e for e in rows if e.reason == "invalid_token"]
            if served >= {"agent-console", "agent-cli"} and len(refused) >= 2:
                break
            assert time.monotonic() < deadline, "the gateway's events never reached the table"
            await asyncio.sleep(0.1)
    finally:
        await store.close()
    assert all(e.outcome == "unauthorized" for e in refused)
