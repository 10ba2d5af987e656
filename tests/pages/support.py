"""A real authorization server with the sign-in pages over HTTP on 127.0.0.1, and helpers
that walk its forms the way a browser would (cookies, CSRF tokens, redirects)."""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from starlette.applications import Starlette
from starlette.routing import BaseRoute

from mcpward._clock import Clock, FrozenClock
from mcpward._secrets import new_id
from mcpward.audit import AuditLog, MemorySink
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server import AuthorizationServer, routes
from mcpward.server._rfc7636 import s256
from mcpward.server.pages import PagesSettings, hash_password, page_routes
from mcpward.storage.records import (
    ApplicationType,
    ClientRecord,
    ClientSource,
    ResourceRecord,
    UserRecord,
)
from tests.conftest import serve
from tests.services import free_port

PASSWORD = "correct horse battery staple"
REDIRECT = "http://127.0.0.1:33418/callback"
WEB_REDIRECT = "https://app.example.com/oauth/callback?tenant=7"
SCOPES = {
    "orders.read": "Read your orders",
    "orders.write": "Change your orders",
    "refund.admin": "Issue refunds",
}
TOOLS: list[dict[str, Any]] = [
    {
        "name": "search_orders",
        "scopes_required": ["orders.read"],
        "description": "Search orders by customer or status",
    },
    {
        "name": "refund_order",
        "scopes_required": ["orders.write", "refund.admin"],
        "description": "Refund an order",
    },
    {
        "name": "export_orders",
        "scopes_required": ["orders.read"],
        "description": "Export orders, streaming progress",
    },
    {"name": "whoami", "scopes_required": [], "description": "The verified caller"},
]


@dataclass
class Site:
    server: AuthorizationServer
    url: str
    audit: MemorySink
    clock: Clock
    resource: str

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.audit.events() if name is None or e["event"] == name]

    async def add_user(
        self, username: str = "alice", password: str = PASSWORD, **fields: Any
    ) -> UserRecord:
        record = UserRecord(
            id=new_id(),
            username=username,
            email=fields.pop("email", f"{username}@example.com"),
            display_name=fields.pop("display_name", username.capitalize()),
            password_hash=hash_password(password),
            created_at=self.clock(),
            **fields,
        )
        await self.server.store.users.create(record)
        return record

    async def add_client(
        self,
        client_id: str = "cli",
        *,
        name: str = "Orders CLI",
        redirect_uris: tuple[str, ...] = (REDIRECT,),
        application_type: ApplicationType = "native",
        source: ClientSource = "preregistered",
    ) -> None:
        await self.server.clients.create(
            ClientRecord(
                client_id=client_id,
                name=name,
                source=source,
                token_endpoint_auth_method="none",
                grant_types=("authorization_code", "refresh_token"),
                redirect_uris=redirect_uris,
                application_type=application_type,
            )
        )


def authorize_params(site: Site, verifier: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "cli",
        "redirect_uri": REDIRECT,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "scope": "orders.read orders.write",
        "state": "st-" + secrets.token_urlsafe(8),
        "resource": site.resource,
    }
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


def authorize_path(params: dict[str, str]) -> str:
    return "/authorize?" + urlencode(params)


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field in the page"
    return html.unescape(match.group(1))


def new_verifier() -> str:
    return secrets.token_urlsafe(48)


@asynccontextmanager
async def start_site(
    tmp_path: Path,
    *,
    clock: Clock | None = None,
    pages: PagesSettings | None = None,
    resource: str = "http://127.0.0.1:9/mcp",
    tools: list[dict[str, Any]] | None = None,
    extra_routes: list[BaseRoute] | None = None,
    database_url: str | None = None,
) -> AsyncIterator[Site]:
    clock = clock or FrozenClock()
    sink = MemorySink()
    port = free_port()
    settings = Settings(
        issuer=f"http://127.0.0.1:{port}",
        data_dir=tmp_path,
        database_url=database_url or f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}",
    )
    server = await open_server(settings, audit=AuditLog([sink], clock), clock=clock)
    await server.register_resource(
        ResourceRecord(uri=resource, name="Orders", scopes=SCOPES, tools=tools or TOOLS)
    )
    page_table = page_routes(server, pages or PagesSettings())
    app = Starlette(routes=routes(server) + page_table.routes + (extra_routes or []))
    try:
        async with serve(app, port) as url:
            yield Site(server, url, sink, clock, resource)
    finally:
        await page_table.aclose()
        await server.close()


class Browserish:
    """An httpx client that keeps cookies and never follows redirects by itself."""

    def __init__(self, site: Site) -> None:
        self.site = site
        self.http = httpx.AsyncClient(base_url=site.url, follow_redirects=False)

    async def __aenter__(self) -> Browserish:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def sign_in(
        self, params: dict[str, str], username: str = "alice", password: str = PASSWORD
    ) -> httpx.Response:
        """GET /authorize, then post the login form. Returns the login POST response."""
        page = await self.http.get(authorize_path(params))
        assert page.status_code == 200, page.text
        return await self.http.post(
            "/login",
            data={
                "csrf": field(page.text, "csrf"),
                "request": field(page.text, "request"),
                "username": username,
                "password": password,
            },
        )

    async def consent_page(self, params: dict[str, str]) -> httpx.Response:
        login = await self.sign_in(params)
        assert login.status_code == 303, login.text
        page = await self.http.get(login.headers["location"])
        assert page.status_code == 200, page.text
        assert "wants to access" in page.text
        return page

    async def approve(
        self, page: httpx.Response, scopes: list[str] | None = None, remember: bool = True
    ) -> httpx.Response:
        data: list[tuple[str, str]] = [
            ("csrf", field(page.text, "csrf")),
            ("request", field(page.text, "request")),
            ("decision", "approve"),
        ]
        chosen = (
            scopes if scopes is not None else re.findall(r'name="scope" value="([^"]+)"', page.text)
        )
        data += [("scope", s) for s in chosen]
        if remember:
            data.append(("remember", "yes"))
        return await self.post_pairs("/consent", data)

    async def post_pairs(self, path: str, pairs: list[tuple[str, str]]) -> httpx.Response:
        return await self.http.post(
            path,
            content=urlencode(pairs),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )

    async def code_for(self, params: dict[str, str]) -> str:
        page = await self.consent_page(params)
        done = await self.approve(page)
        assert done.status_code == 303
        location = httpx.URL(done.headers["location"])
        assert location.params["state"] == params["state"]
        return location.params["code"]


async def redeem(
    site: Site,
    code: str,
    verifier: str,
    *,
    client_id: str = "cli",
    redirect_uri: str = REDIRECT,
    resource: str | None = None,
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=site.url) as http:
        return await http.post(
            "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "code_verifier": verifier,
                "redirect_uri": redirect_uri,
                "client_id": client_id,
                "resource": resource or site.resource,
            },
        )
