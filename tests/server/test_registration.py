"""RFC 7591 Dynamic Client Registration over real HTTP: happy paths for native, web and
private_key_jwt clients, and every kind of bad input answered with the RFC's error code,
never a 500."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from joserfc.jwk import ECKey, OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcpward.server._authorization import redirect_uri_matches
from mcpward.server._client_metadata import validate_metadata
from mcpward.server._rfc7591 import MAX_BODY, read_json, register
from mcpward.server.app import json_response, oauth_endpoint
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import OAuthError
from mcpward.storage.records import ResourceRecord
from tests.conftest import serve
from tests.server.conftest import SCOPES, Running, start
from tests.server.support import code_flow

NATIVE = "http://127.0.0.1:33418/callback"
WEB = "https://app.example.com/oauth/callback"


@dataclass
class Dcr:
    running: Running
    http: httpx.AsyncClient

    async def post(self, body: object) -> httpx.Response:
        return await self.http.post(
            "/register", content=json.dumps(body), headers={"content-type": "application/json"}
        )


def register_app(server: AuthorizationServer) -> Starlette:
    """A ``/register`` route built the way the lead wires it into the app."""

    async def endpoint(request: Request) -> Response:
        status, body = await register(server, await read_json(request))
        return json_response(body, status)

    return Starlette(
        routes=[Route("/register", oauth_endpoint(server, endpoint), methods=["POST"])]
    )


@pytest.fixture(scope="module")
async def dcr(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Dcr]:
    """One authorization server for the module: registration only ever adds clients."""
    tmp_path = tmp_path_factory.mktemp("dcr")
    async for running in start(f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}", tmp_path):
        async with (
            serve(register_app(running.server)) as url,
            httpx.AsyncClient(base_url=url) as http,
        ):
            yield Dcr(running, http)


def ec_public_jwk() -> dict[str, Any]:
    return dict(ECKey.generate_key("P-256").as_dict(private=False))


# -- happy paths ------------------------------------------------------------------------


async def test_native_public_client(dcr: Dcr) -> None:
    resp = await dcr.post(
        {
            "redirect_uris": [NATIVE],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "client_name": "Claude Code",
            "scope": "orders.read",
            "software_id": "claude-code",
            "unknown_field": "ignored",
        }
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    body = resp.json()
    client_id = body["client_id"]
    assert isinstance(client_id, str) and len(client_id) >= 20
    assert body["client_id_issued_at"] == int(dcr.running.clock())
    assert "client_secret" not in body and "client_secret_expires_at" not in body
    assert body["application_type"] == "native"
    assert body["redirect_uris"] == [NATIVE]
    assert body["grant_types"] == ["authorization_code", "refresh_token"]
    assert body["response_types"] == ["code"]
    assert body["token_endpoint_auth_method"] == "none"
    assert body["client_name"] == "Claude Code"
    assert body["scope"] == "orders.read"
    assert body["software_id"] == "claude-code"
    assert "unknown_field" not in body

    client = await dcr.running.server.clients.get(client_id)
    assert client is not None
    assert client.source == "dcr" and client.is_public
    assert client.application_type == "native"
    assert client.name == "Claude Code"
    assert client.allowed_scope == "orders.read"
    # A native client's loopback redirect may change port at the authorization endpoint.
    assert redirect_uri_matches(client.redirect_uris, "http://127.0.0.1:50123/callback", True)

    events = [e for e in dcr.running.audit.events() if e["event"] == "client.registered"]
    assert events and events[-1]["client_id"] == client_id
    assert events[-1]["outcome"] == "ok"


async def test_web_confidential_client_gets_a_secret_once(dcr: Dcr) -> None:
    resp = await dcr.post({"redirect_uris": [WEB], "client_name": "Web app"})
    assert resp.status_code == 201, resp.text
    body = resp.json()
    # RFC 7591 §2: client_secret_basic is the default method.
    assert body["token_endpoint_auth_method"] == "client_secret_basic"
    assert body["application_type"] == "web"
    secret = body["client_secret"]
    assert secret.startswith("mcpw_cs_")
    assert body["client_secret_expires_at"] == int(dcr.running.clock() + 90 * 86400)
    registry = dcr.running.server.clients
    assert await registry.check_secret(body["client_id"], secret)
    # The secret never reaches the audit trail.
    assert all(secret not in line for line in dcr.running.audit.lines)


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://localhost:6274/oauth/callback",  # MCP Inspector, Claude Code
        "http://[::1]:8080/cb",
        "http://127.0.0.1/cb",
        "com.example.app:/oauth2redirect/example-provider",
        "cursor://anysphere.cursor-retrieval/oauth/callback",
        "https://app.example.com/claimed",  # claimed https redirect, RFC 8252 §7.2
    ],
)
async def test_native_redirect_forms(dcr: Dcr, redirect_uri: str) -> None:
    resp = await dcr.post(
        {
            "redirect_uris": [redirect_uri],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        }
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["application_type"] == "native"


async def test_application_type_is_inferred_from_redirect_uris(dcr: Dcr) -> None:
    native = await dcr.post(
        {"redirect_uris": [WEB, "http://localhost:1234/cb"], "token_endpoint_auth_method": "none"}
    )
    assert native.json()["application_type"] == "native"
    web = await dcr.post({"redirect_uris": [WEB], "token_endpoint_auth_method": "none"})
    assert web.json()["application_type"] == "web"


async def test_private_key_jwt_with_jwks_and_with_jwks_uri(dcr: Dcr) -> None:
    jwks = {"keys": [ec_public_jwk()]}
    resp = await dcr.post(
        {"redirect_uris": [WEB], "token_endpoint_auth_method": "private_key_jwt", "jwks": jwks}
    )
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert "client_secret" not in body
    assert body["jwks"] == jwks
    client = await dcr.running.server.clients.get(body["client_id"])
    assert client is not None and client.jwks == jwks

    resp = await dcr.post(
        {
            "redirect_uris": [WEB],
            "token_endpoint_auth_method": "private_key_jwt",
            "jwks_uri": "https://app.example.com/jwks.json",
        }
    )
    assert resp.status_code == 201, resp.text
    assert resp.json()["jwks_uri"] == "https://app.example.com/jwks.json"


async def test_client_credentials_needs_an_operator_unless_allowed(dcr: Dcr) -> None:
    body = {
        "grant_types": ["client_credentials"],
        "token_endpoint_auth_method": "client_secret_post",
    }
    resp = await dcr.post(body)
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_client_metadata"

    server = dcr.running.server
    with pytest.raises(OAuthError) as missing_scope:
        await register(server, body, allow_client_credentials=True)
    assert missing_scope.value.error == "invalid_client_metadata"
    status, created = await register(
        server, {**body, "scope": "orders.read"}, allow_client_credentials=True
    )
    assert status == 201
    assert created["response_types"] == []
    assert created["client_secret"].startswith("mcpw_cs_")
    client = await server.clients.get(created["client_id"])
    assert client is not None and client.allowed_scope == "orders.read"
    assert client.grant_types == ("client_credentials",)


async def test_registered_client_completes_the_code_flow(dcr: Dcr) -> None:
    resp = await dcr.post(
        {"redirect_uris": [NATIVE], "token_endpoint_auth_method": "none", "scope": "orders.read"}
    )
    client_id = resp.json()["client_id"]
    redirect = "http://127.0.0.1:50123/callback"  # another loopback port (RFC 8252 §7.3)
    token = await code_flow(
        dcr.running, "v" * 64, client_id=client_id, redirect_uri=redirect, scope="orders.read"
    )
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "orders.read"


# -- bad metadata -----------------------------------------------------------------------

GOOD: dict[str, Any] = {"redirect_uris": [NATIVE], "token_endpoint_auth_method": "none"}
RSA_PUBLIC = dict(RSAKey.generate_key(2048).as_dict(private=False))


def bad(**changes: Any) -> dict[str, Any]:
    body = {**GOOD, **changes}
    return {k: v for k, v in body.items() if v is not ...}


REDIRECT_CASES: list[tuple[str, object]] = [
    ("missing", bad(redirect_uris=...)),
    ("empty", bad(redirect_uris=[])),
    ("not a list", bad(redirect_uris=NATIVE)),
    ("not strings", bad(redirect_uris=[1])),
    ("empty string", bad(redirect_uris=[""])),
    ("relative", bad(redirect_uris=["/callback"])),
    ("no scheme", bad(redirect_uris=["app.example.com/cb"])),
    ("fragment", bad(redirect_uris=["https://app.example.com/cb#frag"])),
    ("empty fragment", bad(redirect_uris=["https://app.example.com/cb#"])),
    ("userinfo", bad(redirect_uris=["https://user:pw@app.example.com/cb"])),
    ("wildcard", bad(redirect_uris=["https://*.example.com/cb"])),
    ("space", bad(redirect_uris=["https://app.example.com/c b"])),
    ("non-ascii", bad(redirect_uris=["https://app.example.com/ü"])),
    ("backslash", bad(redirect_uris=["https://app.example.com\\@evil.example/cb"])),
    ("bad port", bad(redirect_uris=["http://127.0.0.1:99999/cb"])),
    ("javascript", bad(redirect_uris=["javascript:alert(1)"])),
    ("data", bad(redirect_uris=["data:text/html,<script>alert(1)</script>"])),
    ("file", bad(redirect_uris=["file:///etc/passwd"])),
    ("http not loopback", bad(redirect_uris=["http://app.example.com/cb"])),
    ("http private ip", bad(redirect_uris=["http://192.168.1.10/cb"])),
    ("too long", bad(redirect_uris=["https://app.example.com/" + "a" * 3000])),
    ("too many", bad(redirect_uris=[f"http://127.0.0.1/cb{i}" for i in range(40)])),
    ("web loopback ip", bad(application_type="web", redirect_uris=["http://127.0.0.1:8080/cb"])),
    ("web localhost http", bad(application_type="web", redirect_uris=["http://localhost/cb"])),
    ("web localhost https", bad(application_type="web", redirect_uris=["https://localhost/cb"])),
    ("web ipv6 loopback", bad(application_type="web", redirect_uris=["https://[::1]/cb"])),
    ("web private scheme", bad(application_type="web", redirect_uris=["com.example.app:/cb"])),
    ("native http remote", bad(application_type="native", redirect_uris=["http://evil.example/"])),
]

METADATA_CASES: list[tuple[str, object]] = [
    ("array body", [GOOD]),
    ("string body", "redirect_uris"),
    ("number body", 42),
    ("null body", None),
    ("application_type unknown", bad(application_type="desktop")),
    ("application_type wrong type", bad(application_type=1)),
    ("grant password", bad(grant_types=["password"])),
    ("grant implicit", bad(grant_types=["implicit"])),
    ("grant not a list", bad(grant_types="authorization_code")),
    ("grant empty", bad(grant_types=[])),
    ("grant not strings", bad(grant_types=[None])),
    ("refresh alone", bad(grant_types=["refresh_token"])),
    ("client_credentials public", bad(grant_types=["client_credentials"])),
    ("response token", bad(response_types=["token"])),
    ("response code token", bad(response_types=["code", "token"])),
    ("response empty", bad(response_types=[])),
    ("response without grant", bad(grant_types=["client_credentials"], response_types=["code"])),
    ("auth method unknown", bad(token_endpoint_auth_method="client_secret_jwt")),
    ("auth method type", bad(token_endpoint_auth_method=5)),
    ("pkjwt no keys", bad(token_endpoint_auth_method="private_key_jwt")),
    (
        "pkjwt jwks and uri",
        bad(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [ec_public_jwk()]},
            jwks_uri="https://app.example.com/jwks.json",
        ),
    ),
    (
        "pkjwt private key",
        bad(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [dict(ECKey.generate_key("P-256").as_dict(private=True))]},
        ),
    ),
    (
        "pkjwt symmetric key",
        bad(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [dict(OctKey.generate_key(256).as_dict(private=False))]},
        ),
    ),
    (
        "pkjwt short rsa",
        bad(
            token_endpoint_auth_method="private_key_jwt",
            jwks={"keys": [{**RSA_PUBLIC, "n": RSA_PUBLIC["n"][:171]}]},
        ),
    ),
    ("pkjwt jwks not object", bad(token_endpoint_auth_method="private_key_jwt", jwks="keys")),
    ("pkjwt no keys list", bad(token_endpoint_auth_method="private_key_jwt", jwks={"keys": []})),
    (
        "pkjwt garbage key",
        bad(token_endpoint_auth_method="private_key_jwt", jwks={"keys": [{"kty": "EC"}]}),
    ),
    (
        "pkjwt http jwks_uri",
        bad(token_endpoint_auth_method="private_key_jwt", jwks_uri="http://app.example.com/k"),
    ),
    ("jwks without pkjwt", bad(jwks={"keys": [ec_public_jwk()]})),
    ("client_name empty", bad(client_name="")),
    ("client_name blank", bad(client_name="   ")),
    ("client_name too long", bad(client_name="x" * 201)),
    ("client_name type", bad(client_name=["x"])),
    ("client_name control", bad(client_name="a\x00b")),
    ("scope unknown", bad(scope="orders.read admin.everything")),
    ("scope malformed", bad(scope="orders.read  orders.write")),
    ("scope type", bad(scope=["orders.read"])),
    ("contacts type", bad(contacts="ops@example.com")),
    ("logo javascript", bad(logo_uri="javascript:alert(1)")),
    ("client_uri type", bad(client_uri=7)),
]


@pytest.mark.parametrize(("case", "body"), REDIRECT_CASES, ids=[c for c, _ in REDIRECT_CASES])
async def test_bad_redirect_uris(dcr: Dcr, case: str, body: object) -> None:
    resp = await dcr.post(body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_redirect_uri", case
    assert resp.headers["cache-control"] == "no-store"


@pytest.mark.parametrize(("case", "body"), METADATA_CASES, ids=[c for c, _ in METADATA_CASES])
async def test_bad_metadata(dcr: Dcr, case: str, body: object) -> None:
    resp = await dcr.post(body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == "invalid_client_metadata", case


async def test_rejections_are_audited_without_input(dcr: Dcr) -> None:
    await dcr.post(bad(client_name="x" * 201))
    rejected = [
        e for e in dcr.running.audit.events() if e["event"] == "client.registration_rejected"
    ]
    assert rejected and rejected[-1]["reason"] == "invalid_client_metadata"
    assert "x" * 201 not in json.dumps(rejected)


# -- bad requests -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "content", "error"),
    [
        ("text/plain", json.dumps(GOOD), "invalid_request"),
        ("application/x-www-form-urlencoded", "redirect_uris=x", "invalid_request"),
        (None, json.dumps(GOOD), "invalid_request"),
        ("application/json", "{", "invalid_client_metadata"),
        ("application/json", "", "invalid_client_metadata"),
        ("application/json", b"\xff\xfe{}", "invalid_client_metadata"),
        ("application/json", '{"a": NaN}', "invalid_client_metadata"),
        ("application/json", '{"client_name": "a", "client_name": "b"}', "invalid_client_metadata"),
        ("application/json", "[" * 5000 + "]" * 5000, "invalid_client_metadata"),
        ("application/json", json.dumps({**GOOD, "pad": "x" * MAX_BODY}), "invalid_request"),
    ],
)
async def test_bad_bodies(
    dcr: Dcr, content_type: str | None, content: str | bytes, error: str
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    resp = await dcr.http.post("/register", content=content, headers=headers)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"] == error


async def test_oversized_chunked_body_is_cut_off(dcr: Dcr) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"pad": "'
        for _ in range(64):
            yield b"x" * 1024
        yield b'"}'

    resp = await dcr.http.post(
        "/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert resp.status_code == 400
    assert resp.json()["error"] == "invalid_request"


async def test_json_content_type_with_charset(dcr: Dcr) -> None:
    resp = await dcr.http.post(
        "/register",
        content=json.dumps(GOOD),
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert resp.status_code == 201, resp.text


# -- never a 500 ------------------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = st.sampled_from(
    [
        "redirect_uris",
        "grant_types",
        "response_types",
        "token_endpoint_auth_method",
        "application_type",
        "client_name",
        "scope",
        "jwks",
        "jwks_uri",
        "contacts",
        "logo_uri",
        "software_id",
    ]
)
RESOURCES = [ResourceRecord(uri="https://mcp.example/", name="x", scopes=SCOPES)]


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(FIELDS, JSON | st.lists(st.text(max_size=60), max_size=3), max_size=8))
def test_any_metadata_is_accepted_or_refused_with_an_oauth_error(body: dict[str, Any]) -> None:
    refused: OAuthError | None = None
    try:
        validate_metadata(body, resources=RESOURCES)
    except OAuthError as error:
        refused = error
    if refused is not None:
        assert refused.status_code == 400
        assert refused.error in ("invalid_client_metadata", "invalid_redirect_uri")
