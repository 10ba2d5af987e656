"""A real authorization server with its operator console over HTTP on 127.0.0.1, an
operator (password and TOTP) to sign in with, and an httpx client that walks the console's
forms as a browser does.

The console's cookie is Secure (``__Host-``); browsers send it to http://127.0.0.1, but
Python's cookie jar sends Secure cookies over https only, so :class:`OperatorClient`
keeps the console's cookie itself, as the browser would."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import httpx
import pyotp

from mcpward._clock import FrozenClock
from mcpward.audit import AuditLog, MemorySink
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.console import ConsoleApp
from mcpward.operations import Actor, Operations
from mcpward.server import AuthorizationServer
from mcpward.server.pages import hash_password
from mcpward.storage.audit_sink import DatabaseSink
from mcpward.storage.records import ResourceRecord, UserRecord
from tests.conftest import serve
from tests.services import free_port

PASSWORD = "operator passphrase 2026"
RESOURCE = "http://127.0.0.1:9/mcp"
SCOPES = {"orders.read": "Read orders", "orders.write": "Change orders"}
SETUP = Actor("cli", "test-setup")


@dataclass
class ConsoleSite:
    server: AuthorizationServer
    ops: Operations
    url: str
    audit: MemorySink
    table: DatabaseSink
    clock: FrozenClock
    operator: UserRecord
    totp_secret: str

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.audit.events() if name is None or e["event"] == name]

    def code(self) -> str:
        """A TOTP code no one has used yet: the clock moves on one 30-second step first
        (a code is accepted once)."""
        self.clock.advance(30)
        return pyotp.TOTP(self.totp_secret).at(int(self.clock()))

    async def add_user(self, username: str, *, operator: bool = False) -> tuple[UserRecord, str]:
        """A user with a password and TOTP; with ``operator``, given the role."""
        user, enrolment = await self.ops.users.create(
            username,
            SETUP,
            email=f"{username}@example.com",
            display_name=username.capitalize(),
            password_hash=hash_password(PASSWORD),
            totp=True,
        )
        assert enrolment is not None
        if operator:
            user = await self.ops.users.grant_operator(user, SETUP)
        return user, enrolment.secret


@asynccontextmanager
async def start_console(
    tmp_path: Path, *, database_url: str | None = None, now: float | None = None, **settings: Any
) -> AsyncIterator[ConsoleSite]:
    clock = FrozenClock(now)
    sink = MemorySink()
    url = database_url or f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}"
    port = free_port()
    config = Settings(
        issuer=f"http://127.0.0.1:{free_port()}",
        data_dir=tmp_path,
        database_url=url,
        console={"enabled": True, "port": port},
        **settings,
    )
    # The audit table written as the server writes it (the database sink, in batches).
    table = DatabaseSink(url, flush_interval=0.05)
    server = await open_server(config, audit=AuditLog([sink, table], clock), clock=clock)
    await server.register_resource(ResourceRecord(uri=RESOURCE, name="Orders", scopes=SCOPES))
    console = ConsoleApp(server)
    ops = Operations(server)
    user, enrolment = await ops.users.create(
        "olivia",
        SETUP,
        email="olivia@example.com",
        display_name="Olivia",
        password_hash=hash_password(PASSWORD),
        totp=True,
    )
    assert enrolment is not None
    user = await ops.users.grant_operator(user, SETUP)
    try:
        async with serve(console.app, port) as base:
            yield ConsoleSite(server, ops, base, sink, table, clock, user, enrolment.secret)
    finally:
        await console.console.aclose()
        await server.close()


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    assert match, f"no {name} field in the page"
    return html.unescape(match.group(1))


class Reachable(Protocol):
    """A console to sign in to: its URL and the operator's next TOTP code."""

    @property
    def url(self) -> str: ...

    def code(self) -> str: ...


class OperatorClient:
    """An httpx client that keeps the console's Secure cookie (see the module docstring)
    and never follows redirects by itself."""

    def __init__(self, site: Reachable) -> None:
        self.site = site
        self.http = httpx.AsyncClient(base_url=site.url, follow_redirects=False)
        self.cookie: str | None = None

    async def __aenter__(self) -> OperatorClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    def _keep(self, response: httpx.Response) -> httpx.Response:
        for value in response.headers.get_list("set-cookie"):
            name, _, rest = value.partition("=")
            if name == "__Host-mcpward_console":
                content = rest.split(";", 1)[0]
                self.cookie = content.strip('"') or None if "Max-Age=0" not in rest else None
        return response

    def _headers(self) -> dict[str, str]:
        return {"cookie": f"__Host-mcpward_console={self.cookie}"} if self.cookie else {}

    async def get(self, path: str) -> httpx.Response:
        return self._keep(await self.http.get(path, headers=self._headers()))

    async def post(self, path: str, data: dict[str, str]) -> httpx.Response:
        return self._keep(await self.http.post(path, data=data, headers=self._headers()))

    async def sign_in(self, username: str = "olivia", code: str | None = None) -> httpx.Response:
        page = await self.get("/sign-in")
        assert page.status_code == 200, page.text
        return await self.post(
            "/sign-in",
            {
                "csrf": field(page.text, "csrf"),
                "next": "/",
                "username": username,
                "password": PASSWORD,
                "code": code or self.site.code(),
            },
        )

    async def confirm(self, path: str) -> httpx.Response:
        """GET an action's confirmation page and post its form (the button)."""
        page = await self.get(path)
        assert page.status_code == 200, (path, page.status_code, page.headers, page.text)
        form = re.search(r'<form method="post" action="([^"]+)" class="actions">(.*?)</form>',
                         page.text, re.S)  # fmt: skip
        assert form, page.text
        fields = dict(re.findall(r'name="([^"]+)" value="([^"]*)"', form.group(2)))
        return await self.post(
            html.unescape(form.group(1)), {k: html.unescape(v) for k, v in fields.items()}
        )

    async def step_up(self, next_path: str) -> httpx.Response:
        page = await self.get("/step-up?next=" + quote(next_path, safe=""))
        return await self.post(
            "/step-up",
            {
                "csrf": field(page.text, "csrf"),
                "next": next_path,
                "password": PASSWORD,
                "code": self.site.code(),
            },
        )


# -- a realistic data set for the pages ---------------------------------------------------

HOUR = 3600.0
DAY = 86400.0


@dataclass
class Seeded:
    alice: UserRecord
    bob: UserRecord
    agent: str  # a client_credentials client with a secret
    families: list[str]  # alice's grants, newest first
    abandoned: list[str]  # DCR registrations never used, weeks old


async def grant(
    site: ConsoleSite, user: UserRecord, client_id: str, scope: str, rotations: int = 0
) -> str:
    """A real token family through the storage contract: a code redeemed into a family
    with its first refresh token, then ``rotations`` rotations an hour apart."""
    from mcpward._secrets import credential_hash, new_credential, new_id
    from mcpward.storage.records import CodeRecord, FamilyRecord, RefreshRecord

    grants = site.server.store.grants
    now = site.clock()
    code_hash = credential_hash(new_credential("ac"))
    await grants.save_code(
        CodeRecord(code_hash, client_id, "http://127.0.0.1/cb", "x" * 43, RESOURCE, scope,
                   user.id, now, now, now + 60)
    )  # fmt: skip
    family = FamilyRecord(new_id(), client_id, user.id, RESOURCE, scope, now, now + 90 * DAY,
                          code_hash)  # fmt: skip
    token = credential_hash(new_credential("rt"))
    first = RefreshRecord(token, family.id, scope, now, now + 30 * DAY)
    assert await grants.redeem_code(code_hash, now, family, first)
    for _ in range(rotations):
        site.clock.advance(HOUR)
        t = site.clock()
        successor = credential_hash(new_credential("rt"))
        nxt = RefreshRecord(successor, family.id, scope, t, t + 30 * DAY)
        assert await grants.rotate_refresh(token, t, nxt)
        token = successor
    await site.server.store.clients.touch(client_id, site.clock())
    return family.id


async def seed(site: ConsoleSite) -> Seeded:
    """Clients of every source, people with grants and consents, an abandoned DCR flood,
    and a day of guard denials, rate-limit hits and failed client authentications."""
    from mcpward._secrets import new_id
    from mcpward.storage.records import ClientRecord, ConsentRecord, StoredEvent

    ops, clock = site.ops, site.clock
    start = clock()
    clock.advance(-40 * DAY)
    abandoned = []
    for i in range(3):
        record = ClientRecord(new_id(), "mcp-remote", "dcr", "none",
                              ("authorization_code", "refresh_token"),
                              (f"http://127.0.0.1:{33000 + i}/oauth/callback",))  # fmt: skip
        await ops.clients.create(record, SETUP)
        abandoned.append(record.client_id)
    clock.now = start - 10 * DAY
    await ops.clients.create(
        ClientRecord("orders-agent", "Orders backfill agent", "preregistered",
                     "client_secret_basic", ("client_credentials",), (),
                     allowed_scope="orders.read"),
        SETUP,
    )  # fmt: skip
    await ops.clients.create(
        ClientRecord("orders-cli", "Orders CLI", "preregistered", "none",
                     ("authorization_code", "refresh_token"), ("http://127.0.0.1/callback",)),
        SETUP,
    )  # fmt: skip
    await ops.clients.create(
        ClientRecord("https://assistant.example.org/oauth/client-metadata.json",
                     "Orders Assistant", "cimd", "none", ("authorization_code",),
                     ("https://assistant.example.org/oauth/callback",)),
        SETUP,
    )  # fmt: skip
    claude = ClientRecord(new_id(), "Claude", "dcr", "none",
                          ("authorization_code", "refresh_token"),
                          ("http://127.0.0.1:41523/oauth/callback",))  # fmt: skip
    await ops.clients.create(claude, SETUP)
    alice, _ = await site.add_user("alice")
    bob, _ = await site.add_user("bob")
    families: list[str] = []
    for client_id, scope, rotations in (
        ("orders-cli", "orders.read orders.write", 3),
        (claude.client_id, "orders.read", 1),
        (claude.client_id, "orders.read", 0),
    ):
        families.insert(0, await grant(site, alice, client_id, scope, rotations))
        await site.server.store.users.put_consent(
            ConsentRecord(alice.id, client_id, RESOURCE, scope, clock())
        )
    await grant(site, bob, "orders-cli", "orders.read", 2)
    clock.now = start
    # A day of what the guards and the token endpoint wrote, hour by hour.
    rows = []
    for hour in range(24):
        at = start - (24 - hour) * HOUR + 60
        burst = 6 if hour in (15, 16) else 1
        rows += [StoredEvent(0, at + i, "mcp.request", "forbidden", client_id="orders-cli",
                             subject=alice.id, jti=f"jti-a{hour}", tool="refund_order",
                             reason="insufficient_scope", method="tools/call")
                 for i in range(hour % 3)]  # fmt: skip
        rows += [StoredEvent(0, at + 5 + i, "mcp.request", "rate_limited",
                             client_id=claude.client_id, subject=alice.id, jti="jti-flood",
                             reason="rate_limited", method="tools/call")
                 for i in range(burst * 2 if hour > 12 else 0)]  # fmt: skip
        rows += [StoredEvent(0, at + 9, "client.authentication_failed", "unauthorized",
                             client_id="orders-agent", reason="invalid_client")
                 for _ in range(1 if hour in (3, 4, 20) else 0)]  # fmt: skip
        rows.append(StoredEvent(0, at + 11, "mcp.request", "forbidden", client_id="orders-cli",
                                subject=bob.id, jti=f"jti-b{hour}", tool="export_orders",
                                reason="access_denied", method="tools/call")
                    if hour % 5 == 0 else
                    StoredEvent(0, at + 11, "token.issued", "ok", client_id="orders-agent",
                                subject="orders-agent", jti=f"jti-m{hour}",
                                scopes=("orders.read",), audience=RESOURCE))  # fmt: skip
    await site.server.store.audit_events.append(rows)
    assert site.table.flush()
    return Seeded(alice, bob, "orders-agent", families, abandoned)
