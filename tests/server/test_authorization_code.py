"""authorization_code + PKCE and refresh_token rotation over HTTP, on SQLite and
PostgreSQL. Codes come from the code-issuing core the login pages use."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import jwt
import pytest

from mcpward.server import RedirectableError
from mcpward.server._rfc7636 import s256
from tests.server.conftest import RESOURCE, Running
from tests.server.support import REDIRECT, code_grant, get_code, public_client, redeem, refresh


def test_rfc7636_appendix_b_vector() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"  # RFC 7636 Appendix B
    assert s256(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


async def test_code_flow_and_rotation(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    code = await get_code(running, verifier)
    assert code.startswith("mcpw_ac_")
    resp = await redeem(running, code, verifier)
    assert resp.status_code == 200, resp.text
    first = resp.json()
    claims = jwt.decode(first["access_token"], options={"verify_signature": False})
    assert claims["sub"] == "user-1" and claims["aud"] == RESOURCE and claims["sid"]
    assert first["refresh_token"].startswith("mcpw_rt_")

    # Rotation: a new refresh token each time; narrowing allowed, widening refused.
    resp = await refresh(running, first["refresh_token"], scope="orders.read")
    assert resp.status_code == 200, resp.text
    second = resp.json()
    assert second["scope"] == "orders.read"
    assert second["refresh_token"] != first["refresh_token"]
    # Scopes beyond the grant are left out, and the answer says what was issued.
    resp = await refresh(running, second["refresh_token"], scope="orders.read refund.admin")
    assert resp.status_code == 200, resp.text
    third = resp.json()
    assert third["scope"] == "orders.read"
    resp = await refresh(running, third["refresh_token"], scope="refund.admin")
    assert resp.json()["error"] == "invalid_scope"
    # The refresh token keeps the originally granted scope (RFC 6749 §6).
    resp = await refresh(running, third["refresh_token"])
    assert resp.status_code == 200 and resp.json()["scope"] == "orders.read orders.write"

    # Nothing secret was stored or audited in the clear.
    for line in running.audit.lines:
        for value in (code, verifier, first["refresh_token"], first["access_token"]):
            assert value not in line


async def test_replayed_code_revokes_its_family(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    code = await get_code(running, verifier)
    first = (await redeem(running, code, verifier)).json()
    replay = await redeem(running, code, verifier)
    assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
    # The tokens issued from the code are dead: its refresh token no longer works ...
    assert (await refresh(running, first["refresh_token"])).json()["error"] == "invalid_grant"
    # ... and the access token's family is on the revocations feed.
    sid = jwt.decode(first["access_token"], options={"verify_signature": False})["sid"]
    feed = await running.server.store.revocation_log.revocations_since(0)
    assert [(rev.kind, rev.key) for _, rev in feed] == [("family", sid)]
    assert any(e["event"] == "code.replayed" for e in running.audit.events())


async def test_code_expires_after_60_seconds(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    code = await get_code(running, verifier)
    running.clock.advance(61)
    resp = await redeem(running, code, verifier)
    assert resp.json()["error"] == "invalid_grant"


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_verifier": "x" * 43}, "invalid_grant"),
        ({"code_verifier": ""}, "invalid_request"),
        ({"redirect_uri": "http://127.0.0.1:33418/other"}, "invalid_grant"),
        ({"client_id": "someone-else"}, "invalid_client"),
        ({"resource": "https://other.example/mcp"}, "invalid_target"),
    ],
)
async def test_code_redemption_checks(running: Running, change: dict[str, str], error: str) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    code = await get_code(running, verifier)
    data = {**code_grant(code, verifier), **change}
    data = {k: v for k, v in data.items() if v}
    resp = await running.http.post("/token", data=data)
    assert resp.json()["error"] == error, resp.text
    assert resp.status_code in (400, 401)


async def test_refresh_reuse_revokes_family(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    first = (await redeem(running, await get_code(running, verifier), verifier)).json()
    second = (await refresh(running, first["refresh_token"])).json()
    # The attacker (or a confused client) presents the old one again, after the window
    # in which a retry gets the same successor ...
    running.clock.advance(running.server.settings.refresh_retry_window + 1)
    reuse = await refresh(running, first["refresh_token"])
    assert reuse.json()["error"] == "invalid_grant"
    # ... and the legitimate newest token dies with the family.
    assert (await refresh(running, second["refresh_token"])).json()["error"] == "invalid_grant"
    events = [e for e in running.audit.events() if e["event"] == "refresh.reuse_detected"]
    assert len(events) == 1 and events[0]["client_id"] == "cli"


async def test_refresh_lifetime_rolls_and_is_capped(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    token = (await redeem(running, await get_code(running, verifier), verifier)).json()[
        "refresh_token"
    ]
    # Each use within 30 days extends the family by 30 days ...
    for _ in range(2):
        running.clock.advance(29 * 86400)
        resp = await refresh(running, token)
        assert resp.status_code == 200, resp.text
        token = resp.json()["refresh_token"]
    # ... but never beyond the absolute cap (90 days by default).
    running.clock.advance(29 * 86400)
    resp = await refresh(running, token)
    assert resp.status_code == 200
    token = resp.json()["refresh_token"]
    running.clock.advance(4 * 86400)  # 91 days after the grant
    assert (await refresh(running, token)).json()["error"] == "invalid_grant"


async def test_unused_refresh_token_expires_after_30_days(running: Running) -> None:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    token = (await redeem(running, await get_code(running, verifier), verifier)).json()[
        "refresh_token"
    ]
    running.clock.advance(30 * 86400 + 1)
    assert (await refresh(running, token)).json()["error"] == "invalid_grant"


async def test_fifty_concurrent_refreshes_give_exactly_one_success_when_strict(
    strict_running: Running,
) -> None:
    """Strict mode (no retry window): of 50 concurrent uses exactly one succeeds (the
    retry window's counterpart is in test_refresh_retry.py)."""
    running = strict_running
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    token = (await redeem(running, await get_code(running, verifier), verifier)).json()[
        "refresh_token"
    ]
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=running.url, limits=limits, timeout=60) as http:
        responses = await asyncio.gather(
            *[
                http.post(
                    "/token",
                    data={
                        "grant_type": "refresh_token",
                        "refresh_token": token,
                        "client_id": "cli",
                    },
                )
                for _ in range(50)
            ]
        )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1, statuses
    assert statuses.count(400) == 49, statuses
    assert {r.json()["error"] for r in responses if r.status_code == 400} == {"invalid_grant"}


async def test_refresh_token_bound_to_its_client(running: Running) -> None:
    await public_client(running)
    await public_client(running, "other")
    verifier = secrets.token_urlsafe(48)
    token = (await redeem(running, await get_code(running, verifier), verifier)).json()[
        "refresh_token"
    ]
    resp = await running.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": token, "client_id": "other"},
    )
    assert resp.json()["error"] == "invalid_grant"
    # The rightful client can still use it: a foreign presentation is not a reuse.
    assert (await refresh(running, token)).status_code == 200


async def test_preregistered_client_limited_to_its_scopes(running: Running) -> None:
    await running.confidential_client(
        "limited",
        method="none",
        allowed_scope="orders.read",
        grant_types=("authorization_code",),
        redirect_uris=(REDIRECT,),
    )
    with pytest.raises(RedirectableError) as caught:
        await get_code(
            running, secrets.token_urlsafe(48), client_id="limited", scope="refund.admin"
        )
    assert caught.value.error.error == "invalid_scope"
    # Asking for more than it may have: offered (and issued) the intersection.
    for scope in ("orders.read", "orders.read orders.write refund.admin"):
        verifier = secrets.token_urlsafe(48)
        code = await get_code(running, verifier, client_id="limited", scope=scope)
        resp = await redeem(running, code, verifier, client_id="limited")
        assert resp.json()["scope"] == "orders.read"
        assert "refresh_token" not in resp.json()


async def test_disabling_a_metadata_document_client_blocks_it(running: Running) -> None:
    url = "https://client.example/metadata.json"
    assert await running.server.disable_client(url)
    client = await running.server.clients.get(url)
    assert client is not None and client.disabled_at is not None
