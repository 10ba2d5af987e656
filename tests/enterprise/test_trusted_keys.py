"""Where a trusted issuer's keys come from: OpenID discovery then its JWK Set over real
HTTP, a pinned JWK Set file, refetched once for a rotated key and no more often than
every 30 s however many unknown ``kid``s arrive; an issuer that cannot be reached is a
503 with Retry-After until it is back, with no restart; a discovery document pointing
at an internal address is refused (SSRF)."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcpward.storage.records import JWT_BEARER
from tests.conftest import serve
from tests.enterprise.support import Issuer, claims_of, jwt_bearer, serve_issuer
from tests.server.conftest import Running, start
from tests.services import free_port


@asynccontextmanager
async def server_trusting(
    tmp_path: Path, idp: Issuer, **issuer_config: Any
) -> AsyncIterator[tuple[Running, str]]:
    config = {"issuer": idp.url, "profiles": ["id-jag"], **issuer_config}
    url = f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}"
    async for r in start(url, tmp_path, trusted_issuers=[config]):
        secret = await r.confidential_client("mcp-client", grant_types=(JWT_BEARER,))
        assert secret is not None
        yield r, secret


async def test_keys_by_discovery_and_a_rotated_key_refetched_once(tmp_path: Path) -> None:
    async with serve_issuer() as idp, server_trusting(tmp_path, idp) as (r, secret):
        auth = ("mcp-client", secret)
        ok = await r.http.post("/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=auth)
        assert ok.status_code == 200, ok.text
        assert idp.jwks_requests == 1
        # A minute later the IdP rotates: a new key, published, signing.
        r.clock.advance(60)
        idp.key, idp.kid = ec.generate_private_key(ec.SECP256R1()), "key-2"
        rotated = await r.http.post("/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=auth)
        assert rotated.status_code == 200, rotated.text
        assert idp.jwks_requests == 2
        # A flood of made-up kids within 30 s: no further fetch.
        for n in range(5):
            forged = idp.sign(claims_of(idp.id_jag(r.clock())), kid=f"made-up-{n}")
            refused = await r.http.post("/token", data=jwt_bearer(forged), auth=auth)
            assert refused.json()["error"] == "invalid_grant"
        assert idp.jwks_requests == 2


async def test_a_pinned_jwks_needs_no_fetch(tmp_path: Path) -> None:
    idp = Issuer(f"http://127.0.0.1:{free_port()}")  # nothing listens there
    pinned = tmp_path / "idp-jwks.json"
    pinned.write_text(json.dumps(idp.jwks()))
    async with server_trusting(tmp_path, idp, jwks_file=str(pinned)) as (r, secret):
        ok = await r.http.post(
            "/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=("mcp-client", secret)
        )
        assert ok.status_code == 200, ok.text


async def test_an_unreachable_issuer_is_503_until_it_is_back(tmp_path: Path) -> None:
    port = free_port()
    idp = Issuer(f"http://127.0.0.1:{port}")
    async with server_trusting(tmp_path, idp) as (r, secret):
        auth = ("mcp-client", secret)
        down = await r.http.post("/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=auth)
        assert down.status_code == 503, down.text
        assert down.json()["error"] == "temporarily_unavailable"
        assert down.headers["retry-after"] == "5"
        async with serve(_issuer_app(idp), port):
            r.clock.advance(6)
            back = await r.http.post("/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=auth)
            assert back.status_code == 200, back.text


def _issuer_app(idp: Issuer, jwks_uri: str | None = None, names: str | None = None) -> Starlette:
    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse(
            {"issuer": names or idp.url, "jwks_uri": jwks_uri or idp.url + "/jwks.json"}
        )

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse(idp.jwks())

    return Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks.json", keys),
        ]
    )


@pytest.mark.parametrize(
    ("jwks_uri", "names", "logged"),
    [
        ("https://10.0.0.7/jwks.json", None, "forbidden_address"),
        ("http://203.0.113.9/jwks.json", None, "no usable jwks_uri"),
        (None, "https://someone-else.example", "names another issuer"),
    ],
    ids=["internal-address", "plain-http", "other-issuer"],
)
async def test_a_discovery_document_is_not_followed_anywhere(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    jwks_uri: str | None,
    names: str | None,
    logged: str,
) -> None:
    port = free_port()
    idp = Issuer(f"http://127.0.0.1:{port}")
    caplog.set_level(logging.WARNING, "mcpward.server.trusted_keys")
    async with (
        serve(_issuer_app(idp, jwks_uri, names), port),
        server_trusting(tmp_path, idp) as (r, secret),
    ):
        response = await r.http.post(
            "/token", data=jwt_bearer(idp.id_jag(r.clock())), auth=("mcp-client", secret)
        )
        assert response.status_code == 503
        assert logged in caplog.text
        assert "eyJ" not in caplog.text
