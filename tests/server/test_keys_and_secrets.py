"""Signing-key rotation and client-secret rotation with an overlap window."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt

from mcpward._secrets import is_well_formed
from mcpward.server.secret_sink import DirectorySink
from tests.server.conftest import RESOURCE, Running


async def token_for(r: Running, secret: str) -> str:
    resp = await r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("agent", secret),
    )
    assert resp.status_code == 200, resp.text
    token: str = resp.json()["access_token"]
    return token


async def kids(r: Running) -> list[str]:
    return [k["kid"] for k in (await r.http.get("/jwks.json")).json()["keys"]]


async def test_key_rotation_publishes_before_signing_and_keeps_old_key(
    sqlite_running: Running,
) -> None:
    r = sqlite_running
    secret = await r.confidential_client()
    assert secret
    old_kid = jwt.get_unverified_header(await token_for(r, secret))["kid"]

    new = await r.server.keys.rotate()
    # Published at once, but the old key still signs during the publish lead (1 h).
    assert set(await kids(r)) == {old_kid, new.kid}
    assert jwt.get_unverified_header(await token_for(r, secret))["kid"] == old_kid

    r.clock.advance(3600)
    assert jwt.get_unverified_header(await token_for(r, secret))["kid"] == new.kid
    # The old key stays published until every token it signed has expired ...
    r.clock.advance(900)
    assert set(await kids(r)) == {old_kid, new.kid}
    # ... and then disappears.
    r.clock.advance(61)
    assert await kids(r) == [new.kid]


async def test_secret_rotation_overlap_window(sqlite_running: Running, tmp_path: Path) -> None:
    r = sqlite_running
    old = await r.confidential_client()
    assert old and is_well_formed(old, "cs")

    # Nothing due at first; 83 days later the secret is within the 7-day overlap window.
    assert await r.server.clients.due_for_rotation(7 * 86400) == []
    r.clock.advance(83 * 86400 + 1)
    assert await r.server.clients.due_for_rotation(7 * 86400) == ["agent"]

    new = await r.server.clients.rotate_secret("agent")
    sink = DirectorySink(tmp_path / "secrets")
    await sink.deliver(new)
    written = tmp_path / "secrets" / "agent"
    assert written.read_text().strip() == new.secret
    assert stat.S_IMODE(written.stat().st_mode) == 0o600

    # Both work during the overlap ...
    await token_for(r, old)
    await token_for(r, new.secret)
    # ... then only the new one.
    r.clock.advance(7 * 86400 + 1)
    resp = await r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("agent", old),
    )
    assert resp.status_code == 401
    await token_for(r, new.secret)
    assert await r.server.clients.due_for_rotation(7 * 86400) == []


async def test_secret_expires_after_90_days_without_rotation(sqlite_running: Running) -> None:
    r = sqlite_running
    secret = await r.confidential_client()
    assert secret
    r.clock.advance(90 * 86400 + 1)
    resp = await r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("agent", secret),
    )
    assert resp.status_code == 401


async def test_secrets_and_refresh_tokens_stored_as_hashes(sqlite_running: Running) -> None:
    r = sqlite_running
    secret = await r.confidential_client()
    assert secret
    async with r.server.store.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT * FROM client_secrets")).all()
    assert rows and all(secret not in str(row) for row in rows)
    assert all(len(row.secret_hash) == 64 for row in rows)
