"""The ``mcpward users`` commands against the same database a running server uses."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import jwt
import pyotp
from click.testing import CliRunner, Result

from mcpward.cli import main
from mcpward.server.pages._passwords import verify_password
from tests.pages.support import (
    PASSWORD,
    Browserish,
    Site,
    authorize_params,
    authorize_path,
    new_verifier,
    redeem,
)


def cli_env(site: Site, tmp_path: Path) -> dict[str, str]:
    settings = site.server.settings
    return {
        "MCPWARD_CONFIG": str(tmp_path / "absent.toml"),
        "MCPWARD_ISSUER": settings.issuer,
        "MCPWARD_DATA_DIR": str(settings.data_dir),
        "MCPWARD_DATABASE_URL": settings.resolved_database_url(),
        "MCPWARD_AUDIT_SINK": f"file:{tmp_path / 'cli-audit.jsonl'}",
    }


async def run(site: Site, tmp_path: Path, *args: str, stdin: str | None = None) -> Result:
    def invoke() -> Result:
        return CliRunner().invoke(main, list(args), input=stdin, env=cli_env(site, tmp_path))

    result = await asyncio.to_thread(invoke)
    assert result.exit_code == 0, result.output
    return result


async def test_add_list_set_password_disable(site: Site, tmp_path: Path) -> None:
    secret_password = "a long and new passphrase"
    await run(
        site, tmp_path, "users", "add", "carol", "--email", "carol@example.com",
        "--name", "Carol", "--password-stdin", stdin=secret_password + "\n",
    )  # fmt: skip
    listed = json.loads((await run(site, tmp_path, "users", "list", "--json")).output)
    carol = next(u for u in listed if u["username"] == "carol")
    assert carol["password"] is True and carol["totp"] is False
    readable = (await run(site, tmp_path, "users", "list")).output
    assert "carol" in readable and "USERNAME" in readable
    user = await site.server.store.users.by_username("carol")
    assert user is not None and user.password_hash is not None
    assert user.password_hash.startswith("$argon2id$")
    assert await verify_password(user.password_hash, secret_password)
    await run(
        site,
        tmp_path,
        "users",
        "set-password",
        "carol",
        "--password-stdin",
        stdin="another passphrase 2\n",
    )
    user = await site.server.store.users.by_username("carol")
    assert user is not None and await verify_password(user.password_hash, "another passphrase 2")
    await run(site, tmp_path, "users", "disable", "carol")
    user = await site.server.store.users.by_username("carol")
    assert user is not None and user.disabled_at is not None
    trail = (tmp_path / "cli-audit.jsonl").read_text()
    assert secret_password not in trail and "another passphrase" not in trail
    assert "user.created" in trail and "user.disabled" in trail


async def test_short_password_is_refused(site: Site, tmp_path: Path) -> None:
    def invoke() -> Result:
        return CliRunner().invoke(
            main, ["users", "add", "dave", "--password-stdin"], input="short\n",
            env=cli_env(site, tmp_path),
        )  # fmt: skip

    result = await asyncio.to_thread(invoke)
    assert result.exit_code != 0 and "at least 12 characters" in result.output


async def test_totp_enrolment_and_reset(site: Site, tmp_path: Path) -> None:
    out = json.loads(
        (await run(site, tmp_path, "users", "reset-totp", "alice", "--enroll", "--json")).output
    )
    assert out["totp_uri"].startswith("otpauth://totp/")
    secret = out["totp_secret"]
    params = authorize_params(site, new_verifier())
    async with Browserish(site) as b:
        login = await b.sign_in(params)
        assert login.status_code == 303 and "/login/totp" in login.headers["location"]
        page = await b.http.get(login.headers["location"])
        from tests.pages.support import field

        done = await b.http.post(
            "/login/totp",
            data={
                "csrf": field(page.text, "csrf"),
                "request": field(page.text, "request"),
                "code": pyotp.TOTP(secret).at(int(site.clock())),
            },
        )
        assert done.status_code == 303 and done.headers["location"].startswith("/authorize?")
        # The same code cannot be used twice.
        replay = await b.http.post(
            "/login/totp",
            data={
                "csrf": field(page.text, "csrf"),
                "request": field(page.text, "request"),
                "code": pyotp.TOTP(secret).at(int(site.clock())),
            },
        )
        assert replay.status_code in (303, 401)
    await run(site, tmp_path, "users", "reset-totp", "alice")
    async with Browserish(site) as b:
        login = await b.sign_in(params)
        assert login.headers["location"].startswith("/authorize?")


async def test_offboard_revokes_everything_at_once(site: Site, tmp_path: Path) -> None:
    verifier = new_verifier()
    async with Browserish(site) as b:
        code = await b.code_for(authorize_params(site, verifier))
        tokens = (await redeem(site, code, verifier)).json()
        out = json.loads((await run(site, tmp_path, "users", "offboard", "alice", "--json")).output)
        assert out["families_revoked"] == 1 and out["consents_forgotten"] == 1
        # The session in the browser is dead, and signing in again is refused.
        page = await b.http.get(authorize_path(authorize_params(site, new_verifier())))
        assert 'name="password"' in page.text
        assert (await b.sign_in(authorize_params(site, new_verifier()))).status_code == 401
    async with httpx.AsyncClient(base_url=site.url) as http:
        refreshed = await http.post(
            "/token",
            data={
                "grant_type": "refresh_token",
                "refresh_token": tokens["refresh_token"],
                "client_id": "cli",
            },
        )
    assert refreshed.status_code == 400
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    assert await site.server.store.grants.is_revoked(
        jti=claims["jti"],
        family_id=claims.get("sid"),
        subject=claims["sub"],
        client_id=claims["client_id"],
        iat=claims["iat"],
    )
    user = await site.server.store.users.by_username("alice")
    assert user is not None
    assert await site.server.store.users.consents_of(user.id) == []
    trail = (tmp_path / "cli-audit.jsonl").read_text()
    assert "user.offboarded" in trail and PASSWORD not in trail
