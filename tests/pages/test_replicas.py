"""Two authorization server replicas sharing one database and one Redis: a lockout earned
on one holds on the other, and a session cookie from one is honoured by the other."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr

from mcpward.server.pages import LoginLimits, PagesSettings
from tests.pages.support import (
    Browserish,
    authorize_params,
    authorize_path,
    new_verifier,
    start_site,
)

pytestmark = pytest.mark.redis


async def test_lockout_and_sessions_are_shared_between_replicas(
    tmp_path: Path, redis_url: str
) -> None:
    pages = PagesSettings(
        redis_url=SecretStr(redis_url), login_limits=LoginLimits(account_failures=3)
    )
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    username = "user" + secrets.token_hex(4)
    async with (
        start_site(tmp_path, pages=pages, database_url=database) as one,
        start_site(tmp_path, pages=pages, database_url=database) as two,
    ):
        await one.add_user(username)
        await one.add_client()
        params = authorize_params(one, new_verifier())
        async with Browserish(one) as b:
            for _ in range(3):
                await b.sign_in(params, username=username, password="wrong password 123")
        async with Browserish(two) as b:
            locked = await b.sign_in(params, username=username)
            assert locked.status_code == 429
        async with Browserish(one) as b:
            ok = await b.sign_in(params, username=username)
            assert ok.status_code == 429
        # A session signed by one replica works on the other (same data key).
        await one.add_user("zoe" + username)
        async with Browserish(one) as b:
            assert (await b.sign_in(params, username="zoe" + username)).status_code == 303
            cookie = b.http.cookies["mcpward_session"]
        async with Browserish(two) as b:
            b.http.cookies.set("mcpward_session", cookie, domain="127.0.0.1")
            page = await b.http.get(authorize_path(authorize_params(two, new_verifier())))
            assert "wants to access" in page.text
