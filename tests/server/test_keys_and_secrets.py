"""Signing-key rotation and client-secret rotation with an overlap window."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from mcpward._secret_stores import SecretStoreError
from mcpward._secrets import is_well_formed, new_credential
from mcpward.audit import AuditLog
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server.clients import NewSecret
from mcpward.server.secret_rotation import rotate
from mcpward.server.secret_sinks import CommandSink, DirectorySink
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

    new = await rotate(r.server, DirectorySink(tmp_path / "secrets"), "agent")
    written = tmp_path / "secrets" / "agent"
    assert written.read_text().strip() == new.secret
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in (tmp_path / "secrets").iterdir()] == ["agent"]  # nothing staged

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
    async with r.engine.connect() as conn:
        rows = (await conn.exec_driver_sql("SELECT * FROM client_secrets")).all()
    assert rows and all(secret not in str(row) for row in rows)
    assert all(len(row.secret_hash) == 64 for row in rows)


async def test_signing_keys_are_encrypted_at_rest(sqlite_running: Running) -> None:
    r = sqlite_running
    [record] = r.server.keys.records()
    async with r.engine.connect() as conn:
        blob = (await conn.exec_driver_sql("SELECT private_jwk_enc FROM signing_keys")).scalar()
    assert isinstance(blob, bytes)
    # The private scalar "d" of the key must not be readable in the stored bytes.
    private = r.server.keys.signing_key().key.as_dict(private=True)
    assert str(private["d"]).encode() not in blob
    assert b'"d"' not in blob
    assert record.public_jwk["x"] == private["x"]


async def test_eddsa_tokens_verify_with_an_independent_library(tmp_path: Path) -> None:
    settings = Settings(issuer="http://127.0.0.1:8400", data_dir=tmp_path, signing_alg="EdDSA")
    server = await open_server(settings, audit=AuditLog([]))
    try:
        issued = server.mint(subject="s", client_id="c", resource=RESOURCE, scope="orders.read")
        header = jwt.get_unverified_header(issued.token)
        assert header["alg"] == "EdDSA"
        key = jwt.PyJWKSet.from_dict(server.keys.jwks())[header["kid"]]
        claims = jwt.decode(issued.token, key, algorithms=["EdDSA"], audience=RESOURCE)
        assert claims["scope"] == "orders.read"
    finally:
        await server.close()


async def test_command_sink_gets_the_secret_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "received"
    script = tmp_path / "push-secret.sh"
    script.write_text(f'#!/bin/sh\n{{ echo "$MCPWARD_CLIENT_ID"; cat; }} > {out}\n')
    script.chmod(0o700)
    secret = NewSecret("agent-backfill", new_credential("cs"), 0.0)
    await CommandSink(str(script)).stage(secret.client_id, secret.secret, secret.expires_at)
    assert out.read_text().split() == ["agent-backfill", secret.secret]

    failing = CommandSink("/bin/false")
    with pytest.raises(SecretStoreError) as caught:
        await failing.stage(secret.client_id, secret.secret, secret.expires_at)
    assert secret.secret not in str(caught.value)
