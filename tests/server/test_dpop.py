"""DPoP at the token endpoint (RFC 9449 §5, §8, §10) over real HTTP: key-bound tokens
for every grant, RFC 9449's negative matrix answered with ``invalid_dpop_proof``, proofs
single-use across replicas sharing Redis, stateless nonces, codes bound by ``dpop_jkt``
and public clients' refresh tokens bound to their key. Proofs are made with joserfc
(tests/dpop_proofs.py); tokens are read with PyJWT from the published JWKS."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from mcpward.config import DPoPSettings
from mcpward.server import validate_request
from mcpward.server._authorization import RedirectableError
from mcpward.server._rfc7636 import s256
from tests.dpop_proofs import Prover, hmac_proof, unsigned
from tests.server.conftest import RESOURCE, Running, start
from tests.server.support import ISSUER, REDIRECT, code_grant, get_code, public_client

TOKEN_URL = ISSUER + "/token"
VERIFIER = "v" * 64


def dpop(*proofs: str) -> list[tuple[str, str]]:
    return [("DPoP", p) for p in proofs]


async def claims_of(r: Running, token: str) -> dict[str, Any]:
    jwks = (await r.http.get("/jwks.json")).json()
    key = jwt.PyJWKSet.from_dict(jwks)[jwt.get_unverified_header(token)["kid"]]
    decoded: dict[str, Any] = jwt.decode(
        token, key, algorithms=["ES256"], audience=RESOURCE, options={"verify_exp": False}
    )
    return decoded


async def m2m(r: Running, secret: str, headers: list[tuple[str, str]]) -> httpx.Response:
    return await r.http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "orders.read", "resource": RESOURCE},
        auth=("agent", secret),
        headers=headers,
    )


async def token(r: Running, form: dict[str, str], proof: str | None) -> httpx.Response:
    return await r.http.post("/token", data=form, headers=dpop(proof) if proof else [])


def refresh_form(refresh_token: str, client_id: str = "cli") -> dict[str, str]:
    return {"grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": client_id}


def events(r: Running, name: str) -> list[dict[str, Any]]:
    return [e for e in r.audit.events() if e["event"] == name]


def error_of(response: httpx.Response) -> str:
    value: str = response.json()["error"]
    return value


@pytest.fixture
async def agent(sqlite_running: Running) -> tuple[Running, str]:
    secret = await sqlite_running.confidential_client()
    assert secret is not None
    return sqlite_running, secret


# -- what a bound token looks like ---------------------------------------------------------


async def test_metadata_lists_asymmetric_algorithms_only(sqlite_running: Running) -> None:
    doc = (await sqlite_running.http.get("/.well-known/oauth-authorization-server")).json()
    assert doc["dpop_signing_alg_values_supported"] == ["ES256", "ES384", "EdDSA", "RS256", "PS256"]


@pytest.mark.parametrize("alg", ["ES256", "EdDSA", "PS256"])
async def test_client_credentials_token_is_bound_to_the_proof_key(
    agent: tuple[Running, str], alg: str
) -> None:
    r, secret = agent
    prover = Prover(alg)
    resp = await m2m(r, secret, dpop(prover.proof(TOKEN_URL, iat=r.clock())))
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "DPoP"
    assert (await claims_of(r, body["access_token"]))["cnf"] == {"jkt": prover.jkt}
    issued = events(r, "token.issued")
    assert issued[-1]["detail"]["jkt"] == prover.jkt


async def test_without_a_proof_tokens_stay_bearer_tokens(agent: tuple[Running, str]) -> None:
    r, secret = agent
    body = (await m2m(r, secret, [])).json()
    assert body["token_type"] == "Bearer"
    assert "cnf" not in await claims_of(r, body["access_token"])


async def test_introspection_returns_cnf_and_the_dpop_type(agent: tuple[Running, str]) -> None:
    r, secret = agent
    rs_secret = await r.confidential_client("rs", introspects=RESOURCE)
    assert rs_secret is not None
    prover = Prover()
    access = (await m2m(r, secret, dpop(prover.proof(TOKEN_URL, iat=r.clock())))).json()
    answer = await r.http.post(
        "/introspect", data={"token": access["access_token"]}, auth=("rs", rs_secret)
    )
    body = answer.json()
    assert body["active"] is True
    assert body["token_type"] == "DPoP" and body["cnf"] == {"jkt": prover.jkt}


# -- RFC 9449 §4.3 at the token endpoint -------------------------------------------------


async def test_the_negative_matrix_is_invalid_dpop_proof(agent: tuple[Running, str]) -> None:
    r, secret = agent
    prover, other = Prover(), Prover()
    now = r.clock()
    cases = {
        "wrong htm": [prover.proof(TOKEN_URL, "GET", iat=now)],
        # The URL this request really went to: htu is the issuer's, never the Host's.
        "htu from the Host header": [prover.proof(r.url + "/token", iat=now)],
        "wrong htu": [prover.proof(ISSUER + "/revoke", iat=now)],
        "typ": [prover.proof(TOKEN_URL, header={"typ": "JWT"}, iat=now)],
        "alg none": [unsigned(prover, TOKEN_URL)],
        "HMAC": [hmac_proof(prover, TOKEN_URL)],
        "another key": [prover.proof(TOKEN_URL, signer=other.key, iat=now)],
        "private key": [
            prover.proof(TOKEN_URL, header={"jwk": prover.key.as_dict(private=True)}, iat=now)
        ],
        "expired iat": [prover.proof(TOKEN_URL, iat=now - 300)],
        "future iat": [prover.proof(TOKEN_URL, iat=now + 120)],
        "two headers": [prover.proof(TOKEN_URL, iat=now), prover.proof(TOKEN_URL, iat=now)],
    }
    for name, proofs in cases.items():
        resp = await m2m(r, secret, dpop(*proofs))
        assert resp.status_code == 400, name
        assert error_of(resp) == "invalid_dpop_proof", name
        assert "access_token" not in resp.json()
    rejected = events(r, "dpop.proof_rejected")
    assert len(rejected) == len(cases)
    assert {e["detail"]["check"] for e in rejected} == {
        "htm",
        "htu",
        "typ",
        "malformed",
        "alg",
        "signature",
        "jwk",
        "iat",
        "multiple",
    }
    every_line = "\n".join(r.audit.lines)
    for proofs in cases.values():
        for proof in proofs:
            assert proof.split(".")[1] not in every_line  # never a proof in the trail


async def test_a_proof_is_used_once(agent: tuple[Running, str]) -> None:
    r, secret = agent
    proof = Prover().proof(TOKEN_URL, iat=r.clock())
    assert (await m2m(r, secret, dpop(proof))).status_code == 200
    again = await m2m(r, secret, dpop(proof))
    assert again.status_code == 400 and error_of(again) == "invalid_dpop_proof"
    assert "already used" in again.json()["error_description"]


async def test_a_dpop_bound_client_must_send_a_proof(sqlite_running: Running) -> None:
    r = sqlite_running
    secret = await r.confidential_client("strict", dpop_bound=True)
    assert secret is not None
    form = {"grant_type": "client_credentials", "resource": RESOURCE}
    bare = await r.http.post("/token", data=form, auth=("strict", secret))
    assert bare.status_code == 400 and error_of(bare) == "invalid_dpop_proof"
    bound = await r.http.post(
        "/token",
        data=form,
        auth=("strict", secret),
        headers=dpop(Prover().proof(TOKEN_URL, iat=r.clock())),
    )
    assert bound.status_code == 200 and bound.json()["token_type"] == "DPoP"


# -- across replicas, and when Redis is down -----------------------------------------------


@pytest.mark.redis
async def test_a_proof_replayed_to_another_replica_is_refused(
    tmp_path: Path, redis_url: str
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    one_runs = start(database, tmp_path, redis_url=redis_url)
    one = await anext(one_runs)
    two_runs = start(database, tmp_path, redis_url=redis_url)
    two = await anext(two_runs)
    try:
        secret = await one.confidential_client()
        assert secret is not None
        proof = Prover().proof(TOKEN_URL, iat=one.clock())
        assert (await m2m(one, secret, dpop(proof))).status_code == 200
        replayed = await m2m(two, secret, dpop(proof))
        assert replayed.status_code == 400 and error_of(replayed) == "invalid_dpop_proof"
    finally:
        await _finish(one_runs)
        await _finish(two_runs)


async def test_replay_cache_unreachable_fails_closed(tmp_path: Path) -> None:
    from tests.services import free_port

    runs = start(
        f"sqlite+aiosqlite:///{tmp_path / 'db.db'}",
        tmp_path,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
    )
    r = await anext(runs)
    try:
        secret = await r.confidential_client()
        assert secret is not None
        resp = await m2m(r, secret, dpop(Prover().proof(TOKEN_URL, iat=r.clock())))
        assert resp.status_code == 503 and resp.headers["retry-after"]
        assert error_of(resp) == "temporarily_unavailable"
        # A bearer request needs no replay check and still works.
        assert (await m2m(r, secret, [])).status_code == 200
    finally:
        await _finish(runs)


async def _finish(runs: AsyncIterator[Running]) -> None:
    with pytest.raises(StopAsyncIteration):
        await anext(runs)


# -- nonces (§8) ---------------------------------------------------------------------------


async def test_required_nonces_are_stateless_and_shared_by_replicas(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    config = DPoPSettings(require_nonce=True, nonce_step=60)
    one_runs = start(database, tmp_path, dpop=config)
    one = await anext(one_runs)
    two_runs = start(database, tmp_path, dpop=config)
    two = await anext(two_runs)
    try:
        two.clock.now = one.clock.now
        secret = await one.confidential_client()
        assert secret is not None
        prover = Prover()
        first = await m2m(one, secret, dpop(prover.proof(TOKEN_URL, iat=one.clock())))
        assert first.status_code == 400 and error_of(first) == "use_dpop_nonce"
        nonce = first.headers["dpop-nonce"]
        # The other replica accepts the nonce the first handed out: same data key.
        ok = await m2m(two, secret, dpop(prover.proof(TOKEN_URL, iat=two.clock(), nonce=nonce)))
        assert ok.status_code == 200, ok.text
        assert "dpop-nonce" not in ok.headers  # it was the current one
        # Two steps later it is stale: a new nonce is handed out, with the error.
        for r in (one, two):
            r.clock.advance(120)
        stale = await m2m(one, secret, dpop(prover.proof(TOKEN_URL, iat=one.clock(), nonce=nonce)))
        assert error_of(stale) == "use_dpop_nonce"
        assert stale.headers["dpop-nonce"] != nonce
        assert not events(one, "dpop.proof_rejected")
    finally:
        await _finish(one_runs)
        await _finish(two_runs)


async def test_with_dpop_off_proofs_are_ignored(tmp_path: Path) -> None:
    runs = start(
        f"sqlite+aiosqlite:///{tmp_path / 'db.db'}", tmp_path, dpop=DPoPSettings(enabled=False)
    )
    r = await anext(runs)
    try:
        doc = (await r.http.get("/.well-known/oauth-authorization-server")).json()
        assert "dpop_signing_alg_values_supported" not in doc
        secret = await r.confidential_client()
        assert secret is not None
        body = (await m2m(r, secret, dpop(Prover().proof(TOKEN_URL, iat=r.clock())))).json()
        assert body["token_type"] == "Bearer"
    finally:
        await _finish(runs)


# -- codes bound by dpop_jkt (§10) and public clients' refresh tokens (§5) ----------------


async def test_a_code_bound_by_dpop_jkt_needs_its_key(running: Running) -> None:
    r = running
    await public_client(r)
    prover, other = Prover(), Prover()
    code = await get_code(r, VERIFIER, dpop_jkt=prover.jkt)
    form = code_grant(code, VERIFIER)
    for proof in (None, other.proof(TOKEN_URL, iat=r.clock())):
        refused = await token(r, form, proof)
        assert refused.status_code == 400 and error_of(refused) == "invalid_grant"
    # Not burnt by those: the client holding the key redeems it.
    ok = await token(r, form, prover.proof(TOKEN_URL, iat=r.clock()))
    assert ok.status_code == 200, ok.text
    assert ok.json()["token_type"] == "DPoP"
    mismatches = events(r, "dpop.key_mismatch")
    assert [e["detail"]["proof"] for e in mismatches] == [False, True]


async def test_malformed_dpop_jkt_is_refused_at_authorize(running: Running) -> None:
    await public_client(running)
    params = {
        "client_id": "cli",
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        "dpop_jkt": "not a thumbprint",
    }
    with pytest.raises(RedirectableError) as info:
        await validate_request(running.server, params, [RESOURCE])
    assert info.value.error.error == "invalid_request"


async def test_public_client_refresh_tokens_are_bound_to_its_key(running: Running) -> None:
    """Keycloak #36475: a bound refresh token used without its key must fail."""
    r = running
    await public_client(r)
    prover, other = Prover(), Prover()
    code = await get_code(r, VERIFIER)  # no dpop_jkt: the token request's key binds
    issued = await token(r, code_grant(code, VERIFIER), prover.proof(TOKEN_URL, iat=r.clock()))
    assert issued.status_code == 200, issued.text
    first = issued.json()["refresh_token"]
    for proof in (None, other.proof(TOKEN_URL, iat=r.clock())):
        refused = await token(r, refresh_form(first), proof)
        assert refused.status_code == 400 and error_of(refused) == "invalid_grant", proof
    rotated = await token(r, refresh_form(first), prover.proof(TOKEN_URL, iat=r.clock()))
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["token_type"] == "DPoP"
    assert (await claims_of(r, body["access_token"]))["cnf"] == {"jkt": prover.jkt}
    second = body["refresh_token"]
    assert (await token(r, refresh_form(second), None)).status_code == 400
    # Reuse detection works for bound tokens as for bearer ones: the spent token,
    # presented again with its key after the retry window, revokes the family.
    r.clock.advance(r.server.settings.refresh_retry_window + 1)
    reused = await token(r, refresh_form(first), prover.proof(TOKEN_URL, iat=r.clock()))
    assert error_of(reused) == "invalid_grant" and "revoked" in reused.json()["error_description"]
    after = await token(r, refresh_form(second), prover.proof(TOKEN_URL, iat=r.clock()))
    assert after.status_code == 400


async def test_confidential_client_refresh_tokens_are_not_key_bound(running: Running) -> None:
    """RFC 9449 §5: a confidential client's refresh token is bound to its authentication;
    each refresh binds the new access token to whichever key proves it."""
    r = running
    secret = await r.confidential_client(
        "web",
        allowed_scope=None,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(REDIRECT,),
    )
    assert secret is not None
    first_key, second_key = Prover(), Prover()
    code = await get_code(r, VERIFIER, client_id="web")
    form = code_grant(code, VERIFIER, client_id="web")
    issued = await r.http.post(
        "/token",
        data=form,
        auth=("web", secret),
        headers=dpop(first_key.proof(TOKEN_URL, iat=r.clock())),
    )
    assert issued.status_code == 200, issued.text
    plain = await r.http.post(
        "/token", data=refresh_form(issued.json()["refresh_token"], "web"), auth=("web", secret)
    )
    assert plain.status_code == 200 and plain.json()["token_type"] == "Bearer"
    rebound = await r.http.post(
        "/token",
        data=refresh_form(plain.json()["refresh_token"], "web"),
        auth=("web", secret),
        headers=dpop(second_key.proof(TOKEN_URL, iat=r.clock())),
    )
    assert rebound.status_code == 200
    claims = await claims_of(r, rebound.json()["access_token"])
    assert claims["cnf"] == {"jkt": second_key.jkt}


# -- registration metadata (§5.2) ---------------------------------------------------------


async def test_registration_with_dpop_bound_access_tokens(sqlite_running: Running) -> None:
    r = sqlite_running
    body = {
        "client_name": "Strict CLI",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
        "dpop_bound_access_tokens": True,
    }
    registered = await r.http.post(
        "/register", content=json.dumps(body), headers={"content-type": "application/json"}
    )
    assert registered.status_code == 201, registered.text
    client_id = registered.json()["client_id"]
    assert registered.json()["dpop_bound_access_tokens"] is True
    code = await get_code(r, VERIFIER, client_id=client_id)
    form = code_grant(code, VERIFIER, client_id=client_id)
    bare = await token(r, form, None)
    assert error_of(bare) == "invalid_dpop_proof"
    ok = await token(r, form, Prover().proof(TOKEN_URL, iat=r.clock()))
    assert ok.status_code == 200 and ok.json()["token_type"] == "DPoP"

    wrong = await r.http.post(
        "/register",
        content=json.dumps({**body, "dpop_bound_access_tokens": "yes"}),
        headers={"content-type": "application/json"},
    )
    assert wrong.status_code == 400 and error_of(wrong) == "invalid_client_metadata"
