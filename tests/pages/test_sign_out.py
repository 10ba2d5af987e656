"""Signing out ends the session on the server: a copy of the session cookie is refused
afterwards, by the replica that signed out and by every other one sharing the database,
on SQLite and on PostgreSQL. The ``revoked_sessions`` migration goes up and down, and the
sign-in throttle's Redis connection is closed with the application."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
from pathlib import Path

import httpx
import pytest
from alembic import command
from pydantic import SecretStr
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from starlette.applications import Starlette

from mcpward._clock import FrozenClock
from mcpward.audit import AuditLog, MemorySink
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server import create_app
from mcpward.server._crypto import DataKey
from mcpward.server.pages import PagesSettings, _totp, page_routes
from mcpward.storage.database import _alembic_config, current_revision, open_engine, upgrade
from mcpward.storage.schema import revoked_sessions
from mcpward.storage.sql.sessions import SqlSessions
from tests.conftest import serve
from tests.pages.support import (
    Browserish,
    Site,
    authorize_params,
    authorize_path,
    field,
    new_verifier,
    start_site,
)

COOKIE = "mcpward_session"


def copy_of(b: Browserish, site: Site) -> Browserish:
    """Another client (an attacker's) holding a copy of ``b``'s session cookie."""
    return holding(b.http.cookies[COOKIE], site)


def holding(cookie: str, site: Site) -> Browserish:
    client = Browserish(site)
    client.http.cookies.set(COOKIE, cookie, domain="127.0.0.1")
    return client


def session_id(cookie: str) -> str:
    body = cookie.strip('"').split(".")[0]
    value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    sid: str = value["sid"]
    return sid


async def signed_in(client: Browserish) -> bool:
    """Whether ``/authorize`` treats the client as signed in (consent, not the login form)."""
    params = authorize_params(client.site, new_verifier(), prompt="consent")
    page = await client.http.get(authorize_path(params))
    assert page.status_code == 200, page.text
    if "wants to access" in page.text:
        return True
    assert 'name="password"' in page.text
    return False


async def stored_hashes(database_url: str) -> list[str]:
    engine = open_engine(database_url)
    try:
        async with engine.connect() as conn:
            return [row.sid_hash for row in await conn.execute(select(revoked_sessions))]
    finally:
        await engine.dispose()


async def test_copied_cookie_is_refused_after_sign_out_on_every_replica(
    tmp_path: Path, database_url: str
) -> None:
    async with (
        start_site(tmp_path, database_url=database_url) as one,
        start_site(tmp_path, database_url=database_url) as two,
    ):
        await one.add_user()
        await one.add_client()
        async with Browserish(one) as b:
            await b.code_for(authorize_params(one, new_verifier()))
            stolen = b.http.cookies[COOKIE]
            sid = session_id(stolen)
            # Before sign-out a copy works on both replicas (the session is shared).
            for site in (one, two):
                async with holding(stolen, site) as thief:
                    assert await signed_in(thief)
            form = await b.http.get("/logout")
            out = await b.http.post("/logout", data={"csrf": field(form.text, "csrf")})
            assert out.status_code == 200 and "signed out" in out.text
            assert COOKIE not in b.http.cookies
        # Refused by the replica that signed out, and by one that only shares the database.
        for site in (one, two):
            async with holding(stolen, site) as thief:
                assert not await signed_in(thief)
            async with holding(stolen, site) as thief:
                account = await thief.http.get("/account")
                assert 'name="password"' in account.text and "Orders CLI" not in account.text
            async with holding(stolen, site) as thief:
                logout = await thief.http.get("/logout")
                assert "You are signed out." in logout.text
        # Signing in again starts a new session, which works.
        async with Browserish(two) as again:
            assert (await again.sign_in(authorize_params(two, new_verifier()))).status_code == 303
            assert await signed_in(again)
    assert one.events("logout")
    # The session id is neither audited nor stored in clear.
    assert sid not in str(one.audit.events()) + str(two.audit.events())
    assert await stored_hashes(database_url) == [hashlib.sha256(sid.encode()).hexdigest()]


async def test_copied_cookie_cannot_approve_after_sign_out(site: Site) -> None:
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        page = await b.consent_page(params)
        async with copy_of(b, site) as thief:
            form = await b.http.get("/logout")
            await b.http.post("/logout", data={"csrf": field(form.text, "csrf")})
            # The copy still holds the consent page, with a CSRF token of that session.
            approved = await thief.approve(page)
    assert approved.status_code == 303
    assert approved.headers["location"].startswith("/authorize?")
    assert not site.events("consent.granted")


async def test_sign_out_while_awaiting_the_second_factor_ends_that_session(site: Site) -> None:
    user = await site.server.store.users.by_username("alice")
    assert user is not None
    key = DataKey(site.server.settings.resolved_data_key())
    secret = _totp.encrypt_secret(key, user.id, _totp.new_secret())
    await site.server.store.users.set_totp_secret(user.id, secret)
    async with Browserish(site) as b:
        login = await b.sign_in(authorize_params(site, new_verifier()))
        assert "/login/totp" in login.headers["location"]
        totp = await b.http.get(login.headers["location"])
        assert 'name="code"' in totp.text
        async with copy_of(b, site) as thief:
            out = await b.http.post("/logout", data={"csrf": field(totp.text, "csrf")})
            assert out.status_code == 200
            again = await thief.http.get(login.headers["location"])
    assert again.status_code == 303
    assert again.headers["location"].startswith("/authorize?")


async def test_revoked_sessions_store_hashes_and_purge_expired_rows(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        await upgrade(engine)
        sessions = SqlSessions(engine)
        sid, old = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        await sessions.revoke(old, expires_at=100.0, now=50.0)
        await sessions.revoke(sid, expires_at=1000.0, now=60.0)
        await sessions.revoke(sid, expires_at=1000.0, now=60.0)  # idempotent
        assert await sessions.is_revoked(sid) and await sessions.is_revoked(old)
        assert not await sessions.is_revoked(secrets.token_urlsafe(24))
        # The next revocation after ``old`` would have expired purges it.
        await sessions.revoke(secrets.token_urlsafe(24), expires_at=1000.0, now=200.0)
        assert not await sessions.is_revoked(old) and await sessions.is_revoked(sid)
        assert await sessions.purge_expired(2000.0) == 2
        assert not await sessions.is_revoked(sid)
    finally:
        await engine.dispose()


async def test_migration_0002_upgrades_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = open_engine(database_url)

    def tables(connection: Connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    def downgrade(connection: Connection) -> None:
        config = _alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")

    try:
        # Up to 0002 itself: later migrations are theirs to test.
        await upgrade(engine, "0002")
        assert await current_revision(engine) == "0002"
        async with engine.connect() as conn:
            assert "revoked_sessions" in await conn.run_sync(tables)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        assert await current_revision(engine) == "0001"
        async with engine.connect() as conn:
            present = await conn.run_sync(tables)
        assert "revoked_sessions" not in present and "users" in present
        await upgrade(engine, "0002")
        assert await current_revision(engine) == "0002"
        sessions = SqlSessions(engine)
        await sessions.revoke("a-session", expires_at=10.0, now=1.0)
        assert await sessions.is_revoked("a-session")
    finally:
        await engine.dispose()


# -- the throttle's Redis connection is closed with the application -------------------------


async def _connections(redis_url: str) -> int:
    import redis.asyncio

    client = redis.asyncio.from_url(redis_url)
    try:
        return len(await client.client_list()) - 1  # not this one
    finally:
        await client.aclose()


async def _settle(redis_url: str, expected: int) -> int:
    """The connection count once the server has seen the closed sockets go (polled until
    it does, for up to 10 s: a loaded machine may take a while to notice)."""
    deadline = asyncio.get_running_loop().time() + 10.0
    count = await _connections(redis_url)
    while count != expected and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
        count = await _connections(redis_url)
    return count


async def _fail_a_sign_in(url: str) -> None:
    async with httpx.AsyncClient(base_url=url) as http:
        page = await http.get("/login")
        refused = await http.post(
            "/login",
            data={"csrf": field(page.text, "csrf"), "username": "nobody", "password": "x"},
        )
        assert refused.status_code == 401


def _settings(tmp_path: Path, pages: PagesSettings | None = None) -> Settings:
    return Settings(
        issuer="http://127.0.0.1:8400",
        data_dir=tmp_path,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}",
        pages=pages or PagesSettings(),
    )


@pytest.mark.redis
async def test_create_app_closes_the_throttle_redis_connection(
    tmp_path: Path, redis_url: str
) -> None:
    clock = FrozenClock()
    settings = _settings(tmp_path, PagesSettings(redis_url=SecretStr(redis_url)))
    before = await _connections(redis_url)
    server = await open_server(settings, audit=AuditLog([MemorySink()], clock))
    app = create_app(server)
    async with app.router.lifespan_context(app), serve(app) as url:
        await _fail_a_sign_in(url)
        assert await _connections(redis_url) > before
    assert await _settle(redis_url, before) == before


@pytest.mark.redis
async def test_page_routes_aclose_closes_the_throttle_redis_connection(
    tmp_path: Path, redis_url: str
) -> None:
    clock = FrozenClock()
    before = await _connections(redis_url)
    server = await open_server(_settings(tmp_path), audit=AuditLog([MemorySink()], clock))
    try:
        pages = page_routes(server, PagesSettings(redis_url=SecretStr(redis_url)))
        async with serve(Starlette(routes=pages.routes)) as url:
            await _fail_a_sign_in(url)
        assert await _connections(redis_url) > before
        await pages.aclose()
        assert await _settle(redis_url, before) == before
    finally:
        await server.close()
