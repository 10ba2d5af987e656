"""client_credentials end to end over HTTP, tokens checked with PyJWT (an independent JOSE
library) using only the published JWKS."""

from __future__ import annotations

import jwt
import pytest

from tests.server.conftest import OTHER_RESOURCE, RESOURCE, Running


async def published_key(r: Running, token: str) -> jwt.PyJWK:
    jwks = (await r.http.get("/jwks.json")).json()
    kid = jwt.get_unverified_header(token)["kid"]
    return jwt.PyJWKSet.from_dict(jwks)[kid]


async def test_issues_rfc9068_token_verifiable_from_jwks(running: Running) -> None:
    secret = await running.confidential_client()
    assert secret is not None and secret.startswith("mcpw_cs_")
    resp = await running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": "orders.read", "resource": RESOURCE},
        auth=("agent", secret),
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 900
    assert "refresh_token" not in body
    assert resp.headers["cache-control"] == "no-store"

    token = body["access_token"]
    header = jwt.get_unverified_header(token)
    assert header["typ"] == "at+jwt" and header["alg"] == "ES256"
    key = await published_key(running, token)
    claims = jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=RESOURCE,
        issuer="http://127.0.0.1:8400",
        options={"verify_exp": False},
    )
    assert claims["client_id"] == "agent" and claims["sub"] == "agent"
    assert claims["scope"] == "orders.read"
    assert claims["exp"] - claims["iat"] == 900
    assert claims["jti"]


async def test_secret_post_and_default_scopes(running: Running) -> None:
    secret = await running.confidential_client(method="client_secret_post")
    assert secret
    resp = await running.http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "client_id": "agent",
            "client_secret": secret,
            "resource": RESOURCE,
        },
    )
    assert resp.status_code == 200, resp.text
    assert resp.json()["scope"] == "orders.read orders.write"


@pytest.mark.parametrize(
    ("data", "status", "error"),
    [
        ({"scope": "refund.admin", "resource": RESOURCE}, 400, "invalid_scope"),
        ({"scope": "nope", "resource": RESOURCE}, 400, "invalid_scope"),
        ({"resource": "https://unknown.example/mcp"}, 400, "invalid_target"),
        ({"resource": OTHER_RESOURCE}, 400, "invalid_scope"),
        ({"scope": "orders.read"}, 400, "invalid_target"),
    ],
)
async def test_scope_and_target_errors(
    running: Running, data: dict[str, str], status: int, error: str
) -> None:
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post(
        "/token", data={"grant_type": "client_credentials", **data}, auth=("agent", secret)
    )
    assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text


@pytest.mark.parametrize(
    "requested",
    [
        # mcp-remote --client-credentials, FastMCP ClientCredentialsOAuthProvider(scopes=None)
        # and TS SDK 2.x ClientCredentialsProvider ask for every scope the resource offers.
        "orders.read orders.write refund.admin",
        "refund.admin orders.read",
    ],
)
async def test_more_scope_than_allowed_issues_the_intersection(
    running: Running, requested: str
) -> None:
    """RFC 6749 §3.3: the server issues fewer scopes than requested and says which."""
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "scope": requested, "resource": RESOURCE},
        auth=("agent", secret),
    )
    assert resp.status_code == 200, resp.text
    allowed = {"orders.read", "orders.write"}
    granted = set(resp.json()["scope"].split())
    assert granted == allowed & set(requested.split())
    claims = jwt.decode(resp.json()["access_token"], options={"verify_signature": False})
    assert set(claims["scope"].split()) == granted
    issued = [e for e in running.audit.events() if e["event"] == "token.issued"][-1]
    assert set(issued["scopes"]) == granted  # type: ignore[call-overload]
    assert issued["detail"]["requested_scope"] == " ".join(sorted(requested.split()))  # type: ignore[index]


async def test_wrong_secret_is_invalid_client_and_audited(running: Running) -> None:
    secret = await running.confidential_client()
    assert secret
    wrong = secret[:-6] + "AAAAAA"
    resp = await running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("agent", wrong),
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"
    assert resp.headers["www-authenticate"].startswith("Basic")
    events = [e for e in running.audit.events() if e["event"] == "client.authentication_failed"]
    assert events and events[-1]["outcome"] == "unauthorized"
    assert all(secret not in line and wrong not in line for line in running.audit.lines)


async def test_fast_path_and_cors_route_answer_alike(running: Running) -> None:
    """Token requests without an Origin header skip the framework; cross-origin ones take
    the CORS route. Both must answer the same way."""
    secret = await running.confidential_client()
    assert secret
    for data in (
        {"grant_type": "client_credentials", "resource": RESOURCE},
        {"grant_type": "client_credentials", "resource": "https://unknown.example/mcp"},
        {"grant_type": "nope"},
    ):
        plain = await running.http.post("/token", data=data, auth=("agent", secret))
        browser = await running.http.post(
            "/token", data=data, auth=("agent", secret), headers={"Origin": "http://x.test"}
        )
        assert plain.status_code == browser.status_code
        assert "access-control-allow-origin" not in plain.headers
        assert browser.headers["access-control-allow-origin"] == "*"
        assert plain.headers["cache-control"] == browser.headers["cache-control"] == "no-store"
        if plain.status_code != 200:
            assert plain.json() == browser.json()
    wrong = await running.http.post("/token", data={"grant_type": "client_credentials"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_client")


@pytest.mark.parametrize("variant", [RESOURCE + "/", RESOURCE.upper().replace("HTTP", "http")])
async def test_resource_compared_exactly_as_registered(running: Running, variant: str) -> None:
    """A trailing slash or another case is a different resource; the error names the
    registered one so the operator sees the mismatch (and never echoes the request)."""
    secret = await running.confidential_client()
    assert secret
    resp = await running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": variant},
        auth=("agent", secret),
    )
    assert resp.status_code == 400
    body = resp.json()
    assert body["error"] == "invalid_target"
    assert body["error_description"].endswith(
        f"the registered one is {RESOURCE} (compared exactly)"
    )
