"""Plain records passed between the storage backends and the roles that use them, and
the vocabulary of their enum-like fields."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ClientSource = Literal["preregistered", "dcr", "cimd"]
AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
GrantType = Literal[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "urn:ietf:params:oauth:grant-type:jwt-bearer",  # RFC 7523 §2.1: ID-JAG, workload JWTs
    "urn:ietf:params:oauth:grant-type:token-exchange",  # RFC 8693: on-behalf-of downstream
]
ApplicationType = Literal["native", "web"]
SigningAlg = Literal["ES256", "EdDSA"]
RevocationKind = Literal["jti", "family", "subject", "client"]

AUTH_METHODS: tuple[AuthMethod, ...] = (
    "none",
    "client_secret_basic",
    "client_secret_post",
    "private_key_jwt",
)
JWT_BEARER: GrantType = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_EXCHANGE: GrantType = "urn:ietf:params:oauth:grant-type:token-exchange"
GRANT_TYPES: tuple[GrantType, ...] = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
    JWT_BEARER,
    TOKEN_EXCHANGE,
)
# What a client may register for itself (RFC 7591, Client ID Metadata Documents): the
# assertion and exchange grants are for clients an operator registers, whose trust comes
# from configuration (trusted issuers, workload rules, exchange policies).
SELF_REGISTERED_GRANT_TYPES: tuple[GrantType, ...] = (
    "authorization_code",
    "refresh_token",
    "client_credentials",
)


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    uri: str
    name: str
    scopes: dict[str, str]  # scope -> description
    tools: list[dict[str, Any]] = field(default_factory=list)
    created_at: float = 0.0


@dataclass(frozen=True, slots=True)
class ClientRecord:
    client_id: str
    name: str
    source: ClientSource
    token_endpoint_auth_method: AuthMethod
    grant_types: tuple[GrantType, ...]
    redirect_uris: tuple[str, ...]
    application_type: ApplicationType = "native"
    allowed_scope: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    introspects_resource: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0
    disabled_at: float | None = None
    # RFC 9449 §5.2: refuse this client's token requests that carry no DPoP proof.
    dpop_bound_access_tokens: bool = False

    @property
    def is_public(self) -> bool:
        return self.token_endpoint_auth_method == "none"


@dataclass(frozen=True, slots=True)
class SecretRecord:
    id: int
    client_id: str
    secret_hash: str
    hint: str
    created_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class CodeRecord:
    code_hash: str
    client_id: str
    redirect_uri: str
    code_challenge: str
    resource: str
    scope: str
    subject: str
    auth_time: float
    created_at: float
    expires_at: float
    used_at: float | None = None
    # The DPoP key thumbprint the authorization request named (RFC 9449 §10).
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class FamilyRecord:
    id: str
    client_id: str
    subject: str
    resource: str
    scope: str
    created_at: float
    absolute_expires_at: float
    code_hash: str | None = None
    revoked_at: float | None = None
    revoked_reason: str | None = None
    # A public client's refresh tokens are bound to this DPoP key (RFC 9449 §5).
    dpop_jkt: str | None = None


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    token_hash: str
    family_id: str
    scope: str
    created_at: float
    expires_at: float
    used_at: float | None = None
    # The token this one was rotated from (None for a family's first).
    parent_hash: str | None = None
    # Once spent: its successor, encrypted under a key derived from the data key, kept
    # only until ``successor_until`` (the retry window) so that a retry gets the same one.
    successor_enc: bytes | None = None
    successor_until: float | None = None

    def stored_successor(self, now: float) -> bytes | None:
        """The encrypted successor, while the retry window is open."""
        if self.successor_until is None or now > self.successor_until:
            return None
        return self.successor_enc


@dataclass(frozen=True, slots=True)
class Rotation:
    """What :meth:`~mcpward.storage.contracts.GrantStore.rotate_refresh` did."""

    # This call spent the token and stored the successor it was given.
    rotated: bool
    # Not rotated: the successor an earlier rotation stored, if its window is still open
    # and its family unrevoked (else None: the presentation is a reuse).
    successor_enc: bytes | None = None


@dataclass(frozen=True, slots=True)
class SigningKeyRecord:
    kid: str
    alg: SigningAlg
    public_jwk: dict[str, Any]
    private_jwk_enc: bytes
    created_at: float
    active_at: float
    retired_at: float | None = None
    published_until: float | None = None


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: str
    username: str
    email: str | None
    display_name: str | None
    password_hash: str | None
    created_at: float
    disabled_at: float | None = None
    totp_secret_enc: bytes | None = None
    upstream_issuer: str | None = None
    upstream_subject: str | None = None


@dataclass(frozen=True, slots=True)
class ConsentRecord:
    user_id: str
    client_id: str
    resource: str
    scope: str  # sorted, space-separated
    granted_at: float


@dataclass(frozen=True, slots=True)
class CachedDocument:
    """A Client ID Metadata Document that passed validation, cached until ``expires_at``."""

    url: str
    document: dict[str, Any]
    fetched_at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class Revocation:
    """One revocation, as recorded by the authorization server and honoured by guards.

    - ``jti``: the access token with that ``jti``.
    - ``family``: every token whose ``sid`` claim is that family id.
    - ``subject``: every token for that ``sub`` issued at or before ``revoked_at``.
    - ``client``: every token for that ``client_id`` issued at or before ``revoked_at``.

    ``expires_at`` is when no token it could match is still valid; the record may be
    forgotten after that.
    """

    kind: RevocationKind
    key: str
    revoked_at: float
    expires_at: float
