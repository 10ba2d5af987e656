"""A client's DPoP key: makes one proof per request (RFC 9449 §4.2) and travels as a
private JWK, so a key-bound refresh token stored beside it survives a restart."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import orjson
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

from mcpward.dpop._jwk import thumbprint
from mcpward.dpop._proof import access_token_hash

__all__ = ["ProofAlgorithm", "ProofKey", "htu_of"]

ProofAlgorithm = Literal["ES256", "ES384", "EdDSA"]
_EC = {
    "ES256": ("P-256", ec.SECP256R1, 32, hashes.SHA256),
    "ES384": ("P-384", ec.SECP384R1, 48, hashes.SHA384),
}


def htu_of(url: str) -> str:
    """The ``htu`` for a request to ``url``: the URL without query and fragment."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", "", ""))


class ProofKey:
    """An asymmetric key a client proves possession of. ES256 unless told otherwise."""

    def __init__(
        self, private_key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, alg: str
    ) -> None:
        if alg in _EC:
            crv, curve, _, _ = _EC[alg]
            if not isinstance(private_key, ec.EllipticCurvePrivateKey) or not isinstance(
                private_key.curve, curve
            ):
                raise ValueError(f"{alg} needs a {crv} key")
        elif alg != "EdDSA" or not isinstance(private_key, ed25519.Ed25519PrivateKey):
            raise ValueError("DPoP keys are ES256, ES384 or EdDSA (Ed25519)")
        self._key = private_key
        self.alg = alg
        self.public_jwk = _public_jwk(private_key, alg)
        self.jkt = thumbprint(self.public_jwk)
        self._header = _b64(orjson.dumps({"typ": "dpop+jwt", "alg": alg, "jwk": self.public_jwk}))

    @classmethod
    def generate(cls, alg: ProofAlgorithm = "ES256") -> ProofKey:
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.generate(), alg)
        return cls(ec.generate_private_key(_EC[alg][1]()), alg)

    @classmethod
    def from_jwk(cls, jwk: Mapping[str, Any]) -> ProofKey:
        """A key saved with :meth:`private_jwk`."""
        alg = jwk.get("alg")
        if alg == "EdDSA":
            return cls(ed25519.Ed25519PrivateKey.from_private_bytes(_unb64(jwk["d"])), alg)
        if alg in _EC:
            _, curve, _, _ = _EC[alg]
            numbers = ec.EllipticCurvePrivateNumbers(
                int.from_bytes(_unb64(jwk["d"]), "big"),
                ec.EllipticCurvePublicNumbers(
                    int.from_bytes(_unb64(jwk["x"]), "big"),
                    int.from_bytes(_unb64(jwk["y"]), "big"),
                    curve(),
                ),
            )
            return cls(numbers.private_key(), alg)
        raise ValueError("not a saved DPoP key")

    def private_jwk(self) -> dict[str, str]:
        """The key with its private part and ``alg``, for the token store (never logged)."""
        if isinstance(self._key, ed25519.Ed25519PrivateKey):
            d = self._key.private_bytes_raw()
        else:
            size = _EC[self.alg][2]
            d = self._key.private_numbers().private_value.to_bytes(size, "big")
        return {**self.public_jwk, "d": _b64(d), "alg": self.alg}

    def proof(
        self,
        method: str,
        url: str,
        *,
        access_token: str | None = None,
        nonce: str | None = None,
        now: float | None = None,
    ) -> str:
        """A fresh proof (new ``jti``) for a ``method`` request to ``url``; with
        ``access_token`` its ``ath``, with ``nonce`` the server's nonce."""
        claims: dict[str, Any] = {
            "jti": secrets.token_urlsafe(16),
            "htm": method.upper(),
            "htu": htu_of(url),
            "iat": int(time.time() if now is None else now),
        }
        if access_token is not None:
            claims["ath"] = access_token_hash(access_token)
        if nonce is not None:
            claims["nonce"] = nonce
        signing_input = self._header + "." + _b64(orjson.dumps(claims))
        return signing_input + "." + _b64(self._sign(signing_input.encode("ascii")))

    def _sign(self, data: bytes) -> bytes:
        key = self._key
        if isinstance(key, ed25519.Ed25519PrivateKey):
            return key.sign(data)
        _, _, size, digest = _EC[self.alg]
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(digest())))
        return r.to_bytes(size, "big") + s.to_bytes(size, "big")


def _public_jwk(
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey, alg: str
) -> dict[str, str]:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return {"crv": "Ed25519", "kty": "OKP", "x": _b64(key.public_key().public_bytes_raw())}
    crv, _, size, _ = _EC[alg]
    numbers = key.public_key().public_numbers()
    return {
        "crv": crv,
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(size, "big")),
        "y": _b64(numbers.y.to_bytes(size, "big")),
    }


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
