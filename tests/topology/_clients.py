"""What the topology's tests do as clients, over real HTTP: an agent's client_credentials
token, a person's sign-in on the real pages (authorization code + PKCE), refresh, and an
MCP session whose requests show whether a guard still accepts a token."""

from __future__ import annotations

import base64
import hashlib
import html
import re
import secrets
from typing import Any
from urllib.parse import urlencode

import httpx

from tests.topology._topology import Topology

ACCEPT = "application/json, text/event-stream"


async def agent_token(topo: Topology, resource: str, base: str | None = None) -> str:
    creds = topo.credentials
    async with httpx.AsyncClient(base_url=base or topo.issuer, timeout=30) as http:
        resp = await http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": resource},
            auth=(creds.agent_id, creds.agent_secret),
        )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def revoke(topo: Topology, token: str, base: str | None = None) -> None:
    creds = topo.credentials
    async with httpx.AsyncClient(base_url=base or topo.issuer, timeout=30) as http:
        resp = await http.post(
            "/revoke", data={"token": token}, auth=(creds.agent_id, creds.agent_secret)
        )
    assert resp.status_code == 200, resp.text


def _field(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field in the page"
    return html.unescape(match.group(1))


async def sign_in(topo: Topology, scope: str = "orders.read") -> dict[str, Any]:
    """The demo user signs in on the pages (through the balancer) and approves; the
    code is redeemed by the public client. Returns the token response."""
    verifier = secrets.token_urlsafe(48)
    challenge = (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    )
    params = {
        "response_type": "code",
        "client_id": topo.public_client,
        "redirect_uri": topo.redirect_uri,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "scope": scope,
        "state": secrets.token_urlsafe(8),
        "resource": topo.demo_resource,
    }
    creds = topo.credentials
    async with httpx.AsyncClient(base_url=topo.issuer, timeout=30) as http:
        page = await http.get("/authorize?" + urlencode(params))
        assert page.status_code == 200, page.text
        login = await http.post(
            "/login",
            data={
                "csrf": _field(page.text, "csrf"),
                "request": _field(page.text, "request"),
                "username": creds.username,
                "password": creds.password,
            },
        )
        assert login.status_code == 303, login.text
        location = login.headers["location"]
        if not location.startswith(topo.redirect_uri):
            consent = await http.get(location)
            assert consent.status_code == 200, consent.text
            chosen = re.findall(r'name="scope" value="([^"]+)"', consent.text)
            pairs = [
                ("csrf", _field(consent.text, "csrf")),
                ("request", _field(consent.text, "request")),
                ("decision", "approve"),
                *[("scope", s) for s in chosen],
            ]
            done = await http.post(
                "/consent",
                content=urlencode(pairs),
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert done.status_code == 303, done.text
            location = done.headers["location"]
        code = httpx.URL(location).params["code"]
        resp = await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": topo.redirect_uri,
                "client_id": topo.public_client,
            },
        )
    assert resp.status_code == 200, resp.text
    body: dict[str, Any] = resp.json()
    return body


def refresh_form(topo: Topology, token: str) -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": token, "client_id": topo.public_client}


class McpSession:
    """An initialized MCP session at ``url`` with ``token``; :meth:`probe` sends a ping
    and returns the HTTP status (200 while the guard accepts the token, 401 once it is
    refused, 503 when the guard cannot decide)."""

    def __init__(self, http: httpx.AsyncClient, url: str, token: str) -> None:
        self.http = http
        self.url = url
        self.headers = {"authorization": f"Bearer {token}", "accept": ACCEPT}
        self._id = 0

    @classmethod
    async def open(cls, http: httpx.AsyncClient, url: str, token: str) -> McpSession:
        session = cls(http, url, token)
        resp = await session.send(
            "initialize",
            {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "topology-probe", "version": "1"},
            },
        )
        assert resp.status_code == 200, resp.text
        if sid := resp.headers.get("mcp-session-id"):
            session.headers["mcp-session-id"] = sid
        note = await session.http.post(
            url,
            json={"jsonrpc": "2.0", "method": "notifications/initialized"},
            headers=session.headers,
        )
        assert note.status_code == 202, note.text
        return session

    async def send(self, method: str, params: dict[str, Any] | None = None) -> httpx.Response:
        self._id += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self._id, "method": method}
        if params is not None:
            message["params"] = params
        return await self.http.post(self.url, json=message, headers=self.headers)

    async def probe(self) -> int:
        return (await self.send("ping")).status_code

    async def call(self, tool: str, arguments: dict[str, Any]) -> httpx.Response:
        return await self.send("tools/call", {"name": tool, "arguments": arguments})
