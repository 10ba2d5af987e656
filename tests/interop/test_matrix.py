"""The interop matrix: each real MCP client against a real `mcpward serve --demo`, one cell
per client and flow. Cells run flow by flow across the clients (every sign-in, then every
tools/list, ...), so by the time the refresh cells run most clients' tokens have already
expired and the row of refresh cells waits once, not once per client.

The flows, as a person and a model would meet them:
  sign_in             the 401 sends the user to the real sign-in and consent pages; they
                      allow `orders.read` only (the consent page lets them untick the rest)
  tools_list          the host sees every tool, each annotated with the scopes it needs
  call                `search_orders` succeeds with the read-only token
  step_up             `refund_order` is 403 insufficient_scope; the client re-authorizes for
                      the wider scope, the user consents again, the retried call succeeds
  refresh             after the access token expired, the next call succeeds through the
                      refresh token, with no new browser sign-in
  client_credentials  the client as a machine, asking for every advertised scope, gets the
                      ones the demo agent is allowed
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest
from _pytest.mark import ParameterSet

from tests.interop.matrix import (
    CLIENTS,
    EXPECTED_FAILURES,
    FLOWS,
    ONLY,
    KnownClientBug,
    check_known,
)
from tests.interop.roster import MACHINE, Roster
from tests.interop.server import ALL_SCOPES, DemoServer

pytestmark = [pytest.mark.browser, pytest.mark.node]

DEMO_TOOLS = {"search_orders", "refund_order", "export_orders", "whoami"}
# What each machine client asks for with no scope configured: every scope the resource
# metadata advertises, except the TS SDK 1.x, which sends no `scope` at all.
MACHINE_ASKS = {
    "ts-sdk-1": None,
    "ts-sdk-2": ALL_SCOPES,
    "mcp-remote": ALL_SCOPES,
    "fastmcp": ALL_SCOPES,
}


def _cells() -> Iterator[ParameterSet]:
    for flow in FLOWS:
        for client in CLIENTS:
            if flow == "client_credentials" and client not in MACHINE:
                continue
            if flow not in ONLY.get(client, FLOWS):
                continue
            marks = []
            known = EXPECTED_FAILURES.get((client, flow))
            if known is not None:
                marks.append(
                    pytest.mark.xfail(raises=KnownClientBug, strict=True, reason=known.reason)
                )
            yield pytest.param(client, flow, id=f"{client}-{flow}", marks=marks)


def _issued(demo: DemoServer, client_ids: set[str], since: int = 0) -> list[dict[str, Any]]:
    return [
        e for e in demo.events(client_ids=client_ids)[since:] if e["event"].startswith("token.")
    ]


async def sign_in(roster: Roster, name: str, demo: DemoServer) -> None:
    client = await roster.sign_in(name)
    [authorization] = client.person.authorizations
    assert authorization.consent_shown
    assert "orders.read" in authorization.scope_requested.split()
    issued = _issued(demo, client.client_ids)
    assert issued[0]["event"] == "token.issued"
    # Refreshes may follow at once: some clients renew a token this short-lived right away.
    assert all(e["scopes"] == ["orders.read"] for e in issued), "the user allowed orders.read"


def _scope_annotation(tool: dict[str, Any]) -> dict[str, Any]:
    """The guard's annotation of a listed tool: the one `_meta` entry that names the scopes
    the tool requires."""
    found = [
        value
        for value in (tool.get("_meta") or {}).values()
        if isinstance(value, dict) and "required" in value
    ]
    assert len(found) == 1, f"{tool['name']} carries no scope annotation: {tool.get('_meta')}"
    return found[0]


async def tools_list(roster: Roster, name: str, demo: DemoServer) -> None:
    client = roster.signed_in(name)
    tools = {t["name"]: t for t in await client.list_tools()}
    assert set(tools) == DEMO_TOOLS, "every tool is listed, not only those the token can call"
    if not client.shows_meta:
        return
    refund = _scope_annotation(tools["refund_order"])
    assert sorted(refund["required"]) == ["orders.write", "refund.admin"]
    assert refund["granted"] is False
    search = _scope_annotation(tools["search_orders"])
    assert search["required"] == ["orders.read"] and search["granted"] is True


async def call(roster: Roster, name: str, demo: DemoServer) -> None:
    result = await roster.signed_in(name).call("search_orders", {"query": "acme"})
    assert result.ok, result.text
    assert "ord_1001" in result.text


async def step_up(roster: Roster, name: str, demo: DemoServer) -> None:
    client = roster.signed_in(name)
    client.person.allow = ALL_SCOPES
    before = len(client.person.authorizations)
    seen = len(demo.events(client_ids=client.client_ids))
    result = await client.call("refund_order", {"order_id": "ord_1001"})
    await client.person.settled()
    if not result.ok:
        check_known(name, "step_up", result.text)
    refused = demo.events("mcp.tool_call", client.client_ids)[-3:]
    assert result.ok, f"{result.text} (guard saw: {[e['outcome'] for e in refused]})"
    assert "120" in result.text
    assert len(client.person.authorizations) == before + 1, "one more browser consent"
    asked = client.person.authorizations[-1].scope_requested.split()
    assert {"orders.write", "refund.admin"} <= set(asked)
    widened = [e for e in _issued(demo, client.client_ids, seen) if "refund.admin" in e["scopes"]]
    assert widened, "a token with the wider scope was issued"


async def refresh(roster: Roster, name: str, demo: DemoServer) -> None:
    client = roster.signed_in(name)
    await demo.wait_for_expiry(client.client_ids)
    before = len(client.person.authorizations)
    refreshed = len(demo.events("token.refreshed", client.client_ids))
    result = await client.call("search_orders", {"query": "globex"})
    assert result.ok, result.text
    assert "ord_1003" in result.text
    assert len(client.person.authorizations) == before, "no new browser sign-in"
    assert len(demo.events("token.refreshed", client.client_ids)) > refreshed


async def client_credentials(roster: Roster, name: str, demo: DemoServer) -> None:
    agent = {demo.m2m_client_id}
    seen = len(demo.events(client_ids=agent))
    result = await MACHINE[name].call_once(demo, roster.machine_dir(name))
    issued = _issued(demo, agent, seen)
    assert result.ok, result.text
    assert "ord_1001" in result.text
    assert issued, "the demo agent got a token"
    assert all(e["scopes"] == ["orders.read"] for e in issued), "only what it is allowed"
    asked = issued[0].get("detail", {}).get("requested_scope")
    expected = MACHINE_ASKS[name]
    assert (asked.split() if asked else None) == (list(expected) if expected else None)


FLOW: dict[str, Callable[[Roster, str, DemoServer], Awaitable[None]]] = {
    "sign_in": sign_in,
    "tools_list": tools_list,
    "call": call,
    "step_up": step_up,
    "refresh": refresh,
    "client_credentials": client_credentials,
}


@pytest.mark.parametrize(("client", "flow"), list(_cells()))
async def test_interop(client: str, flow: str, roster: Roster, demo: DemoServer) -> None:
    await FLOW[flow](roster, client, demo)
