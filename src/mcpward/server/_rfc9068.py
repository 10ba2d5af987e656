"""JWT access tokens (RFC 9068)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from joserfc import jwt
from joserfc.errors import JoseError

from mcpward._secrets import new_id
from mcpward.server.keys import ActiveKey, KeyRing


@dataclass(frozen=True, slots=True)
class IssuedAccessToken:
    token: str
    jti: str
    expires_in: int
    scope: str


def mint_access_token(
    keys: KeyRing,
    *,
    issuer: str,
    subject: str,
    client_id: str,
    audience: str,
    scope: str,
    now: float,
    lifetime: float,
    family_id: str | None = None,
    auth_time: float | None = None,
    act: Mapping[str, Any] | None = None,
    jkt: str | None = None,
) -> IssuedAccessToken:
    signer = keys.signing_key()
    jti = new_id(16)
    iat = int(now)
    claims: dict[str, object] = {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "client_id": client_id,
        "scope": scope,
        "jti": jti,
        "iat": iat,
        "exp": iat + int(lifetime),
    }
    if family_id is not None:
        claims["sid"] = family_id
    if auth_time is not None:
        claims["auth_time"] = int(auth_time)
    if act is not None:
        claims["act"] = dict(act)
    if jkt is not None:
        # RFC 9449 §6.1: the token is bound to the DPoP key with this thumbprint.
        claims["cnf"] = {"jkt": jkt}
    header = {"alg": signer.alg, "typ": "at+jwt", "kid": signer.kid}
    return IssuedAccessToken(_sign_compact(header, claims, signer), jti, int(lifetime), scope)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _json(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value)


def _sign_compact(header: dict[str, Any], claims: dict[str, Any], signer: ActiveKey) -> str:
    """JWS compact serialization (RFC 7515 §7.1) with the key's own primitive.

    Signing is on the hot path of the token endpoint, and the header and claims here are
    built by us, so joserfc's general-purpose validation of them buys nothing; calling
    ``cryptography`` directly saves about a third of the signing time (measured 39 µs ->
    24 µs). Tokens are verified with joserfc and PyJWT in the tests.
    """
    signing_input = _b64(_json(header)) + b"." + _b64(_json(claims))
    private = signer.key.private_key
    if isinstance(private, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(private.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    elif isinstance(private, ed25519.Ed25519PrivateKey):
        signature = private.sign(signing_input)
    else:  # pragma: no cover - KeyRing only generates the two
        raise TypeError(f"cannot sign with {type(private).__name__}")
    return (signing_input + b"." + _b64(signature)).decode("ascii")


MAX_TOKEN_BYTES = 8192


def read_own_token(
    keys: KeyRing, token: str, *, issuer: str, now: float, leeway: float
) -> dict[str, Any] | None:
    """Claims of an unexpired access token this server signed, else None. For revocation
    and introspection; resource servers use ``mcpward.guard``."""
    if len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        return None
    try:
        header = json.loads(_b64decode(token.split(".", 1)[0]))
        kid = header.get("kid") if isinstance(header, dict) else None
        key = keys.public_key(kid) if isinstance(kid, str) else None
        if key is None or header.get("typ") != "at+jwt":
            return None
        claims = jwt.decode(token, key, algorithms=[keys.alg, "ES256", "EdDSA"]).claims
    except (JoseError, ValueError, TypeError, binascii.Error):
        return None
    exp = claims.get("exp")
    if claims.get("iss") != issuer or not isinstance(exp, int) or exp + leeway < now:
        return None
    return claims


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
