"""JWTs from trusted issuers used as grants (RFC 7521 §5.2, RFC 7523 §3): the checks
every profile shares. The ID-JAG (``_id_jag``) and workload (``_workload``) profiles add
their audience, client and subject rules on top.

Order: cheap structure first (size, shape, header, ``alg`` allow-list, ``typ``, a trusted
``iss``), then the key and the signature, then the claims. Nothing read from an
unverified JWT is echoed: descriptions are fixed strings, and the audit trail gets the
issuer only once it is a trusted one and the ``jti`` only once the signature held.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

from joserfc import jwt
from joserfc.errors import JoseError

from mcpward._clock import Clock
from mcpward._config_federation import Profile, TrustedIssuer
from mcpward.errors import MCPWardError
from mcpward.server._trusted_keys import IssuerKeys
from mcpward.state import ReplayCache

ID_JAG_TYPE = "oauth-id-jag+jwt"
MAX_ASSERTION = 16 * 1024
MAX_IDENTIFIER = 1024


class AssertionRejected(MCPWardError):
    """A JWT grant refused. ``reason`` is a fixed code for the audit trail; the message
    is safe to show the caller (it never quotes the assertion)."""

    def __init__(
        self,
        reason: str,
        description: str,
        *,
        issuer: str | None = None,
        jti: str | None = None,
    ) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.issuer = issuer
        self.jti = jti


@dataclass(frozen=True, slots=True)
class Unverified:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @property
    def profile(self) -> Profile:
        """ID-JAGs are told apart by their explicit type (RFC 8725 §3.11)."""
        return "id-jag" if _media_type(self.header.get("typ")) == ID_JAG_TYPE else "workload"


@dataclass(frozen=True, slots=True)
class VerifiedAssertion:
    issuer: TrustedIssuer
    header: Mapping[str, Any]
    claims: Mapping[str, Any]

    @property
    def iss(self) -> str:
        return self.issuer.issuer

    @property
    def subject(self) -> str:
        return str(self.claims["sub"])

    @property
    def jti(self) -> str | None:
        jti = self.claims.get("jti")
        return jti if isinstance(jti, str) else None

    @property
    def expires_at(self) -> float:
        return float(self.claims["exp"])

    @property
    def jkt(self) -> str | None:
        """The DPoP key thumbprint the assertion is bound to (``cnf.jkt``), if any."""
        cnf = self.claims.get("cnf")
        jkt = cnf.get("jkt") if isinstance(cnf, Mapping) else None
        return jkt if isinstance(jkt, str) else None

    def rejected(self, reason: str, description: str) -> AssertionRejected:
        return AssertionRejected(reason, description, issuer=self.iss, jti=self.jti)


def peek(token: str) -> Unverified:
    """Header and claims of a compact JWS, unverified: for routing only."""
    if len(token) > MAX_ASSERTION or token.count(".") != 2:
        raise AssertionRejected("malformed", "the assertion is not a signed JWT")
    head, body, _ = token.split(".")
    try:
        header, claims = json.loads(_b64decode(head)), json.loads(_b64decode(body))
    except (ValueError, binascii.Error):
        raise AssertionRejected("malformed", "the assertion is not a signed JWT") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise AssertionRejected("malformed", "the assertion is not a signed JWT")
    return Unverified(header, claims)


def single_audience(claims: Mapping[str, Any]) -> str | None:
    """The one audience of a JWT: a string, or an array of exactly one string
    (draft-ietf-oauth-identity-assertion-authz-grant §4.4.1); else ``None``."""
    aud = claims.get("aud")
    if isinstance(aud, list) and len(aud) == 1:
        aud = aud[0]
    return aud if isinstance(aud, str) else None


class AssertionVerifier:
    """Signature and shared claim checks against the trusted issuers' keys."""

    def __init__(self, keys: Sequence[IssuerKeys], clock: Clock, *, leeway: float) -> None:
        self._keys = {k.config.issuer: k for k in keys}
        self._clock = clock
        self._leeway = leeway

    @property
    def issuers(self) -> list[TrustedIssuer]:
        return [k.config for k in self._keys.values()]

    def trusted(self, iss: object, profile: Profile) -> IssuerKeys | None:
        keys = self._keys.get(iss) if isinstance(iss, str) else None
        return keys if keys is not None and profile in keys.config.profiles else None

    async def verify(self, token: str, profile: Profile) -> VerifiedAssertion:
        unverified = peek(token)
        header, claims = unverified.header, unverified.claims
        if unverified.profile != profile:
            raise AssertionRejected("wrong_typ", f"the assertion's typ is not a {profile} JWT")
        keys = self.trusted(claims.get("iss"), profile)
        if keys is None:
            raise AssertionRejected("untrusted_issuer", "the assertion's issuer is not trusted")
        config = keys.config
        issuer = config.issuer
        if profile == "workload" and _media_type(header.get("typ")) not in {
            t.lower() for t in config.token_types
        }:
            raise AssertionRejected(
                "wrong_typ", "the assertion's typ is not accepted from this issuer", issuer=issuer
            )
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in config.algorithms:
            raise AssertionRejected(
                "bad_alg", "the assertion's alg is not allowed for this issuer", issuer=issuer
            )
        if "crit" in header:
            raise AssertionRejected(
                "crit",
                "the assertion has critical headers this server does not know",
                issuer=issuer,
            )
        kid = header.get("kid")
        key = await keys.key(kid if isinstance(kid, str) else None)
        if key is None:
            raise AssertionRejected(
                "unknown_key", "the assertion's signing key is not the issuer's", issuer=issuer
            )
        try:
            verified = jwt.decode(token, key, algorithms=[alg]).claims
        except (JoseError, ValueError, TypeError):
            raise AssertionRejected(
                "bad_signature", "the assertion's signature is invalid", issuer=issuer
            ) from None
        assertion = VerifiedAssertion(config, header, verified)
        self._check_claims(assertion, profile)
        return assertion

    def _check_claims(self, assertion: VerifiedAssertion, profile: Profile) -> None:
        claims, config = assertion.claims, assertion.issuer
        now, leeway = self._clock(), self._leeway
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_IDENTIFIER:
            raise assertion.rejected("no_sub", "the assertion names no subject (sub)")
        exp = claims.get("exp")
        if not _is_number(exp):
            raise assertion.rejected("no_exp", "the assertion has no expiry (exp)")
        if exp + leeway < now:
            raise assertion.rejected("expired", "the assertion has expired")
        iat = claims.get("iat")
        if iat is not None and not _is_number(iat):
            raise assertion.rejected("bad_iat", "the assertion's iat is not a number")
        if profile == "id-jag" and iat is None:
            raise assertion.rejected("no_iat", "the ID-JAG has no issue time (iat)")
        if iat is not None and iat - leeway > now:
            raise assertion.rejected("future_iat", "the assertion is issued in the future")
        start = iat if iat is not None else now
        if exp - start > config.max_lifetime + leeway:
            raise assertion.rejected("too_long", "the assertion lives longer than allowed")
        nbf = claims.get("nbf")
        if nbf is not None and (not _is_number(nbf) or nbf - leeway > now):
            raise assertion.rejected("not_yet_valid", "the assertion is not valid yet (nbf)")
        jti = claims.get("jti")
        if jti is not None and (not isinstance(jti, str) or not jti or len(jti) > 255):
            raise assertion.rejected("bad_jti", "the assertion's jti is not a short string")
        if jti is None and (profile == "id-jag" or config.single_use):
            raise assertion.rejected("no_jti", "the assertion has no jti")
        cnf = claims.get("cnf")
        if cnf is not None and profile == "workload":
            # A key-bound workload credential (a WIMSE workload identity token) proves its
            # key in its own way, which this server does not check: refuse it.
            raise assertion.rejected(
                "cnf_unverifiable",
                "the workload JWT is bound to a key (cnf) this server cannot check",
            )
        if cnf is not None and not (isinstance(cnf, Mapping) and isinstance(cnf.get("jkt"), str)):
            # An ID-JAG's binding is a DPoP key's thumbprint (draft §7.4.1); nothing else.
            raise assertion.rejected("bad_cnf", "the ID-JAG's cnf names no DPoP key (jkt)")

    async def first_use(self, replay: ReplayCache, assertion: VerifiedAssertion) -> None:
        """Spend the assertion's ``jti`` (RFC 7523 §3 item 7), across replicas when the
        shared state is Redis. ``StateUnavailable`` propagates: fail closed (503)."""
        jti = assertion.jti
        if jti is None:
            return
        digest = hashlib.sha256(f"{assertion.iss}\n{jti}".encode()).hexdigest()
        if not await replay.first_use("jwt-grant:" + digest, assertion.expires_at + self._leeway):
            raise assertion.rejected("replayed", "the assertion was already used")


def _media_type(typ: object) -> str:
    """RFC 7515 §4.1.9: compared case-insensitively, ``application/`` may be omitted."""
    if not isinstance(typ, str):
        return ""
    typ = typ.lower()
    return typ.removeprefix("application/")


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _b64decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
