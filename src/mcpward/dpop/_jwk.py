"""The public key in a DPoP proof's ``jwk`` header: checked against the proof's ``alg``,
loaded into a ``cryptography`` key, and named by its JWK SHA-256 thumbprint (RFC 7638).

Only asymmetric algorithms exist here (RFC 9449 §4.2: never ``none``, never a MAC):
ES256 and ES384 (RFC 7518 §3.4), EdDSA over Ed25519 (RFC 8037), RS256 and PS256 with
RSA keys of at least 2048 bits (RFC 7518 §3.3, §3.5).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

__all__ = ["ALGORITHMS", "PublicKey", "UnusableKey", "load_public_jwk", "thumbprint"]

# What the proof verifier accepts by default.
ALGORITHMS: tuple[str, ...] = ("ES256", "ES384", "EdDSA", "RS256", "PS256")

MIN_RSA_BITS = 2048
MAX_RSA_BITS = 8192
# JWK members that only a private (or symmetric) key has.
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_CURVES: dict[str, tuple[str, ec.EllipticCurve, int]] = {
    # alg: (crv, curve, coordinate length in bytes)
    "ES256": ("P-256", ec.SECP256R1(), 32),
    "ES384": ("P-384", ec.SECP384R1(), 48),
}
# RFC 7638 §3.2: the required members of each key type, in lexicographic order.
_THUMBPRINT_MEMBERS = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}

Verify = Callable[[bytes, bytes], None]


class UnusableKey(ValueError):
    """The ``jwk`` header is not a public key usable with the proof's ``alg``."""


class PublicKey:
    """A verified-usable public key: ``verify(signing_input, signature)`` raises
    :class:`InvalidSignature` (from ``cryptography``) when the signature is wrong."""

    __slots__ = ("alg", "jkt", "verify")

    def __init__(self, alg: str, jkt: str, verify: Verify) -> None:
        self.alg = alg
        self.jkt = jkt
        self.verify = verify


def load_public_jwk(jwk: object, alg: str) -> PublicKey:
    """The key of a proof's ``jwk`` header for ``alg``, or :class:`UnusableKey`."""
    if not isinstance(jwk, Mapping):
        raise UnusableKey("the jwk header is not a JSON object")
    if _PRIVATE_MEMBERS.intersection(jwk):
        raise UnusableKey("the jwk header holds private key material")
    kty = jwk.get("kty")
    members = _THUMBPRINT_MEMBERS.get(kty) if isinstance(kty, str) else None
    if members is None or not isinstance(kty, str):
        raise UnusableKey("the jwk header is not an EC, RSA or OKP key")
    for name in members:
        if not isinstance(jwk.get(name), str) or not jwk[name]:
            raise UnusableKey("the jwk header lacks a required member")
    try:
        verify = _verifier(jwk, kty, alg)
    except (ValueError, TypeError, binascii.Error) as exc:
        raise UnusableKey("the jwk header is not a valid key for the proof's alg") from exc
    return PublicKey(alg, thumbprint(jwk), verify)


def thumbprint(jwk: Mapping[str, Any]) -> str:
    """The JWK SHA-256 thumbprint (RFC 7638), base64url without padding: what ``cnf.jkt``
    holds (RFC 9449 §6.1) and ``dpop_jkt`` names (§10)."""
    kty = jwk["kty"]
    members = _THUMBPRINT_MEMBERS[kty]
    # Keys already in lexicographic order; orjson writes no whitespace (RFC 7638 §3.3).
    canonical = orjson.dumps({name: jwk[name] for name in members})
    return _b64(hashlib.sha256(canonical).digest())


def _verifier(jwk: Mapping[str, Any], kty: str, alg: str) -> Verify:
    if alg in _CURVES:
        crv, curve, size = _CURVES[alg]
        if kty != "EC" or jwk["crv"] != crv:
            raise ValueError("alg and key type differ")
        x, y = _uint(jwk["x"], size), _uint(jwk["y"], size)
        # Refuses points off the curve.
        ec_key = ec.EllipticCurvePublicNumbers(x, y, curve).public_key()
        algorithm = ec.ECDSA(hashes.SHA256() if size == 32 else hashes.SHA384())

        def verify_ec(data: bytes, signature: bytes) -> None:
            # JWS carries R || S (RFC 7518 §3.4); cryptography wants DER.
            if len(signature) != 2 * size:
                raise InvalidSignature
            r = int.from_bytes(signature[:size], "big")
            s = int.from_bytes(signature[size:], "big")
            ec_key.verify(encode_dss_signature(r, s), data, algorithm)

        return verify_ec
    if alg == "EdDSA":
        if kty != "OKP" or jwk["crv"] != "Ed25519":
            raise ValueError("EdDSA proofs use Ed25519 keys")
        ed_key = ed25519.Ed25519PublicKey.from_public_bytes(_bytes(jwk["x"], 32))

        def verify_ed(data: bytes, signature: bytes) -> None:
            ed_key.verify(signature, data)

        return verify_ed
    if alg in ("RS256", "PS256"):
        if kty != "RSA":
            raise ValueError("alg and key type differ")
        n = int.from_bytes(_bytes(jwk["n"]), "big")
        e = int.from_bytes(_bytes(jwk["e"]), "big")
        if not MIN_RSA_BITS <= n.bit_length() <= MAX_RSA_BITS:
            raise ValueError("RSA keys must have 2048 to 8192 bits")
        rsa_key = rsa.RSAPublicNumbers(e, n).public_key()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15()
            if alg == "RS256"
            # RFC 7518 §3.5: MGF1 with SHA-256 and a salt as long as the hash.
            else padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
        )

        def verify_rsa(data: bytes, signature: bytes) -> None:
            rsa_key.verify(signature, data, pad, hashes.SHA256())

        return verify_rsa
    raise ValueError("unsupported alg")


def _bytes(value: str, size: int | None = None) -> bytes:
    raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    if size is not None and len(raw) != size:
        raise ValueError("wrong length")
    return raw


def _uint(value: str, size: int) -> int:
    return int.from_bytes(_bytes(value, size), "big")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
