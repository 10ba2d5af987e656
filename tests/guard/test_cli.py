"""``mcpward manifest`` and ``mcpward gateway`` run as real processes against the real
authorization server; the gateway process learns of revocations by polling the
authorization server's database (cross-process)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from mcpward.demo import create_demo_app
from mcpward.guard._lists import META_KEY
from mcpward.server import create_app
from mcpward.testing import authorization_server
from tests.conftest import serve as serve_in_loop

from .support import bearer_client, free_port, serve, wait_http

MCPWARD = [sys.executable, "-m", "mcpward"]


async def run(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *MCPWARD, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode or 0, out.decode(), err.decode()


async def test_manifest_command_prints_the_source_document_format(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    async with (
        authorization_server(tmp_path, issuer=issuer) as authority,
        serve_in_loop(create_app(authority.server), port),
    ):
        code, out, err = await run("manifest", "--issuer", issuer, "--client-id", "mcp-orders")
    assert code == 0, err
    manifest = json.loads(out)
    assert manifest["name"] == "orders"
    assert manifest["oauth"] == {
        "authorization_url": f"{issuer}/authorize",
        "token_url": f"{issuer}/token",
        "scopes": ["orders.read", "orders.write", "refund.admin"],
        "client_id": "mcp-orders",
    }
    tools = {t["name"]: t["scopes_required"] for t in manifest["tools"]}
    assert tools["search_orders"] == ["orders.read"]
    assert tools["refund_order"] == ["orders.write", "refund.admin"]


async def test_cli_errors_are_clear(tmp_path: Path) -> None:
    bad = tmp_path / "tools.json"
    bad.write_text('{"name": "x", "tools": [{"scopes_required": ["a"]}]}')
    code, _, err = await run(
        "gateway", "--upstream", "http://127.0.0.1:1/mcp", "--issuer", "http://x", "--manifest",
        str(bad),
    )  # fmt: skip
    assert code != 0
    assert "tools[0] needs a string 'name'" in err
    assert "Traceback" not in err
    code, _, err = await run("manifest", "--issuer", f"http://127.0.0.1:{free_port()}")
    assert code != 0 and "discovery failed" in err and "Traceback" not in err


@pytest.mark.parametrize("backend", ["table", pytest.param("redis", marks=pytest.mark.redis)])
async def test_gateway_process_honours_revocation(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    """The gateway as its own process learns of an offboarded user from the authorization
    server: by polling its database every 0.2 s, or through Redis (published by the
    authorization server before it answers). The measured delay is printed."""
    as_port, gw_port = free_port(), free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    resource = f"http://127.0.0.1:{gw_port}/mcp"
    upstream_app, _ = create_demo_app()
    settings: dict[str, str] = {}
    if backend == "redis":
        redis_url: str = request.getfixturevalue("redis_url")
        feed = ["--redis", redis_url]
        # The authorization server publishes to the Redis its settings name.
        settings["redis_url"] = redis_url
    else:
        feed = ["--poll-interval", "0.2"]
    async with authorization_server(tmp_path, issuer=issuer, **settings) as authority:
        if backend == "table":
            feed += ["--revocations-db", authority.server.settings.resolved_database_url()]
        async with serve_in_loop(create_app(authority.server), as_port):
            with serve(upstream_app) as upstream:
                proc = await asyncio.create_subprocess_exec(
                    *MCPWARD, "gateway",
                    "--upstream", f"{upstream}/mcp",
                    "--issuer", issuer,
                    "--resource", resource,
                    "--port", str(gw_port),
                    *feed,
                    "--audit", f"file:{tmp_path / 'audit.jsonl'}",
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.PIPE,
                )  # fmt: skip
                try:
                    await wait_http(resource, within=20)
                    token = authority.token("orders.read", resource=resource, subject="frank")
                    http = bearer_client(token)
                    async with Client(streamable_http_client(resource, http_client=http)) as c:
                        result = await c.call_tool("search_orders", {"query": "acme"})
                        assert "ord_1001" in str(result.structured_content)
                        await authority.offboard("frank")
                        revoked = time.perf_counter()
                        still_served = 0
                        refusal = ""
                        while True:
                            assert time.perf_counter() - revoked < 5
                            try:
                                await c.call_tool("search_orders", {})
                            except MCPError as exc:
                                refusal = str(exc)
                                if "revoked" in refusal:
                                    break
                                # Another error (a timeout on a loaded machine): try again.
                                continue
                            still_served += 1
                        delay = time.perf_counter() - revoked
                    # The audit line is written once the answer is sent, which can be
                    # just after the client read it: wait for it before stopping.
                    await _wait_audit(tmp_path / "audit.jsonl", "unauthorized")
                finally:
                    proc.terminate()
                    await proc.wait()
    print(
        f"gateway process, revocation via {backend}: refused after {delay * 1000:.1f} ms, "
        f"{still_served} request(s) still served"
    )
    # The guard's refusal, not some other error (a timeout on a loaded machine, say).
    assert "revoked" in refusal, refusal
    if backend == "redis":
        assert still_served == 0  # the very next request
    assert delay < 1.5
    audit = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    outcomes = [e["outcome"] for e in audit if e.get("tool") == "search_orders"]
    # Each line is written after its answer is sent, so the last call served before the
    # revocation may land after the refusal's line: compare counts, not order.
    assert outcomes[0] == "ok" and "unauthorized" in outcomes
    assert outcomes.count("ok") >= 1 + still_served  # a call that timed out may count too
    assert all(token not in line for line in (tmp_path / "audit.jsonl").read_text().splitlines())


async def test_gateway_list_filter_flag(tmp_path: Path) -> None:
    """``mcpward gateway`` lists every tool annotated with its scopes; ``--list-filter``
    shows a read-only token only what it can call (two gateway processes, one upstream)."""
    as_port = free_port()
    issuer = f"http://127.0.0.1:{as_port}"
    upstream_app, _ = create_demo_app()
    listed: dict[str, dict[str, Any]] = {}
    async with (
        authorization_server(tmp_path, issuer=issuer) as authority,
        serve_in_loop(create_app(authority.server), as_port),
    ):
        with serve(upstream_app) as upstream:
            for name, flags in (("annotate", []), ("filter", ["--list-filter"])):
                port = free_port()
                resource = f"http://127.0.0.1:{port}/mcp"
                args = ["--upstream", f"{upstream}/mcp", "--issuer", issuer, "--port", str(port)]
                proc = await asyncio.create_subprocess_exec(
                    *MCPWARD,
                    "gateway",
                    *args,
                    *flags,
                    stdout=asyncio.subprocess.DEVNULL,
                    stderr=asyncio.subprocess.DEVNULL,
                )
                try:
                    await wait_http(resource, within=20)
                    async with httpx.AsyncClient() as plain:
                        challenge = await plain.post(resource, json={})
                    # No product banner; the challenge is the guard's own.
                    assert challenge.status_code == 401, challenge.text
                    assert "server" not in challenge.headers
                    http = bearer_client(authority.token("orders.read", resource=resource))
                    async with Client(streamable_http_client(resource, http_client=http)) as c:
                        tools = (await c.list_tools()).tools
                    listed[name] = {t.name: (t.meta or {}).get(META_KEY) for t in tools}
                finally:
                    proc.terminate()
                    await proc.wait()
    assert listed["annotate"]["refund_order"] == {
        "required": ["orders.write", "refund.admin"],
        "granted": False,
    }
    assert listed["annotate"]["search_orders"] == {"required": ["orders.read"], "granted": True}
    assert listed["filter"] == {"search_orders": None, "export_orders": None, "whoami": None}


async def _wait_audit(path: Path, outcome: str) -> None:
    def lines() -> list[str]:
        return path.read_text().splitlines() if path.exists() else []

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(
            json.loads(line).get("outcome") == outcome for line in await asyncio.to_thread(lines)
        ):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no {outcome} audit event")


async def test_gateway_process_requiring_dpop(tmp_path: Path) -> None:
    """``--dpop-required``: bearer tokens are refused with a DPoP-only challenge; a token
    bound to the caller's key, with a proof, gets through; its nonce key is checked."""
    from mcpward.dpop import ProofKey

    code, _, err = await run(
        "gateway", "--upstream", "http://127.0.0.1:1/mcp", "--issuer", "http://x",
        "--dpop-nonce-key-env", "MCPWARD_TEST_UNSET_KEY",
    )  # fmt: skip
    assert code != 0 and "must hold 32 bytes" in err and "Traceback" not in err

    as_port, gw_port = free_port(), free_port()
    issuer, resource = f"http://127.0.0.1:{as_port}", f"http://127.0.0.1:{gw_port}/mcp"
    upstream_app, _ = create_demo_app()
    async with (
        authorization_server(tmp_path, issuer=issuer) as authority,
        serve_in_loop(create_app(authority.server), as_port),
    ):
        with serve(upstream_app) as upstream:
            proc = await asyncio.create_subprocess_exec(
                *MCPWARD, "gateway", "--upstream", f"{upstream}/mcp", "--issuer", issuer,
                "--resource", resource, "--port", str(gw_port), "--dpop-required",
                "--audit", f"file:{tmp_path / 'audit.jsonl'}",
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
            )  # fmt: skip
            try:
                await wait_http(resource, within=20)
                key = ProofKey.generate()
                bearer = authority.token("orders.read", resource=resource)
                bound = authority.token("orders.read", resource=resource, jkt=key.jkt)
                ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
                async with httpx.AsyncClient() as http:
                    refused = await http.post(
                        resource, json=ping, headers={"authorization": f"Bearer {bearer}"}
                    )
                    prm = await http.get(
                        f"http://127.0.0.1:{gw_port}/.well-known/oauth-protected-resource/mcp"
                    )
                    async with Client(
                        streamable_http_client(resource, http_client=_dpop_client(bound, key))
                    ) as c:
                        result = await c.call_tool("search_orders", {"query": "acme"})
            finally:
                proc.terminate()
                await proc.wait()
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith('DPoP error="invalid_token"')
    assert prm.json()["dpop_bound_access_tokens_required"] is True
    assert "ord_1001" in str(result.structured_content)


def _dpop_client(token: str, key: Any) -> Any:
    async def prove(request: Any) -> None:
        request.headers["authorization"] = f"DPoP {token}"
        request.headers["dpop"] = key.proof(request.method, str(request.url), access_token=token)

    return bearer_client(None, event_hooks={"request": [prove]})
