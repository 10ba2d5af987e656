"""The attacks a reviewer would try against token verification: each gets 401, never a
500, and nothing in the audit trail carries the token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt as pyjwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.types import Receive, Scope, Send

from mcpward.audit import AuditLog, MemorySink
from mcpward.guard import StaticKeys, make_guard, manifest_from_code, protect

from .support import ISSUER, RESOURCE, Minter

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_orders"}}


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Stands in for the MCP server: the decision under test happens before it."""
    body = b'{"jsonrpc":"2.0","id":1,"result":{}}'
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def http(minter: Minter) -> AsyncIterator[tuple[httpx.AsyncClient, MemorySink]]:
    sink = MemorySink()
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=manifest_from_code("t", {"search_orders": ["orders.read"]}),
        keys=StaticKeys(minter.jwks()),
        audit=AuditLog([sink]),
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        yield client, sink


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, Any], claims: dict[str, Any], signature: bytes = b"") -> str:
    h = b64(json.dumps(header).encode())
    p = b64(json.dumps(claims).encode())
    return f"{h}.{p}.{b64(signature)}"


async def post(client: httpx.AsyncClient, token: str, **kwargs: Any) -> httpx.Response:
    return await client.post(
        "/mcp", json=CALL, headers={"authorization": f"Bearer {token}"}, **kwargs
    )


def assert_invalid_token(r: httpx.Response) -> None:
    assert r.status_code == 401, r.text
    assert 'error="invalid_token"' in r.headers["www-authenticate"]
    assert (
        'resource_metadata="http://127.0.0.1/.well-known/oauth-protected-resource/mcp"'
        in (r.headers["www-authenticate"])
    )


async def test_a_good_token_passes(http: Any, minter: Minter) -> None:
    client, _ = http
    r = await post(client, minter.mint())
    assert r.status_code == 200


async def test_token_minted_by_an_independent_library_passes(http: Any, minter: Minter) -> None:
    client, _ = http
    pem = minter.key.as_pem(private=True)
    token = pyjwt.encode(
        minter.claims(), pem, algorithm="ES256", headers={"kid": minter.kid, "typ": "at+jwt"}
    )
    assert (await post(client, token)).status_code == 200


async def test_alg_none(http: Any, minter: Minter) -> None:
    client, _ = http
    token = unsigned({"alg": "none", "typ": "at+jwt", "kid": minter.kid}, minter.claims())
    assert_invalid_token(await post(client, token))


async def test_hs256_signed_with_the_public_key(http: Any, minter: Minter) -> None:
    client, _ = http
    header = {"alg": "HS256", "typ": "at+jwt", "kid": minter.kid}
    signing_input = unsigned(header, minter.claims()).rsplit(".", 1)[0]
    for secret in (minter.key.as_pem(private=False), json.dumps(minter.jwks()["keys"][0]).encode()):
        sig = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
        assert_invalid_token(await post(client, f"{signing_input}.{b64(sig)}"))


async def test_unknown_kid(http: Any, minter: Minter) -> None:
    client, _ = http
    assert_invalid_token(await post(client, minter.mint(header={"kid": "no-such-key"})))


async def test_signed_by_another_key_with_our_kid(http: Any, minter: Minter) -> None:
    client, _ = http
    attacker = Minter(kid=minter.kid)
    assert_invalid_token(await post(client, attacker.mint()))


@pytest.mark.parametrize(
    "claims",
    [
        {"iss": "https://evil.example"},
        {"aud": "https://other.example/mcp"},
        {"aud": ["https://other.example/mcp"]},
        {"exp": int(time.time()) - 3600},
        {"nbf": int(time.time()) + 3600},
        {"iat": int(time.time()) + 3600},
        {"exp": None},
        {"exp": "tomorrow"},
        {"sub": None, "client_id": None},
    ],
    ids=["iss", "aud", "aud-list", "expired", "nbf", "iat-future", "no-exp", "exp-str", "no-sub"],
)
async def test_bad_claims(http: Any, minter: Minter, claims: dict[str, Any]) -> None:
    client, _ = http
    assert_invalid_token(await post(client, minter.mint(**claims)))


async def test_token_for_another_resource_from_the_same_issuer(http: Any, minter: Minter) -> None:
    client, _ = http
    assert_invalid_token(await post(client, minter.mint(aud="http://127.0.0.1/other-mcp")))


async def test_tampered_payload(http: Any, minter: Minter) -> None:
    client, _ = http
    header, _, signature = minter.mint("orders.read").split(".")
    forged = b64(json.dumps(minter.claims("orders.read orders.write refund.admin")).encode())
    assert_invalid_token(await post(client, f"{header}.{forged}.{signature}"))


async def test_oversized_token(http: Any, minter: Minter) -> None:
    client, _ = http
    assert_invalid_token(await post(client, minter.mint(padding="x" * 20_000)))


async def test_token_in_query_string(http: Any, minter: Minter) -> None:
    client, _ = http
    r = await client.post("/mcp", params={"access_token": minter.mint()}, json=CALL)
    assert r.status_code == 401
    assert 'error="invalid_request"' in r.headers["www-authenticate"]
    # Even alongside a valid header: a token in a URL leaks through logs and referrers.
    r = await client.post(
        "/mcp?access_token=x",
        json=CALL,
        headers={"authorization": f"Bearer {minter.mint()}"},
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "header",
    [
        {"typ": "JWT"},
        {"typ": None},
        {"jku": "https://evil.example/jwks"},
        {"alg": "RS256"},
        {"alg": "ES512"},
    ],
    ids=["typ-jwt", "no-typ", "jku", "alg-key-mismatch", "alg-curve-mismatch"],
)
async def test_bad_headers(http: Any, minter: Minter, header: dict[str, Any]) -> None:
    client, _ = http
    claims = minter.claims()
    hdr = {"alg": "ES256", "typ": "at+jwt", "kid": minter.kid, **header}
    hdr = {k: v for k, v in hdr.items() if v is not None}
    if hdr["alg"] == "ES256":
        token = jwt.encode(hdr, claims, minter.key)
    else:
        # Signed with a key of the type the header claims, under our kid.
        key = RSAKey.generate_key(2048) if hdr["alg"] == "RS256" else ECKey.generate_key("P-521")
        token = jwt.encode(hdr, claims, key, algorithms=[hdr["alg"]])
    assert_invalid_token(await post(client, token))


async def test_embedded_jwk_header(http: Any, minter: Minter) -> None:
    client, _ = http
    attacker = OKPKey.generate_key("Ed25519")
    hdr = {"alg": "Ed25519", "typ": "at+jwt", "jwk": attacker.as_dict(private=False)}
    token = jwt.encode(hdr, minter.claims(), attacker, algorithms=["Ed25519"])
    assert_invalid_token(await post(client, token))


@pytest.mark.parametrize(
    "value",
    ["Bearer", "Bearer ", "Bearer a.b", "Bearer !!!.@@@.###", "Bearer e30.e30.", "Bearer ....."],
)
async def test_malformed_tokens(http: Any, value: str) -> None:
    client, _ = http
    r = await client.post("/mcp", json=CALL, headers={"authorization": value})
    assert r.status_code == 401


async def test_two_authorization_headers(http: Any, minter: Minter) -> None:
    client, _ = http
    token = minter.mint()
    r = await client.post(
        "/mcp",
        json=CALL,
        headers=[("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")],
    )
    assert r.status_code == 401


async def test_basic_scheme_is_a_missing_bearer_token(http: Any) -> None:
    client, _ = http
    r = await client.post("/mcp", json=CALL, headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert "error=" not in r.headers["www-authenticate"]


async def test_the_audit_trail_never_holds_the_token(http: Any, minter: Minter) -> None:
    client, sink = http
    tokens = [minter.mint(), minter.mint(aud="https://other.example"), minter.mint("nothing")]
    for token in tokens:
        await post(client, token)
    joined = "\n".join(sink.lines)
    for token in tokens:
        for part in token.split("."):
            assert part not in joined
        assert hashlib.sha256(token.encode()).hexdigest() not in joined
    assert [e["outcome"] for e in sink.events() if e["event"] == "mcp.request"] == [
        "ok",
        "unauthorized",
        "forbidden",
    ]


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.text(max_size=300))
async def test_any_authorization_header_is_never_a_500(http: Any, value: str) -> None:
    client, _ = http
    try:
        raw = value.encode("latin-1")
    except UnicodeEncodeError:
        raw = value.encode("utf-8")
    r = await client.post("/mcp", json=CALL, headers=[(b"authorization", raw)])
    assert r.status_code in (400, 401)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=st.binary(max_size=200))
async def test_any_body_is_never_a_500(http: Any, minter: Minter, body: bytes) -> None:
    client, _ = http
    r = await client.post(
        "/mcp", content=body, headers={"authorization": f"Bearer {minter.mint()}"}
    )
    assert r.status_code in (200, 400, 403)
