"""Metadata (RFC 8414), JWKS, and bad input on every endpoint: the RFC's error, never a 500."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from mcpward.audit import AuditLog
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server import create_app
from tests.conftest import serve
from tests.server.conftest import RESOURCE, Running


@pytest.mark.parametrize(
    "path", ["/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"]
)
async def test_metadata(sqlite_running: Running, path: str) -> None:
    resp = await sqlite_running.http.get(path)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["issuer"] == "http://127.0.0.1:8400"
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["authorization_response_iss_parameter_supported"] is True
    assert doc["client_id_metadata_document_supported"] is True
    assert doc["token_endpoint"] == "http://127.0.0.1:8400/token"
    assert set(doc["grant_types_supported"]) == {
        "authorization_code",
        "refresh_token",
        "client_credentials",
    }
    assert "private_key_jwt" in doc["token_endpoint_auth_methods_supported"]
    assert "orders.read" in doc["scopes_supported"]
    assert "implicit" not in str(doc) and "password" not in doc["grant_types_supported"]


async def test_jwks_publishes_public_keys_only(sqlite_running: Running) -> None:
    jwks = (await sqlite_running.http.get("/jwks.json")).json()
    assert len(jwks["keys"]) == 1
    key = jwks["keys"][0]
    assert key["kty"] == "EC" and key["alg"] == "ES256" and key["use"] == "sig"
    assert "d" not in key


BAD_TOKEN_REQUESTS = [
    # (content type, body, status, error)
    ("application/json", b'{"grant_type":"client_credentials"}', 400, "invalid_request"),
    ("application/x-www-form-urlencoded", b"", 400, "invalid_request"),
    ("application/x-www-form-urlencoded", b"grant_type=password", 400, "unsupported_grant_type"),
    ("application/x-www-form-urlencoded", b"grant_type=implicit", 400, "unsupported_grant_type"),
    (
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&grant_type=client_credentials",
        400,
        "invalid_request",
    ),
    (
        "application/x-www-form-urlencoded",
        b"grant_type=client_credentials&scope=" + b"a" * 70000,
        400,
        "invalid_request",
    ),
    ("application/x-www-form-urlencoded", b"grant_type=%ff%fe", 400, "invalid_request"),
    ("application/x-www-form-urlencoded", b"\xff\xfe\x00", 400, "invalid_request"),
    ("text/plain", b"grant_type=client_credentials", 400, "invalid_request"),
]


@pytest.mark.parametrize(("ctype", "body", "status", "error"), BAD_TOKEN_REQUESTS)
async def test_bad_token_requests(
    sqlite_running: Running, ctype: str, body: bytes, status: int, error: str
) -> None:
    secret = await sqlite_running.confidential_client()
    assert secret
    resp = await sqlite_running.http.post(
        "/token", content=body, headers={"content-type": ctype}, auth=("agent", secret)
    )
    assert (resp.status_code, resp.json()["error"]) == (status, error), resp.text


@pytest.mark.parametrize(
    "authorization",
    ["Basic !!!", "Basic " + "A" * 10, "Basic Zm9v", "Bearer x", "Basic w6k6w6k="],
)
async def test_malformed_client_authentication(sqlite_running: Running, authorization: str) -> None:
    resp = await sqlite_running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        headers={"authorization": authorization},
    )
    assert resp.status_code == 401
    assert resp.json()["error"] == "invalid_client"


async def test_two_authentication_methods_refused(sqlite_running: Running) -> None:
    secret = await sqlite_running.confidential_client()
    assert secret
    resp = await sqlite_running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "client_id": "agent", "client_secret": secret},
        auth=("agent", secret),
    )
    assert (resp.status_code, resp.json()["error"]) == (400, "invalid_request")


async def test_grant_not_registered_for_client(sqlite_running: Running) -> None:
    secret = await sqlite_running.confidential_client()
    assert secret
    resp = await sqlite_running.http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": "x"},
        auth=("agent", secret),
    )
    assert (resp.status_code, resp.json()["error"]) == (400, "unauthorized_client")


async def test_disabled_client_is_refused(sqlite_running: Running) -> None:
    secret = await sqlite_running.confidential_client()
    assert secret
    await sqlite_running.server.disable_client("agent")
    resp = await sqlite_running.http.post(
        "/token",
        data={"grant_type": "client_credentials", "resource": RESOURCE},
        auth=("agent", secret),
    )
    assert resp.status_code == 401


@pytest.mark.parametrize("path", ["/revoke", "/introspect"])
@pytest.mark.parametrize(
    ("ctype", "body"),
    [
        ("application/json", b'{"token": 1}'),
        ("application/x-www-form-urlencoded", b"token=a&token=b"),
        ("application/x-www-form-urlencoded", b""),
    ],
)
async def test_bad_input_on_revoke_and_introspect(
    sqlite_running: Running, path: str, ctype: str, body: bytes
) -> None:
    secret = await sqlite_running.confidential_client()
    assert secret
    resp = await sqlite_running.http.post(
        path, content=body, headers={"content-type": ctype}, auth=("agent", secret)
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


async def test_wrong_methods(sqlite_running: Running) -> None:
    assert (await sqlite_running.http.get("/token")).status_code == 405
    assert (await sqlite_running.http.post("/jwks.json")).status_code == 405


async def test_issuer_with_a_path(tmp_path: Path) -> None:
    settings = Settings(issuer="http://127.0.0.1:8400/tenant-a", data_dir=tmp_path)
    server = await open_server(settings, audit=AuditLog([]))
    try:
        async with serve(create_app(server)) as url, httpx.AsyncClient(base_url=url) as http:
            for path in (
                "/.well-known/oauth-authorization-server/tenant-a",
                "/.well-known/openid-configuration/tenant-a",
                "/tenant-a/.well-known/openid-configuration",
            ):
                doc = (await http.get(path)).json()
                assert doc["issuer"] == "http://127.0.0.1:8400/tenant-a", path
                assert doc["token_endpoint"] == "http://127.0.0.1:8400/tenant-a/token"
            assert (await http.get("/tenant-a/jwks.json")).status_code == 200
            assert (await http.get("/.well-known/oauth-authorization-server")).status_code == 404
    finally:
        await server.close()


async def test_registration_endpoint_is_served_and_advertised(sqlite_running: Running) -> None:
    meta = (await sqlite_running.http.get("/.well-known/oauth-authorization-server")).json()
    assert meta["registration_endpoint"] == "http://127.0.0.1:8400/register"
    resp = await sqlite_running.http.post(
        "/register",
        json={
            "client_name": "Inspector",
            "redirect_uris": ["http://127.0.0.1:6274/oauth/callback"],
            "token_endpoint_auth_method": "none",
        },
        headers={"Origin": "http://localhost:6274"},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["access-control-allow-origin"] == "*"
    client_id = resp.json()["client_id"]
    assert (await sqlite_running.server.clients.get(client_id)) is not None
