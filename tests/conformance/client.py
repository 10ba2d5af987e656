"""The client under test for `@modelcontextprotocol/conformance` (client scenarios).

The suite starts a mock MCP server (and authorization server) per scenario, runs
``python tests/conformance/client.py <server-url>`` with MCP_CONFORMANCE_SCENARIO and, for
some scenarios, MCP_CONFORMANCE_CONTEXT (JSON credentials), and judges the traffic.

Everything here is the mcpward client library plugged into the mcp SDK's streamable HTTP
client; the only test-specific part is `follow_redirects_headless`, which plays the browser:
the mock authorization servers approve at once, so "the user" is a GET of the authorization
URL whose redirect is then delivered to our real loopback listener.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward.client import AgentAuth, EnterpriseAuth, HumanAuth, MemoryStore, StaticSecret

CIMD_URL = "https://conformance-test.local/client-metadata.json"


async def follow_redirects_headless(url: str) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(url)
        if response.status_code not in (301, 302, 303, 307, 308):
            raise RuntimeError(f"authorization endpoint answered {response.status_code}")
        # The Location is our loopback listener: deliver the redirect like a browser would.
        await http.get(response.headers["location"])


def build_auth(
    scenario: str, server_url: str, context: dict[str, Any]
) -> HumanAuth | AgentAuth | None:
    if not scenario.startswith("auth/"):
        return None
    if scenario == "auth/cross-app-access-complete-flow":
        return EnterpriseAuth(
            server_url,
            id_token=context["idp_id_token"],
            idp_token_endpoint=context["idp_token_endpoint"],
            idp_client_id=context["idp_client_id"],
            client_id=context["client_id"],
            client_secret=context["client_secret"],
            auth_method="client_secret_basic",
        )
    if scenario.startswith("auth/client-credentials"):
        key = context.get("private_key_pem")
        return AgentAuth(
            server_url,
            client_id=context["client_id"],
            client_secret=context.get("client_secret"),
            private_key=StaticSecret(key) if key else None,
            signing_algorithm=context.get("signing_algorithm", "RS256"),
        )
    return HumanAuth(
        server_url,
        client_id=context.get("client_id"),
        client_secret=context.get("client_secret"),
        client_metadata_url=CIMD_URL,
        client_name="mcpward conformance client",
        store=MemoryStore(),
        authorize=follow_redirects_headless,
        login_timeout=20,
        lock_dir=Path(tempfile.mkdtemp(prefix="mcpward-locks-")),
    )


async def exercise(client: Client) -> None:
    tools = await client.list_tools()
    for tool in tools.tools:
        arguments: dict[str, Any] = {}
        for name, schema in (tool.input_schema.get("properties") or {}).items():
            kind = schema.get("type") if isinstance(schema, dict) else None
            arguments[name] = 1 if kind in ("number", "integer") else "test"
        await client.call_tool(tool.name, arguments)


async def main(server_url: str) -> None:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    auth = build_auth(scenario, server_url, context)
    try:
        async with (
            httpx2.AsyncClient(auth=auth, timeout=30) as http,
            Client(streamable_http_client(server_url, http_client=http), mode="legacy") as client,
        ):
            await exercise(client)
    finally:
        if auth is not None:
            await auth.aclose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1]))
