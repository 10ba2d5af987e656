"""Configuration of the trust mcpward's authorization server places in others: issuers
whose JWTs it redeems (enterprise IdPs issuing ID-JAGs, SEP-990; workload platforms,
SEP-1933), the rules mapping a workload to a client, and which MCP server may exchange
its callers' tokens for which downstream API (RFC 8693). Nothing here is secret: issuer
URLs, public keys, rules.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, field_validator, model_validator

from mcpward._hosts import is_loopback_host

Profile = Literal["id-jag", "workload"]

# Asymmetric only: a shared-secret algorithm would let anyone holding the "public" key
# forge assertions (RFC 8725 §3.1, §3.2).
ASSERTION_ALGORITHMS = ("ES256", "ES384", "EdDSA", "RS256", "RS384", "RS512", "PS256", "PS384")
DEFAULT_ALGORITHMS = ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def https_or_loopback(value: str, what: str) -> str:
    value = value.rstrip("/")
    parts = urlsplit(value)
    if parts.query or parts.fragment or not parts.hostname:
        raise ValueError(f"{what} must be an absolute URL without query or fragment")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(parts.hostname)):
        return value
    raise ValueError(f"{what} must be https:// (plain http only on loopback)")


class TrustedIssuer(BaseModel):
    """An issuer whose JWTs this server accepts as grants, and for which profiles.

    Keys: ``jwks_file`` (a pinned JWK Set, e.g. ``kubectl get --raw /openid/v1/jwks``),
    else ``jwks_uri``, else found by OpenID Connect Discovery (then RFC 8414) of
    ``issuer``, as SEP-1933 describes."""

    issuer: str
    profiles: list[Profile] = Field(min_length=1)
    jwks_uri: str | None = None
    jwks_file: Path | None = None
    algorithms: list[str] = Field(default_factory=lambda: list(DEFAULT_ALGORITHMS))
    # An assertion valid for longer than this is refused (RFC 7523 §3 lets the server
    # reject an exp unreasonably far in the future; Kubernetes tokens last 1 h by default).
    max_lifetime: float = Field(default=86_400, gt=0)
    # Workload JWTs: each jti redeemed once (RFC 7523 §3 item 7). Turn off only for a
    # platform whose tokens carry no jti, or are reused until they rotate; ID-JAGs are
    # always single use.
    single_use: bool = True
    # Workload JWTs: the JOSE ``typ`` values accepted ("" for none). Kubernetes sends no
    # typ, GitHub Actions and SPIFFE "JWT"; add "at+jwt" for an authorization server's
    # access tokens. An ID-JAG's typ is always exactly oauth-id-jag+jwt.
    token_types: list[str] = Field(default_factory=lambda: ["", "JWT"])
    # ID-JAGs: a person the IdP vouches for who has no local user yet gets one, linked to
    # (issuer, sub); otherwise only people already linked (upstream sign-in) are served.
    create_users: bool = True

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return https_or_loopback(value, "a trusted issuer")

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_uri(cls, value: str | None) -> str | None:
        return https_or_loopback(value, "jwks_uri") if value else None

    @field_validator("algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        unsafe = sorted(set(value) - set(ASSERTION_ALGORITHMS))
        if unsafe or not value:
            raise ValueError(f"algorithms must be among {', '.join(ASSERTION_ALGORITHMS)}")
        return value

    @field_validator("token_types")
    @classmethod
    def _token_types(cls, value: list[str]) -> list[str]:
        if "oauth-id-jag+jwt" in value:
            raise ValueError("an ID-JAG is never a workload JWT: drop oauth-id-jag+jwt")
        return value


class WorkloadRule(BaseModel):
    """Which workload may act as which client, with which scopes (SEP-1933): a workload
    JWT from ``issuer`` whose ``sub`` is ``subject``, whose single audience is
    ``audience`` (default: this server's issuer) and whose ``claims`` have these values
    gets tokens as ``client_id``."""

    name: str
    issuer: str
    subject: str = Field(min_length=1, max_length=1024)
    audience: str | None = None
    claims: dict[str, str] = Field(default_factory=dict)
    client_id: str = Field(min_length=1)
    # At most these (and what the client is allowed); unset: what the client is allowed.
    scopes: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("a rule name is 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator("issuer")
    @classmethod
    def _issuer(cls, value: str) -> str:
        return value.rstrip("/")


class ExchangePolicy(BaseModel):
    """An MCP server (authenticating as ``client_id``) may exchange the access tokens it
    receives (audience ``from_resource``) for tokens to ``to_resource``, with at most
    ``scopes``, living at most ``lifetime`` seconds (RFC 8693 §2.1)."""

    client_id: str = Field(min_length=1)
    from_resource: str
    to_resource: str
    scopes: list[str] = Field(min_length=1)
    lifetime: float = Field(default=300, gt=0, le=3600)

    @model_validator(mode="after")
    def _distinct(self) -> ExchangePolicy:
        if self.from_resource == self.to_resource:
            raise ValueError("an exchange policy leads from one resource to another")
        return self


class Federation(BaseModel):
    """The whole of it, checked together: rules name trusted workload issuers."""

    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    workload_rules: list[WorkloadRule] = Field(default_factory=list)
    token_exchange: list[ExchangePolicy] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> Federation:
        issuers = [i.issuer for i in self.trusted_issuers]
        if len(issuers) != len(set(issuers)):
            raise ValueError("trusted issuers must be listed once each")
        workload = {i.issuer for i in self.trusted_issuers if "workload" in i.profiles}
        names = [r.name for r in self.workload_rules]
        if len(names) != len(set(names)):
            raise ValueError("workload rule names must be unique")
        for rule in self.workload_rules:
            if rule.issuer not in workload:
                raise ValueError(
                    f"workload rule {rule.name}: its issuer is not a trusted issuer with "
                    "the workload profile"
                )
        return self

    def issuer(self, iss: str) -> TrustedIssuer | None:
        for trusted in self.trusted_issuers:
            if trusted.issuer == iss:
                return trusted
        return None
