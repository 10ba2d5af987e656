"""The client under test for `@modelcontextprotocol/conformance` (client scenarios).

The suite starts a mock MCP server (and authorization server) per scenario, runs
``python tests/conformance/client.py <server-url>`` with MCP_CONFORMANCE_SCENARIO and, for
some scenarios, MCP_CONFORMANCE_CONTEXT (JSON credentials), and judges the traffic.

Everything here is the mcpward client library plugged into the mcp SDK's streamable HTTP
client; the only test-specific part is `follow_redirects_headless`, which plays the browser:
the mock authorization servers approve at once, so "the user" is a GET of the authorization
URL whose redirect is then delivered to our real loopback listener.

The protocol version is negotiated the way the mcp SDK's `Client` does by default
(`mode="auto"`): `server/discover` first, so 2026-07-28 servers get the modern protocol
(`MCP-Protocol-Version` and `Mcp-Method` headers, no initialize handshake), and servers
that refuse it get the initialize handshake. The client signs in (or fetches its agent
token) before it connects, as an application should: the SDK (2.3) gives `server/discover`
ten seconds, a sign-in inside it included, then falls back to the initialize handshake, so
a slow sign-in (a person, or a loaded machine) would downgrade a 2026-07-28 server.
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
from mcp import types as mcp_types
from mcp.client import ClientRequestContext
from mcp.client.streamable_http import streamable_http_client

from mcpward.client import AgentAuth, EnterpriseAuth, HumanAuth, MemoryStore, StaticSecret
from mcpward.client._token_endpoint import SIGNING_ALGORITHMS, one_of

CIMD_URL = "https://conformance-test.local/client-metadata.json"
# The cross-app access scenario's name before and after 0.2 of the suite (SEP-990).
# Below the mocks' (Node's) 5 s keep-alive, so a connection is never reused as it closes.
LIMITS = httpx2.Limits(keepalive_expiry=2.0)
ENTERPRISE = ("auth/cross-app-access-complete-flow", "auth/enterprise-managed-authorization")


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
    if scenario in ENTERPRISE:
        return EnterpriseAuth(
            server_url,
            id_token=context["idp_id_token"],
            idp_token_endpoint=context["idp_token_endpoint"],
            idp_client_id=context["idp_client_id"],
            client_id=context["client_id"],
            client_secret=context["client_secret"],
            auth_method="client_secret_basic",
        )
    if scenario == "auth/wif-jwt-bearer":
        # SEP-1933: the platform-issued workload JWT instead of a secret.
        return AgentAuth(
            server_url,
            client_id=context["client_id"],
            workload_token=StaticSecret(context["valid_jwt"]),
        )
    if scenario.startswith("auth/client-credentials"):
        key = context.get("private_key_pem")
        return AgentAuth(
            server_url,
            client_id=context["client_id"],
            client_secret=context.get("client_secret"),
            private_key=StaticSecret(key) if key else None,
            signing_algorithm=one_of(
                context.get("signing_algorithm", "RS256"), SIGNING_ALGORITHMS, "algorithm"
            ),
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


def sample_arguments(schema: dict[str, Any]) -> dict[str, Any]:
    """A value of the right JSON type for each property of an object schema."""
    samples = {"number": 1, "integer": 1, "boolean": True}
    arguments: dict[str, Any] = {}
    for name, prop in (schema.get("properties") or {}).items():
        kind = prop.get("type") if isinstance(prop, dict) else None
        arguments[name] = samples.get(kind, "test") if isinstance(kind, str) else "test"
    return arguments


async def accept_elicitation(
    context: ClientRequestContext, params: mcp_types.ElicitRequestParams
) -> mcp_types.ElicitResult:
    """The user accepts whatever a server asks for (SEP-2322 input requests included)."""
    schema = getattr(params, "requested_schema", None)
    content = sample_arguments(schema) if isinstance(schema, dict) else None
    return mcp_types.ElicitResult(action="accept", content=content)


async def exercise(client: Client, context: dict[str, Any]) -> None:
    """List the tools and call each; where the scenario names the calls to make (argument
    encodings it checks, SEP-2243), make those instead."""
    tools = await client.list_tools()
    calls = context.get("toolCalls")
    if isinstance(calls, list):
        for call in calls:
            await client.call_tool(call["name"], call.get("arguments") or {})
        return
    for tool in tools.tools:
        await client.call_tool(tool.name, sample_arguments(tool.input_schema))


async def main(server_url: str) -> None:
    scenario = os.environ.get("MCP_CONFORMANCE_SCENARIO", "")
    context = json.loads(os.environ.get("MCP_CONFORMANCE_CONTEXT") or "{}")
    auth = build_auth(scenario, server_url, context)
    try:
        if auth is not None:
            await auth.token()  # discovery, registration, sign-in: before the SDK connects
        async with (
            httpx2.AsyncClient(auth=auth, timeout=30, limits=LIMITS) as http,
            Client(
                streamable_http_client(server_url, http_client=http),
                elicitation_callback=accept_elicitation,
            ) as client,
        ):
            await exercise(client, context)
    finally:
        if auth is not None:
            await auth.aclose()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    asyncio.run(main(sys.argv[1]))
