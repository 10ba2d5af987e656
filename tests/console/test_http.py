"""The console over real HTTP: who may sign in (operators, with password and TOTP), the
step-up before destructive actions, the page hardening (CSRF, Origin, Host, CSP, cookie
attributes), the actions' effects through the operations layer, and answers to bad input
and to a database that went away."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from mcpward.config import Settings
from mcpward.errors import ConfigError
from mcpward.storage.records import ClientRecord, EventFilter
from tests.console.support import (
    PASSWORD,
    SETUP,
    ConsoleSite,
    OperatorClient,
    field,
    grant,
    seed,
    start_console,
)
from tests.services import _pg_bin, create_database

STEP_UP = 5 * 60


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[ConsoleSite]:
    async with start_console(tmp_path) as s:
        yield s


async def signed_in(site: ConsoleSite) -> OperatorClient:
    client = OperatorClient(site)
    r = await client.sign_in()
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return client


async def test_operator_signs_in_with_password_and_totp(site: ConsoleSite) -> None:
    async with OperatorClient(site) as c:
        page = await c.get("/sign-in")
        assert page.status_code == 200
        # Every sign-in answer: the page hardening of the sign-in pages.
        csp = page.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert "script-src" not in csp and "form-action 'self'" in csp
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"
        assert "<script" not in page.text and "style=" not in page.text
        cookie = page.headers["set-cookie"]
        assert cookie.startswith("__Host-mcpward_console=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=strict", "Secure"):
            assert attribute.lower() in cookie.lower(), attribute
        done = await c.post(
            "/sign-in",
            {
                "csrf": field(page.text, "csrf"),
                "next": "/clients",
                "username": "olivia",
                "password": PASSWORD,
                "code": site.code(),
            },
        )
        assert done.status_code == 303 and done.headers["location"] == "/clients"
        listed = await c.get("/clients")
        assert listed.status_code == 200 and "Signed in as <strong>olivia</strong>" in listed.text
    (event,) = site.events("console.signed_in")
    assert event["actor"] == "console:olivia" and event["subject"] == site.operator.id


@pytest.mark.parametrize(
    ("who", "password", "code", "reason"),
    [
        ("olivia", "wrong passphrase 1", None, "bad_credentials"),
        ("olivia", PASSWORD, "000000", "totp_invalid"),
        ("nobody", PASSWORD, None, "bad_credentials"),
        ("plain", PASSWORD, None, "not_operator"),
    ],
)
async def test_sign_in_refusals_all_look_alike(
    site: ConsoleSite, who: str, password: str, code: str | None, reason: str
) -> None:
    await site.add_user("plain")  # a user with password and TOTP, not an operator
    async with OperatorClient(site) as c:
        page = await c.get("/sign-in")
        r = await c.post(
            "/sign-in",
            {
                "csrf": field(page.text, "csrf"),
                "next": "/",
                "username": who,
                "password": password,
                "code": code or site.code(),
            },
        )
        assert r.status_code == 401
        assert "not right, or this account may not use the console" in r.text
        assert (await c.get("/clients")).status_code == 303
    (event,) = site.events("console.sign_in_failed")
    assert event["reason"] == reason


async def test_a_totp_code_works_once_and_failures_lock(site: ConsoleSite) -> None:
    code = site.code()
    async with OperatorClient(site) as first:
        assert (await first.sign_in(code=code)).status_code == 303
    async with OperatorClient(site) as second:
        assert (await second.sign_in(code=code)).status_code == 401  # replayed
        for _ in range(5):
            await second.sign_in(code="123456")
        locked = await second.sign_in()  # right password and a fresh code, but locked
        assert locked.status_code == 401 and "Too many failed attempts" in locked.text
    assert site.events("console.sign_in_failed")[-1]["outcome"] == "rate_limited"


async def test_forms_need_their_csrf_token_and_origin(site: ConsoleSite) -> None:
    async with await signed_in(site) as c:
        page = await c.get("/sign-in")
        assert page.status_code == 303  # signed in already: on to the console
        no_token = await c.post("/sign-out", {})
        assert no_token.status_code == 403
        shown = await c.get("/clients")
        csrf = field(shown.text, "csrf")
        cross = await c.http.post(
            "/sign-out",
            data={"csrf": csrf},
            headers={**c._headers(), "origin": "https://evil.example"},
        )
        assert cross.status_code == 403
        assert (await c.get("/clients")).status_code == 200  # still signed in


async def test_other_host_names_are_refused(site: ConsoleSite) -> None:
    """DNS rebinding: a name an attacker controls resolving to 127.0.0.1 gets nothing."""
    async with httpx.AsyncClient(base_url=site.url) as http:
        r = await http.get("/sign-in", headers={"host": "attacker.example"})
    assert r.status_code == 400


async def test_every_page_needs_a_signed_in_operator(site: ConsoleSite) -> None:
    from starlette.routing import Route

    from mcpward.console import ConsoleApp

    app = ConsoleApp(site.server)
    paths = [
        r.path
        for r in app.routes
        if isinstance(r, Route) and "GET" in (r.methods or ()) and r.path != "/sign-in"
    ]
    assert len(paths) >= 15
    async with OperatorClient(site) as c:
        for path in paths:
            r = await c.get(path + "?id=x")
            assert r.status_code == 303, path
            assert r.headers["location"].startswith("/sign-in?next="), path
        for path in [p for p, _ in app.mutations.items() if p != "/sign-in"]:
            r = await c.post(path, {"id": "x"})
            assert r.status_code == 303 and r.headers["location"].startswith("/sign-in"), path
    await app.console.aclose()


async def test_destructive_actions_need_a_recent_step_up(site: ConsoleSite) -> None:
    await site.ops.clients.create(
        ClientRecord("agent", "Agent", "preregistered", "client_secret_basic",
                     ("client_credentials",), ()),
        SETUP,
    )  # fmt: skip
    async with await signed_in(site) as c:
        site.clock.advance(STEP_UP + 1)
        confirm = await c.get("/clients/disable?id=agent")
        assert confirm.status_code == 303
        assert confirm.headers["location"] == "/step-up?next=" + quote(
            "/clients/disable?id=agent", safe=""
        )
        # A POST on a stale session does nothing either: back to the step-up.
        listed = await c.get("/clients")
        stale = await c.post(
            "/clients/disable", {"csrf": field(listed.text, "csrf"), "id": "agent"}
        )
        assert stale.status_code == 303 and stale.headers["location"].startswith("/step-up")
        client = await site.server.store.clients.get("agent")
        assert client is not None and client.disabled_at is None
        # A wrong code at the step-up is refused and audited.
        page = await c.get("/step-up?next=/clients")
        wrong = await c.post(
            "/step-up",
            {"csrf": field(page.text, "csrf"), "next": "/clients", "password": PASSWORD,
             "code": "000000"},
        )  # fmt: skip
        assert wrong.status_code == 401
        assert site.events("console.step_up_failed")[0]["actor"] == "console:olivia"
        up = await c.step_up("/clients/disable?id=agent")
        assert up.status_code == 303 and up.headers["location"] == "/clients/disable?id=agent"
        done = await c.confirm("/clients/disable?id=agent")
        assert done.status_code == 303, done.text
        assert done.headers["location"] == "/clients/show?id=agent&done=disabled"
        # Within the window, the next destructive action needs no new step-up.
        site.clock.advance(60)
        assert (await c.get("/clients/revoke?id=agent")).status_code == 200
        # The step-up does not move a session's expiry, and never leaves this console.
        away = await c.step_up("https://evil.example/")
        assert away.headers["location"] == "/"
    client = await site.server.store.clients.get("agent")
    assert client is not None and client.disabled_at is not None
    disabled = site.events("client.disabled")[0]
    assert disabled["actor"] == "console:olivia"
    signed = site.events("console.signed_in")[0]
    assert signed["detail"]["client_address"] == "127.0.0.1"
    assert site.events("console.stepped_up")[0]["actor"] == "console:olivia"


async def test_actions_through_the_operations_layer(site: ConsoleSite) -> None:
    data = await seed(site)
    async with await signed_in(site) as c:
        # Revoke one of alice's grants; her others stay.
        target = data.families[0]
        back = f"/users/show?id={data.alice.id}"
        r = await c.confirm(f"/grants/revoke?id={target}&back={quote(back, safe='')}")
        assert r.status_code == 303 and r.headers["location"] == back + "&done=grant"
        family = await site.server.store.grants.family(target)
        assert family is not None and family.revoked_reason == "operator_revoked"
        live = await site.server.store.grants.live_families(subjects=[data.alice.id])
        assert live == {data.alice.id: 2}
        # Withdraw a consent: it and its grants go.
        consents = await site.ops.users.consents(data.alice)
        cli = next(x for x in consents if x.client_id == "orders-cli")
        r = await c.confirm(
            f"/consents/withdraw?user={data.alice.id}&client=orders-cli&resource={quote(cli.resource)}"
        )
        assert r.status_code == 303
        assert "orders-cli" not in {x.client_id for x in await site.ops.users.consents(data.alice)}
        # Offboard bob.
        r = await c.confirm(f"/users/offboard?id={data.bob.id}")
        assert r.headers["location"] == f"/users/show?id={data.bob.id}&done=offboarded"
        bob = await site.server.store.users.get(data.bob.id)
        assert bob is not None and bob.disabled_at is not None
        # Prune the abandoned registrations (30 days and older).
        shown = await c.get("/clients/prune?days=30")
        assert shown.status_code == 200 and "Delete 3 never-used registration(s)?" in shown.text
        r = await c.confirm("/clients/prune?days=30")
        assert r.headers["location"] == "/clients?source=dcr&pruned=3"
        assert all([await site.server.store.clients.get(x) is None for x in data.abandoned])
        # Rotate the signing key, later and at once.
        before = len(site.server.keys.records())
        assert (await c.confirm("/keys/rotate")).headers["location"] == "/keys?done=rotated"
        assert (await c.confirm("/keys/rotate-now")).status_code == 303
        assert len(site.server.keys.records()) == before + 2
        # Revoke everything of a user and of a client.
        assert (await c.confirm(f"/users/revoke?id={data.alice.id}")).status_code == 303
        assert (await c.confirm("/clients/revoke?id=orders-agent")).status_code == 303
    by = {e["event"]: e for e in site.events() if e.get("actor") == "console:olivia"}
    for name in ("grant.revoked", "consent.revoked", "user.offboarded", "client.pruned",
                 "key.rotated", "tokens.revoked"):  # fmt: skip
        assert name in by, name


async def test_a_rotated_secret_is_shown_once(site: ConsoleSite) -> None:
    await site.ops.clients.create(
        ClientRecord("agent", "Agent", "preregistered", "client_secret_basic",
                     ("client_credentials",), ()),
        SETUP,
    )  # fmt: skip
    async with await signed_in(site) as c:
        r = await c.confirm("/clients/rotate-secret?id=agent")
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        assert "<script" not in r.text and "style=" not in r.text
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        (secret,) = re.findall(r"mcpw_cs_[A-Za-z0-9_-]+", r.text)
        assert await site.server.clients.check_secret("agent", secret)
        seen = [await c.get(p) for p in ("/clients/show?id=agent", "/clients", "/activity", "/")]
        assert all(secret not in p.text for p in seen)
        # A public client has no secret to rotate: a clear refusal, not an error page.
        await site.ops.clients.create(
            ClientRecord("cli", "CLI", "preregistered", "none", ("authorization_code",),
                         ("http://127.0.0.1/cb",)),
            SETUP,
        )  # fmt: skip
        refused = await c.confirm("/clients/rotate-secret?id=cli")
        assert refused.status_code == 409 and "not a client with a secret" in refused.text
    assert site.table.flush()
    rows = await site.server.store.audit_events.search(EventFilter(0.0, 1e12))
    assert "client.secret_rotated" in {r.event for r in rows}
    assert secret not in repr(rows) and all(secret not in line for line in site.audit.lines)


async def test_signing_out_ends_the_session_everywhere(site: ConsoleSite) -> None:
    async with await signed_in(site) as c:
        stolen = c.cookie
        page = await c.get("/")
        out = await c.post("/sign-out", {"csrf": field(page.text, "csrf")})
        assert out.status_code == 303 and c.cookie is None
        c.cookie = stolen  # a copy of the cookie taken before sign-out
        assert (await c.get("/")).status_code == 303
    assert site.events("console.signed_out")[0]["actor"] == "console:olivia"


async def test_taking_the_role_away_ends_console_access(site: ConsoleSite) -> None:
    async with await signed_in(site) as c:
        assert (await c.get("/")).status_code == 200
        await site.ops.users.revoke_operator(site.operator, SETUP)
        assert (await c.get("/")).status_code == 303


async def test_bad_input_gets_plain_answers(site: ConsoleSite) -> None:
    await seed(site)
    async with await signed_in(site) as c:
        assert (await c.get("/clients/show?id=nope")).status_code == 404
        assert (await c.get("/users/show?id=nope")).status_code == 404
        assert (await c.get("/grants/revoke?id=nope&back=/")).status_code == 404
        for path in (
            "/clients?cursor=%%%&source=evil&status=x&q=" + "a" * 5000,
            "/users?cursor=bm90IGpzb24&operators=maybe",
            "/activity?since=yesterday&until=2026-99-99T00:00&outcome=<b>&event=nope&hours=-1",
            "/activity?cursor=WyJ4Il0&jti=%00",
            "/clients?pruned=" + "9" * 5000,
            "/clients/prune?days=-4",
        ):
            r = await c.get(path)
            assert r.status_code == 200, (path, r.text)
            assert "Traceback" not in r.text
        page = await c.get("/")
        odd = await c.http.post(
            "/keys/rotate",
            content=b"\xff\xfe",
            headers={**c._headers(), "content-type": "text/plain"},
        )
        assert odd.status_code == 403  # no readable form, so no CSRF token
        assert "csrf" in page.text


@pytest.mark.postgres
async def test_a_missing_database_is_503_with_retry_after(
    tmp_path: Path, postgres_admin_url: str
) -> None:
    import asyncio

    url = create_database(postgres_admin_url, "console_gone")
    port = postgres_admin_url.rsplit(":", 1)[1].split("/")[0]
    async with start_console(tmp_path, database_url=url) as site, await signed_in(site) as c:
        assert (await c.get("/clients")).status_code == 200
        await site.server.store.close()  # every pooled connection closed
        proc = await asyncio.create_subprocess_exec(
            _pg_bin("dropdb"), "-f", "-h", "127.0.0.1", "-p", port, "-U", "mcpward", "console_gone",
        )  # fmt: skip
        assert await proc.wait() == 0
        r = await c.get("/clients")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        assert "Storage is unavailable" in r.text and "Traceback" not in r.text


def test_the_console_never_shares_the_issuers_origin() -> None:
    with pytest.raises(ConfigError, match="must differ from the server's port"):
        load({"console": {"enabled": True, "port": 8400}})
    with pytest.raises(ConfigError, match="issuer's origin"):
        load({"issuer": "https://auth.example.com", "console": {"enabled": True,
              "origin": "https://auth.example.com"}})  # fmt: skip
    with pytest.raises(ConfigError, match="plain http only on loopback"):
        load({"console": {"enabled": True, "host": "0.0.0.0"}})  # noqa: S104
    ok = load({"console": {"enabled": True, "host": "0.0.0.0", "origin": "https://ops.internal"}})  # noqa: S104
    assert ok.console_origin() == "https://ops.internal"
    assert Settings().audit_to_table() is False
    assert load({"console": {"enabled": True}}).audit_to_table() is True


def load(values: dict[str, object]) -> Settings:
    from mcpward.config import load_settings

    return load_settings(**values)


async def test_grants_page_for_a_client(site: ConsoleSite) -> None:
    data = await seed(site)
    await grant(site, data.alice, "orders-cli", "orders.read", 2)
    async with await signed_in(site) as c:
        page = await c.get("/clients/show?id=orders-cli")
    assert page.status_code == 200
    assert page.text.count('aria-label="Revoke grant') == 3
    assert "alice" in page.text and "bob" in page.text
