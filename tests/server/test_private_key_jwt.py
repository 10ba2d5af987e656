"""private_key_jwt client authentication (RFC 7523)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.server.conftest import RESOURCE, Running

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@pytest.fixture
def key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def jwks_of(key: ec.EllipticCurvePrivateKey) -> dict[str, Any]:
    public = jwt.algorithms.ECAlgorithm.to_jwk(key.public_key(), as_dict=True)
    public.update({"kid": "k1", "use": "sig", "alg": "ES256"})
    return {"keys": [public]}


def assertion(key: ec.EllipticCurvePrivateKey, r: Running, **claims: Any) -> str:
    now = int(r.clock())
    body: dict[str, Any] = {
        "iss": "signer",
        "sub": "signer",
        "aud": "http://127.0.0.1:8400/token",
        "iat": now,
        "exp": now + 60,
        "jti": str(uuid.uuid4()),
    }
    body.update(claims)
    body = {k: v for k, v in body.items() if v is not None}
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": "k1"})


async def request(r: Running, client_assertion: str) -> tuple[int, dict[str, Any]]:
    resp = await r.http.post(
        "/token",
        data={
            "grant_type": "client_credentials",
            "resource": RESOURCE,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": client_assertion,
        },
    )
    return resp.status_code, resp.json()


async def test_private_key_jwt(running: Running, key: ec.EllipticCurvePrivateKey) -> None:
    await running.confidential_client("signer", method="private_key_jwt", jwks=jwks_of(key))
    status, body = await request(running, assertion(key, running))
    assert status == 200, body
    # The issuer identifier is an accepted audience too (RFC 7523bis).
    status, body = await request(running, assertion(key, running, aud="http://127.0.0.1:8400"))
    assert status == 200, body


@pytest.mark.parametrize(
    "claims",
    [
        {"aud": "https://evil.example/token"},
        {"exp": int(time.time()) - 3600},
        {"exp": int(time.time()) + 86400},
        {"jti": None},
        {"sub": "someone-else"},
        {"iss": "unknown-client", "sub": "unknown-client"},
    ],
)
async def test_bad_assertions(
    running: Running, key: ec.EllipticCurvePrivateKey, claims: dict[str, Any]
) -> None:
    await running.confidential_client("signer", method="private_key_jwt", jwks=jwks_of(key))
    running.clock.now = time.time()
    status, body = await request(running, assertion(key, running, **claims))
    assert (status, body["error"]) == (401, "invalid_client")


async def test_replayed_assertion_refused(
    running: Running, key: ec.EllipticCurvePrivateKey
) -> None:
    await running.confidential_client("signer", method="private_key_jwt", jwks=jwks_of(key))
    one = assertion(key, running)
    assert (await request(running, one))[0] == 200
    status, body = await request(running, one)
    assert (status, body["error"]) == (401, "invalid_client")


async def test_assertion_signed_by_another_key(
    running: Running, key: ec.EllipticCurvePrivateKey
) -> None:
    await running.confidential_client("signer", method="private_key_jwt", jwks=jwks_of(key))
    intruder = ec.generate_private_key(ec.SECP256R1())
    status, body = await request(running, assertion(intruder, running))
    assert (status, body["error"]) == (401, "invalid_client")
