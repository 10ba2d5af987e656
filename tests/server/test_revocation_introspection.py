"""Revocation (RFC 7009) and introspection (RFC 7662) over HTTP."""

from __future__ import annotations

import secrets

import pytest

from tests.server.conftest import RESOURCE, Running
from tests.server.support import get_code, public_client, redeem, refresh


async def m2m_token(r: Running, client_id: str = "agent") -> tuple[str, str]:
    secret = await r.confidential_client(client_id)
    assert secret
    resp = await r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=(client_id, secret),
    )
    return secret, resp.json()["access_token"]


async def introspect(r: Running, token: str, auth: tuple[str, str]) -> dict[str, object]:
    resp = await r.http.post("/introspect", data={"token": token}, auth=auth)
    assert resp.status_code == 200, resp.text
    body: dict[str, object] = resp.json()
    return body


async def test_introspection_active_then_revoked(running: Running) -> None:
    secret, token = await m2m_token(running)
    body = await introspect(running, token, ("agent", secret))
    assert body["active"] is True and body["client_id"] == "agent" and body["aud"] == RESOURCE

    resp = await running.http.post(
        "/revoke", data={"token": token, "token_type_hint": "access_token"}, auth=("agent", secret)
    )
    assert resp.status_code == 200
    # Durable before the 200: the feed already holds it.
    feed = await running.server.store.revocation_log.revocations_since(0)
    assert [rev.kind for _, rev in feed] == ["jti"]
    assert (await introspect(running, token, ("agent", secret))) == {"active": False}


async def test_resource_server_introspects_tokens_for_its_audience(running: Running) -> None:
    _, token = await m2m_token(running)
    rs_secret = await running.confidential_client("rs", introspects=RESOURCE)
    other_secret = await running.confidential_client("nosy")
    assert rs_secret and other_secret
    assert (await introspect(running, token, ("rs", rs_secret)))["active"] is True
    assert await introspect(running, token, ("nosy", other_secret)) == {"active": False}


@pytest.mark.parametrize("token", ["garbage", "a.b.c", "mcpw_rt_" + "A" * 49, "x" * 20000])
async def test_introspection_of_unknown_tokens(running: Running, token: str) -> None:
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post("/introspect", data={"token": token}, auth=("agent", secret))
    if len(token) > 16 * 1024:
        assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")
    else:
        assert resp.json() == {"active": False}


async def test_introspection_requires_authentication(running: Running) -> None:
    _, token = await m2m_token(running)
    resp = await running.http.post("/introspect", data={"token": token})
    assert resp.status_code == 401 and resp.json()["error"] == "invalid_client"


async def test_expired_token_is_inactive(running: Running) -> None:
    secret, token = await m2m_token(running)
    running.clock.advance(901)
    assert await introspect(running, token, ("agent", secret)) == {"active": False}


async def test_client_cannot_revoke_another_clients_token(running: Running) -> None:
    _, token = await m2m_token(running)
    thief = await running.confidential_client("thief")
    assert thief
    resp = await running.http.post("/revoke", data={"token": token}, auth=("thief", thief))
    assert (resp.status_code, resp.json()["error"]) == (400, "unauthorized_client")
    assert await running.server.store.revocation_log.revocations_since(0) == []


async def test_revoking_refresh_token_revokes_family(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    tokens = (await redeem(running, await get_code(running, verifier), verifier)).json()
    resp = await running.http.post(
        "/revoke", data={"token": tokens["refresh_token"], "client_id": "cli"}
    )
    assert resp.status_code == 200
    assert (await refresh(running, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    feed = await running.server.store.revocation_log.revocations_since(0)
    assert [rev.kind for _, rev in feed] == ["family"]


async def test_unknown_token_revocation_is_200(running: Running) -> None:
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post("/revoke", data={"token": "nope"}, auth=("agent", secret))
    assert resp.status_code == 200
    resp = await running.http.post(
        "/revoke", data={"token": "nope", "token_type_hint": "id_token"}, auth=("agent", secret)
    )
    assert (resp.status_code, resp.json()["error"]) == (400, "unsupported_token_type")


async def test_revocation_answers_503_when_storage_fails(sqlite_running: Running) -> None:
    r = sqlite_running
    secret, token = await m2m_token(r)
    await r.server.clients.get("agent")  # warm the client cache, as in steady state

    # Make the storage fail for real: the revocations table disappears under the server.
    async with r.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE revocations RENAME TO revocations_gone")
    resp = await r.http.post("/revoke", data={"token": token}, auth=("agent", secret))
    assert (resp.status_code, resp.json()["error"]) == (503, "temporarily_unavailable")
    assert resp.headers["retry-after"]
    async with r.engine.begin() as conn:
        await conn.exec_driver_sql("ALTER TABLE revocations_gone RENAME TO revocations")
    resp = await r.http.post("/revoke", data={"token": token}, auth=("agent", secret))
    assert resp.status_code == 200


async def test_offboarding_revokes_everything_of_a_user(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    tokens = (await redeem(running, await get_code(running, verifier), verifier)).json()
    await running.server.revoke_subject("user-1")
    assert (await refresh(running, tokens["refresh_token"])).json()["error"] == "invalid_grant"
    rs = await running.confidential_client("rs", introspects=RESOURCE)
    assert rs
    assert await introspect(running, tokens["access_token"], ("rs", rs)) == {"active": False}


async def test_cors_preflight_on_token_endpoint(running: Running) -> None:
    resp = await running.http.options(
        "/token",
        headers={
            "Origin": "http://localhost:6274",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert resp.status_code == 200
    assert resp.headers["access-control-allow-origin"] in ("*", "http://localhost:6274")
    meta = await running.http.get(
        "/.well-known/oauth-authorization-server", headers={"Origin": "http://localhost:6274"}
    )
    assert meta.headers["access-control-allow-origin"] == "*"


async def test_health_endpoints(running: Running) -> None:
    assert (await running.http.get("/healthz")).json() == {"status": "ok"}
    assert (await running.http.get("/readyz")).json() == {"status": "ready"}
