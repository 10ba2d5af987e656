"""What the enterprise and workload identity tests share: a JWT issuer the authorization
server trusts, served over real HTTP (OpenID discovery document and JWK Set), and the
form of each grant's token request.

The issuer's signing happens in the test, with PyJWT (a JOSE library independent of the
server's joserfc): the negative matrices need assertions no real IdP would sign (a wrong
``typ``, two audiences, a foreign key). The end-to-end tests use real IdPs instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.conftest import serve
from tests.services import free_port

ID_JAG_TYPE = "oauth-id-jag+jwt"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN_TYPE = "urn:ietf:params:oauth:token-type:access_token"
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def public_jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> dict[str, Any]:
    numbers = key.public_key().public_numbers()

    def b64(n: int) -> str:
        return base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()

    return {
        "kty": "EC",
        "crv": "P-256",
        "x": b64(numbers.x),
        "y": b64(numbers.y),
        "kid": kid,
        "alg": "ES256",
        "use": "sig",
    }


@dataclass
class Issuer:
    """A trusted issuer: ``url`` serves its discovery document and JWK Set."""

    url: str
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1())
    )
    kid: str = "key-1"
    jwks_requests: int = 0

    def jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(self.key, self.kid)]}

    def sign(
        self,
        claims: Mapping[str, Any],
        *,
        typ: str | None = ID_JAG_TYPE,
        key: ec.EllipticCurvePrivateKey | None = None,
        kid: str | None = None,
        headers: Mapping[str, Any] | None = None,
    ) -> str:
        header: dict[str, Any] = {"typ": typ, "kid": kid or self.kid, **(headers or {})}
        return jwt.encode(dict(claims), key or self.key, algorithm="ES256", headers=header)

    def id_jag(self, now: float, *, typ: str | None = ID_JAG_TYPE, **claims: Any) -> str:
        """An ID-JAG for client ``mcp-client`` at the server of ``tests.server.conftest``;
        ``claims`` override (``None`` drops a claim)."""
        body: dict[str, Any] = {
            "iss": self.url,
            "sub": "employee-7",
            "aud": "http://127.0.0.1:8400",
            "client_id": "mcp-client",
            "resource": "http://127.0.0.1:8400/mcp",
            "scope": "orders.read orders.write",
            "jti": uuid.uuid4().hex,
            "iat": int(now),
            "exp": int(now) + 300,
        }
        return self.sign(_merged(body, claims), typ=typ)

    def workload(self, now: float, *, typ: str | None = None, **claims: Any) -> str:
        """A workload JWT like a Kubernetes projected service-account token."""
        body: dict[str, Any] = {
            "iss": self.url,
            "sub": "system:serviceaccount:batch:backfill",
            "aud": "http://127.0.0.1:8400",
            "jti": uuid.uuid4().hex,
            "iat": int(now),
            "exp": int(now) + 600,
            "kubernetes.io": {"namespace": "batch"},
            "namespace": "batch",
        }
        return self.sign(_merged(body, claims), typ=typ)


def _merged(body: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is None:
            body.pop(name, None)
        else:
            body[name] = value
    return body


@asynccontextmanager
async def serve_issuer() -> AsyncIterator[Issuer]:
    port = free_port()
    issuer = Issuer(f"http://127.0.0.1:{port}")

    async def discovery(request: Request) -> JSONResponse:
        return JSONResponse({"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks.json"})

    async def keys(request: Request) -> JSONResponse:
        issuer.jwks_requests += 1
        return JSONResponse(issuer.jwks())

    app = Starlette(
        routes=[
            Route("/.well-known/openid-configuration", discovery),
            Route("/jwks.json", keys),
        ]
    )
    async with serve(app, port):
        yield issuer


def dpop_proof(
    key: ec.EllipticCurvePrivateKey, htu: str, htm: str = "POST", access_token: str | None = None
) -> tuple[str, str]:
    """A DPoP proof (RFC 9449 §4.2) signed with PyJWT, and its key's RFC 7638 thumbprint;
    with ``access_token``, its hash as ``ath`` (§4.3, for a resource)."""
    jwk = public_jwk(key, "")
    public = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    canonical = json.dumps(public, separators=(",", ":"), sort_keys=True).encode()
    jkt = base64.urlsafe_b64encode(hashlib.sha256(canonical).digest()).rstrip(b"=").decode()
    claims: dict[str, Any] = {
        "jti": uuid.uuid4().hex,
        "htm": htm,
        "htu": htu,
        "iat": int(time.time()),
    }
    if access_token is not None:
        digest = hashlib.sha256(access_token.encode()).digest()
        claims["ath"] = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    header = {"typ": "dpop+jwt", "jwk": public}
    return jwt.encode(claims, key, algorithm="ES256", headers=header), jkt


def claims_of(token: str) -> dict[str, Any]:
    """An access token's claims, read without verification (the tests verify elsewhere)."""
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def jwt_bearer(assertion: str, **extra: str) -> dict[str, str]:
    return {"grant_type": JWT_BEARER, "assertion": assertion, **extra}


def exchange(subject_token: str, **extra: str) -> dict[str, str]:
    return {
        "grant_type": TOKEN_EXCHANGE,
        "subject_token": subject_token,
        "subject_token_type": ACCESS_TOKEN_TYPE,
        **extra,
    }
