"""Checking a DPoP proof (RFC 9449 §4.3): the one verifier the token endpoint and every
guard use.

A proof is refused unless there is exactly one ``DPoP`` header holding a compact JWS
whose header has ``typ`` ``dpop+jwt``, an allowed asymmetric ``alg``, a public ``jwk``
matching it and no ``crit``; whose signature verifies with that ``jwk``; and whose
claims carry a ``jti``, the request's ``htm`` and ``htu`` (compared without query and
fragment, after RFC 3986 §6.2.2-6.2.3 case and default-port normalisation), an ``iat``
within ``max_age`` (plus ``leeway`` for clock skew) and, at a resource, the ``ath`` of
the access token it accompanies (§4.2). Whether the ``jti`` was seen before is the
caller's question (the shared-state ``ReplayCache``), and so is whether the key is the
one the token is bound to.

Speed matters: a guard checks one proof per request. The signature is verified with
``cryptography`` directly, and what depends only on the proof's header (its parse, the
key's import and thumbprint) is cached by the header's text after a first proof with it
verified: a client signs every proof with the same key, so a warm proof costs little
more than its signature check (``bench/guard.py`` measures it).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidSignature

from mcpward._clock import Clock, system_clock
from mcpward.dpop._jwk import ALGORITHMS, PublicKey, UnusableKey, load_public_jwk
from mcpward.dpop._nonce import NonceSource
from mcpward.errors import MCPWardError

__all__ = [
    "MAX_PROOF_LENGTH",
    "NonceRequired",
    "Proof",
    "ProofRejected",
    "ProofVerifier",
    "access_token_hash",
    "normalize_htu",
]

MAX_PROOF_LENGTH = 4096
MAX_JTI_LENGTH = 256
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
_CACHE_SIZE = 2048
_DEFAULT_PORTS = {"http": 80, "https": 443}


class ProofRejected(MCPWardError):
    """The DPoP proof is missing, malformed, stale, for another request or badly signed.
    The description is a fixed sentence and ``check`` names the check that failed (for
    audit trails and metrics); neither ever echoes the proof."""

    def __init__(self, description: str, check: str) -> None:
        super().__init__(description)
        self.description = description
        self.check = check


class NonceRequired(ProofRejected):
    """The proof is good but lacks a current server nonce (RFC 9449 §8, §9): answer
    ``use_dpop_nonce`` with ``nonce`` in a ``DPoP-Nonce`` header, and the client retries."""

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description, "nonce")
        self.nonce = nonce


@dataclass(frozen=True, slots=True)
class Proof:
    """A verified proof: the key's thumbprint and what makes the proof single-use."""

    jkt: str
    jti: str
    iat: float
    # When no replica can accept this proof any more: its replay record may go then.
    expires_at: float
    nonce: str | None = None

    def replay_key(self, namespace: str) -> str:
        """The one-time-use key of this proof; ``namespace`` keeps the token endpoint's
        proofs apart from a guard's."""
        return f"dpop:{namespace}:{self.jkt}:{self.jti}"


def access_token_hash(token: str) -> str:
    """``ath``: base64url of the SHA-256 of the access token's ASCII (RFC 9449 §4.2)."""
    return _b64(hashlib.sha256(token.encode("ascii")).digest())


def normalize_htu(url: str) -> tuple[str, str, int | None, str] | None:
    """(scheme, host, port, path) of ``url`` without query and fragment, with scheme and
    host lower-cased, the scheme's default port dropped and an empty path as ``/``; None
    when ``url`` is not an absolute http(s) URL."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    host = parts.hostname
    if scheme not in _DEFAULT_PORTS or not host or parts.username or parts.password:
        return None
    if port == _DEFAULT_PORTS[scheme]:
        port = None
    return scheme, host.lower(), port, parts.path or "/"


class ProofVerifier:
    """Checks proofs for one deployment's policy: the algorithms it accepts, how old a
    proof may be, and (optionally) the server nonces it hands out and may require."""

    def __init__(
        self,
        *,
        algorithms: Collection[str] = ALGORITHMS,
        max_age: float = 60.0,
        leeway: float = 30.0,
        nonces: NonceSource | None = None,
        require_nonce: bool = False,
        clock: Clock = system_clock,
        max_length: int = MAX_PROOF_LENGTH,
    ) -> None:
        unknown = set(algorithms) - set(ALGORITHMS)
        if unknown or not algorithms:
            raise ValueError(f"DPoP algorithms must be some of {', '.join(ALGORITHMS)}")
        if require_nonce and nonces is None:
            raise ValueError("require_nonce needs a NonceSource")
        self.algorithms = tuple(a for a in ALGORITHMS if a in set(algorithms))
        self.max_age = max_age
        self.leeway = leeway
        self.nonces = nonces
        self.require_nonce = require_nonce
        self._clock = clock
        self._max_length = max_length
        self._keys: dict[str, PublicKey] = {}
        self._targets: dict[str, tuple[str, str, int | None, str] | None] = {}

    def verify(
        self,
        values: Sequence[str],
        *,
        method: str,
        url: str,
        access_token: str | None = None,
    ) -> Proof:
        """The proof in ``values`` (every ``DPoP`` header of the request) for a
        ``method`` request to ``url``; with ``access_token``, also its ``ath``. Raises
        :class:`ProofRejected` (or :class:`NonceRequired`)."""
        if len(values) != 1:
            if not values:
                raise ProofRejected("a DPoP proof is required", "missing")
            raise ProofRejected("send exactly one DPoP header", "multiple")
        proof = values[0].strip()
        if len(proof) > self._max_length or not _COMPACT.fullmatch(proof):
            raise ProofRejected("the DPoP proof is not a compact JWS", "malformed")
        head, body, signature = proof.split(".")
        key = self._keys.get(head)
        cached = key is not None
        if key is None:
            key = self._key(head)
        claims = _json(body)
        if claims is None:
            raise ProofRejected("the DPoP proof's claims are malformed", "malformed")
        now = self._clock()
        iat = self._claims(claims, method, url, access_token, now)
        try:
            key.verify((head + "." + body).encode("ascii"), _unb64(signature))
        except (InvalidSignature, ValueError, binascii.Error):
            raise ProofRejected("the DPoP proof's signature is invalid", "signature") from None
        if not cached:
            if len(self._keys) >= _CACHE_SIZE:
                self._keys.clear()
            self._keys[head] = key
        nonce = self._nonce(claims.get("nonce"))
        return Proof(key.jkt, claims["jti"], iat, iat + self.max_age + self.leeway, nonce)

    def _key(self, head: str) -> PublicKey:
        header = _json(head)
        if header is None:
            raise ProofRejected("the DPoP proof's header is malformed", "malformed")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() != "dpop+jwt":
            raise ProofRejected("the DPoP proof's typ must be dpop+jwt", "typ")
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise ProofRejected("the DPoP proof's alg is not accepted", "alg")
        if "crit" in header:
            raise ProofRejected("the DPoP proof's header has critical parameters", "crit")
        try:
            return load_public_jwk(header.get("jwk"), alg)
        except UnusableKey as exc:
            raise ProofRejected(f"the DPoP proof's key is unusable: {exc}", "jwk") from None

    def _claims(
        self,
        claims: dict[str, Any],
        method: str,
        url: str,
        access_token: str | None,
        now: float,
    ) -> float:
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_LENGTH:
            raise ProofRejected("the DPoP proof has no valid jti", "jti")
        if claims.get("htm") != method:
            raise ProofRejected("the DPoP proof is for another HTTP method (htm)", "htm")
        htu = claims.get("htu")
        if not isinstance(htu, str) or len(htu) > 2048:
            raise ProofRejected("the DPoP proof has no valid htu", "htu")
        target = self._target(url)
        if target is None or self._target(htu) != target:
            raise ProofRejected("the DPoP proof is for another URL (htu)", "htu")
        iat = claims.get("iat")
        if not isinstance(iat, int | float) or isinstance(iat, bool):
            raise ProofRejected("the DPoP proof has no valid iat", "iat")
        if iat > now + self.leeway:
            raise ProofRejected("the DPoP proof was issued in the future (iat)", "iat")
        if iat < now - self.max_age - self.leeway:
            raise ProofRejected("the DPoP proof is too old (iat)", "iat")
        if access_token is not None and claims.get("ath") != access_token_hash(access_token):
            raise ProofRejected("the DPoP proof is for another access token (ath)", "ath")
        return float(iat)

    def _nonce(self, nonce: object) -> str | None:
        nonces = self.nonces
        if nonces is None:
            return nonce if isinstance(nonce, str) else None
        if nonce is None:
            if self.require_nonce:
                raise NonceRequired("a DPoP nonce is required", nonces.current())
            return None
        if not isinstance(nonce, str) or not nonces.is_valid(nonce):
            raise NonceRequired("the DPoP nonce is stale or unknown", nonces.current())
        return nonce

    def _target(self, url: str) -> tuple[str, str, int | None, str] | None:
        # Clients send the same htu on every request: normalise each distinct one once.
        try:
            return self._targets[url]
        except KeyError:
            pass
        target = normalize_htu(url)
        if len(self._targets) >= _CACHE_SIZE:
            self._targets.clear()
        self._targets[url] = target
        return target


def _json(segment: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(_unb64(segment))
    except (orjson.JSONDecodeError, ValueError, binascii.Error):
        return None
    return value if isinstance(value, dict) else None


def _unb64(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")
