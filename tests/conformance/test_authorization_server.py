"""The conformance suite's authorization-server scenarios (`conformance authorization`,
new in 0.2) against mcpward's own authorization server: the real app over HTTP on
127.0.0.1, with a registered resource, a user and a public client whose redirect URI is
the suite's callback listener.

The suite prints an authorization URL and waits for a browser to come back to its
callback; the test plays that user through mcpward's real sign-in and consent pages
(form posts with their CSRF fields, `PagesBrowser`), then the suite redeems the code itself
and judges metadata, redirect and token response.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from mcpward._clock import system_clock
from tests.client.support import PagesBrowser
from tests.conformance.suite import NEXT, NODE_BIN, ROOT, node_env
from tests.pages.support import start_site
from tests.services import free_port

pytestmark = pytest.mark.node

RESOURCE = "http://127.0.0.1:9/mcp"


async def run_authorization_scenarios(
    issuer: str, client_id: str, port: int, out: Path
) -> tuple[int, str, list[str]]:
    """Run every authorization-server scenario; sign in whenever the suite asks for it.
    Returns the exit code, the output, and the authorization URLs it asked a browser to open."""
    process = await asyncio.create_subprocess_exec(
        str(NODE_BIN / "node"),
        str(NEXT.cli),
        "authorization",
        "--url",
        issuer,
        "--client-id",
        client_id,
        "--resource",
        RESOURCE,
        "--port",
        str(port),
        "-o",
        str(out),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=node_env(),
        cwd=ROOT,
    )
    assert process.stdout is not None
    browser, output, visits = PagesBrowser(), [], []
    async with asyncio.timeout(180):
        while line := (await process.stdout.readline()).decode(errors="replace"):
            output.append(line)
            if line.startswith(f"{issuer}/authorize?"):
                visits.append(line.strip())
                await browser(line.strip())
        code = await process.wait()
    return code, "".join(output), visits


def checks(out: Path) -> dict[str, str]:
    """Check id -> status, from every checks.json the run wrote."""
    found: dict[str, str] = {}
    for path in out.rglob("checks.json"):
        for check in json.loads(path.read_text()):
            found[check["id"]] = check["status"]
    return found


async def test_authorization_server_scenarios_pass_against_mcpward(tmp_path: Path) -> None:
    callback_port = free_port()
    async with start_site(tmp_path, clock=system_clock, resource=RESOURCE) as site:
        await site.add_user()
        await site.add_client(
            "conformance",
            name="MCP conformance suite",
            redirect_uris=(f"http://127.0.0.1:{callback_port}/callback",),
        )
        code, output, visits = await run_authorization_scenarios(
            site.issuer, "conformance", callback_port, tmp_path / "results"
        )
    results = checks(tmp_path / "results")
    print(output)
    assert code == 0, output
    # One sign-in, for the resource registered at mcpward (RFC 8707).
    assert [httpx.URL(url).params["resource"] for url in visits] == [RESOURCE]
    assert results.get("authorization-code-grant") == "SUCCESS", results
    assert results and all(status in ("SUCCESS", "INFO") for status in results.values()), results
    print(f"=== {NEXT.version} authorization-server checks passed: {len(results)}/{len(results)}")
