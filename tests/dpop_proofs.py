"""DPoP proofs for the tests, made with joserfc: an implementation independent of
``mcpward.dpop``, so a mistake shared by our signer and our verifier cannot hide. Each
proof can be bent one way (another method, URL, key, type, algorithm, time ...) to build
RFC 9449's negative matrix."""

from __future__ import annotations

import base64
import json
import time
import uuid
import warnings
from typing import Any

from joserfc import jws
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OctKey, OKPKey, RSAKey
from joserfc.registry import HeaderParameter

from mcpward.dpop import access_token_hash

# Lets a test add a critical header parameter ("x-test") that joserfc would refuse to sign.
_REGISTRY = jws.JWSRegistry(
    header_registry={"x-test": HeaderParameter("a test-only parameter", "str")},
    strict_check_header=False,
)

AnyKey = ECKey | RSAKey | OKPKey


def generate(alg: str = "ES256") -> AnyKey:
    if alg == "ES256":
        return ECKey.generate_key("P-256")
    if alg == "ES384":
        return ECKey.generate_key("P-384")
    if alg == "EdDSA":
        return OKPKey.generate_key("Ed25519")
    return RSAKey.generate_key(2048)


class Prover:
    """A client's DPoP key, and proofs signed with it."""

    def __init__(self, alg: str = "ES256") -> None:
        self.alg = alg
        self.key = generate(alg)
        self.public_jwk: dict[str, Any] = dict(self.key.as_dict(private=False))
        for name in ("kid", "use", "alg", "key_ops"):
            self.public_jwk.pop(name, None)
        self.jkt = self.key.thumbprint()

    def proof(
        self,
        url: str,
        method: str = "POST",
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        iat: float | None = None,
        jti: str | None = None,
        header: dict[str, Any] | None = None,
        claims: dict[str, Any] | None = None,
        omit: tuple[str, ...] = (),
        signer: AnyKey | OctKey | None = None,
    ) -> str:
        """A proof for ``method url``; ``header``/``claims`` override or add members,
        ``omit`` drops claims, ``signer`` signs with another key than the header's."""
        payload: dict[str, Any] = {
            "jti": jti or uuid.uuid4().hex,
            "htm": method,
            "htu": url,
            "iat": int(time.time() if iat is None else iat),
        }
        if access_token is not None:
            payload["ath"] = access_token_hash(access_token)
        if nonce is not None:
            payload["nonce"] = nonce
        payload.update(claims or {})
        for name in omit:
            payload.pop(name, None)
        protected: dict[str, Any] = {"typ": "dpop+jwt", "alg": self.alg, "jwk": self.public_jwk}
        protected.update(header or {})
        protected = {k: v for k, v in protected.items() if v is not None}
        key = signer or self.key
        with warnings.catch_warnings():
            # joserfc warns about EdDSA (RFC 9864's new name is Ed25519) and weak HMAC keys.
            warnings.simplefilter("ignore", SecurityWarning)
            return jws.serialize_compact(
                protected,
                json.dumps(payload).encode(),
                key,
                algorithms=[protected["alg"]],
                registry=_REGISTRY if "x-test" in protected else None,
            )


def unsigned(prover: Prover, url: str, method: str = "POST") -> str:
    """An ``alg: none`` proof (RFC 7519 §6): header and claims, an empty signature."""
    header = {"typ": "dpop+jwt", "alg": "none", "jwk": prover.public_jwk}
    claims = {"jti": uuid.uuid4().hex, "htm": method, "htu": url, "iat": int(time.time())}
    return f"{_b64(header)}.{_b64(claims)}."


def hmac_proof(prover: Prover, url: str, method: str = "POST") -> str:
    """An HS256 proof whose ``jwk`` names the prover's public key (the old confusion of
    a public key used as an HMAC secret)."""
    secret = OctKey.import_key(json.dumps(prover.public_jwk).encode())
    return prover.proof(url, method, header={"alg": "HS256"}, signer=secret)


def _b64(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
