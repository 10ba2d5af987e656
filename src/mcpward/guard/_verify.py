"""JWT access-token verification (RFC 9068, RFC 8725 best practices).

Order matters: cheap structural checks first (size, shape, header, ``alg`` allow-list,
``typ``), then the key, then the signature (joserfc), then the claims. Verified tokens are
cached until they expire, so a warm request costs a dictionary lookup; revocation and rate
limits are applied by the guard after this, on hits and misses alike.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Protocol, TypeGuard

from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning

from mcpward._clock import Clock, system_clock
from mcpward.guard._claims import MCPWARD, ClaimMapping
from mcpward.guard._discovery import IssuerDiscoveryError, KeySource
from mcpward.guard._errors import InvalidToken
from mcpward.guard._identity import Identity

# Asymmetric only: an HMAC algorithm would let anyone holding the public key forge tokens.
SAFE_ALGORITHMS = frozenset(
    {"ES256", "ES384", "ES512", "EdDSA", "Ed25519", "RS256", "RS384", "RS512", "PS256", "PS384"}
)
DEFAULT_ALGORITHMS = ("ES256", "EdDSA", "Ed25519", "RS256", "PS256")
MAX_TOKEN_LENGTH = 8192
MAX_HEADER_LENGTH = 1024


class TokenVerifier(Protocol):
    async def verify(self, token: str) -> Identity:
        """The identity the token proves, or raise :class:`InvalidToken`."""
        ...


class JWTVerifier:
    def __init__(
        self,
        *,
        issuer: str,
        audience: str | Iterable[str],
        keys: KeySource,
        algorithms: Collection[str] = DEFAULT_ALGORITHMS,
        claims: ClaimMapping = MCPWARD,
        leeway: float = 30.0,
        clock: Clock = system_clock,
        cache_size: int = 10_000,
        max_token_length: int = MAX_TOKEN_LENGTH,
    ) -> None:
        unsafe = set(algorithms) - SAFE_ALGORITHMS
        if unsafe:
            raise ValueError(f"refusing algorithms {sorted(unsafe)}: only asymmetric ones")
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        self._keys = keys
        self._algorithms = frozenset(algorithms)
        self._claims = claims
        self._leeway = leeway
        self._clock = clock
        self._cache: OrderedDict[str, Identity] = OrderedDict()
        self._cache_size = cache_size
        self._max_length = max_token_length

    async def verify(self, token: str) -> Identity:
        cached = self._cache.get(token)
        if cached is not None:
            if cached.expires_at + self._leeway > self._clock():
                return cached
            del self._cache[token]
            raise InvalidToken("the access token expired")
        identity = await self._verify_uncached(token)
        self._cache[token] = identity
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return identity

    def forget(self) -> None:
        self._cache.clear()

    async def aclose(self) -> None:
        close = getattr(self._keys, "aclose", None)
        if close is not None:
            await close()

    async def _verify_uncached(self, token: str) -> Identity:
        if len(token) > self._max_length:
            raise InvalidToken("the access token is too large")
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise InvalidToken("the token's signing algorithm is not accepted")
        typ = header.get("typ")
        if not isinstance(typ, str) or typ.lower() not in {
            t.lower() for t in self._claims.accepted_types
        }:
            raise InvalidToken("the token is not a JWT access token (typ)")
        if "crit" in header or "jku" in header or "x5u" in header or "jwk" in header:
            # Keys come from the issuer's JWKS only, never from the token itself.
            raise InvalidToken("the token header has unsupported parameters")
        kid = header.get("kid")
        if kid is not None and not isinstance(kid, str):
            raise InvalidToken("the token's key id is malformed")
        try:
            key = await self._keys.get_key(kid)
        except IssuerDiscoveryError as exc:
            raise InvalidToken("the issuer's keys are unavailable") from exc
        if key is None:
            raise InvalidToken("the token is signed with an unknown key")
        try:
            if alg == "EdDSA":
                # RFC 9864 deprecates the polymorphic "EdDSA" name for "Ed25519"; tokens
                # still use it (our server's default EdDSA option included), so accept it
                # without joserfc's per-call warning.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", SecurityWarning)
                    decoded = jwt.decode(token, key, algorithms=[alg])
            else:
                decoded = jwt.decode(token, key, algorithms=[alg])
        except (JoseError, ValueError, TypeError) as exc:
            raise InvalidToken("the token signature is invalid") from exc
        return self._identity(decoded.claims)

    def _identity(self, claims: Mapping[str, Any]) -> Identity:
        now = self._clock()
        if claims.get("iss") != self.issuer:
            raise InvalidToken("the token is from another issuer")
        audiences = token_audiences(claims)
        if not self.audiences.intersection(audiences):
            raise InvalidToken("the token is for another resource")
        exp = claims.get("exp")
        if not _is_number(exp):
            raise InvalidToken("the token has no expiry")
        if exp + self._leeway <= now:
            raise InvalidToken("the access token expired")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf - self._leeway > now):
            raise InvalidToken("the access token is not yet valid")
        iat = claims.get("iat")
        if iat is not None and (not _is_number(iat) or iat - self._leeway > now):
            raise InvalidToken("the access token was issued in the future")
        return identity_from_claims(
            claims, self._claims, issuer=self.issuer, audiences=audiences, expires_at=exp
        )


def token_audiences(claims: Mapping[str, Any]) -> tuple[str, ...]:
    """``aud`` as a tuple: a single string or a list (RFC 7519 §4.1.3)."""
    aud = claims.get("aud")
    if isinstance(aud, str):
        return (aud,)
    return tuple(a for a in aud or () if isinstance(a, str))


def identity_from_claims(
    claims: Mapping[str, Any],
    mapping: ClaimMapping,
    *,
    issuer: str,
    audiences: tuple[str, ...],
    expires_at: float,
) -> Identity:
    """The caller a verified JWT or an introspection answer describes. A token without
    ``sub`` (client_credentials at some issuers) names its client."""
    client_id = mapping.client_id(claims)
    sub = claims.get("sub")
    subject = sub if isinstance(sub, str) and sub else client_id
    if subject is None:
        raise InvalidToken("the token names no subject")
    iat, jti, sid = claims.get("iat"), claims.get("jti"), claims.get("sid")
    return Identity(
        subject=subject,
        client_id=client_id or subject,
        scopes=mapping.scopes(claims),
        issuer=issuer,
        audience=audiences,
        expires_at=float(expires_at),
        issued_at=float(iat) if _is_number(iat) else None,
        jti=jti if isinstance(jti, str) else None,
        family=sid if isinstance(sid, str) else None,
        roles=mapping.roles(claims),
        claims=dict(claims),
        jkt=bound_key(claims),
    )


def bound_key(claims: Mapping[str, Any]) -> str | None:
    """``cnf.jkt`` of a JWT or an introspection answer (RFC 9449 §6.1, §6.2). A ``cnf``
    this guard cannot check (another confirmation method, a malformed ``jkt``) refuses
    the token: it is bound to something, so it must not pass as a bearer token."""
    cnf = claims.get("cnf")
    if cnf is None:
        return None
    jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
    if not isinstance(jkt, str) or not jkt:
        raise InvalidToken("the token is bound to a key this resource cannot check")
    return jkt


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _header(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3 or not all(parts[:2]):
        raise InvalidToken("the access token is not a signed JWT")
    if len(parts[0]) > MAX_HEADER_LENGTH:
        raise InvalidToken("the token header is too large")
    try:
        raw = base64.urlsafe_b64decode(parts[0] + "=" * (-len(parts[0]) % 4))
        header = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise InvalidToken("the token header is malformed") from exc
    if not isinstance(header, dict):
        raise InvalidToken("the token header is malformed")
    return header


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


class ByFormat:
    """JWTs to a :class:`JWTVerifier`, anything else (opaque tokens) to introspection."""

    def __init__(self, *, jwt: TokenVerifier, opaque: TokenVerifier) -> None:
        self._jwt = jwt
        self._opaque = opaque

    async def verify(self, token: str) -> Identity:
        if looks_like_jwt(token):
            return await self._jwt.verify(token)
        return await self._opaque.verify(token)
