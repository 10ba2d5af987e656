"""The relational schema shared by the authorization server and the guard.

One SQLAlchemy Core ``MetaData``; Alembic migrations are generated from it. Every
secret-bearing column holds a SHA-256 hash (``*_hash``), never the secret itself.
Times are UNIX seconds (float) so that SQLite and PostgreSQL behave alike.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# Protected resources (MCP servers) that tokens can be issued for (RFC 8707).
resources = Table(
    "resources",
    metadata,
    Column("uri", String(2048), primary_key=True),
    Column("name", String(200), nullable=False),
    # {"orders.read": "Read orders", ...}
    Column("scopes", JSON, nullable=False),
    # [{"name": "search_orders", "scopes_required": ["orders.read"], "description": ...}]
    Column("tools", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)

clients = Table(
    "clients",
    metadata,
    Column("client_id", String(2048), primary_key=True),
    Column("name", String(200), nullable=False),
    # preregistered | dcr | cimd
    Column("source", String(20), nullable=False),
    # none | client_secret_basic | client_secret_post | private_key_jwt
    Column("token_endpoint_auth_method", String(40), nullable=False),
    Column("grant_types", JSON, nullable=False),
    Column("redirect_uris", JSON, nullable=False),
    # native | web (RFC 7591 / OIDC application_type)
    Column("application_type", String(10), nullable=False),
    # Space-separated scopes a client_credentials client may be granted; null = no limit
    # beyond the resource's scopes (interactive clients: the user consents).
    Column("allowed_scope", Text, nullable=True),
    Column("jwks", JSON, nullable=True),
    Column("jwks_uri", String(2048), nullable=True),
    # Resource URI this client speaks for when it calls introspection (resource servers).
    Column("introspects_resource", String(2048), nullable=True),
    Column("metadata", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
    # RFC 9449 §5.2: every token request of this client must carry a DPoP proof.
    Column("dpop_bound_access_tokens", Boolean, nullable=False, server_default=text("false")),
)

client_secrets = Table(
    "client_secrets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column(
        "client_id",
        String(2048),
        ForeignKey("clients.client_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("secret_hash", String(64), nullable=False, unique=True),
    # Last four characters, so an operator can tell secrets apart without seeing them.
    Column("hint", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    # Hard expiry (90 days by default). During rotation the old secret's expiry is pulled
    # in to the end of the overlap window.
    Column("expires_at", Float, nullable=False),
    Index("ix_client_secrets_client_id", "client_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("username", String(200), nullable=False, unique=True),
    Column("email", String(320), nullable=True),
    Column("display_name", String(200), nullable=True),
    Column("password_hash", Text, nullable=True),  # argon2id; null for upstream-only users
    Column("totp_secret_enc", LargeBinary, nullable=True),  # AES-GCM under the data key
    Column("upstream_issuer", String(2048), nullable=True),
    Column("upstream_subject", String(255), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("disabled_at", Float, nullable=True),
    UniqueConstraint("upstream_issuer", "upstream_subject", name="uq_users_upstream"),
)

# One row per grant: an authorization-code grant (and all refresh tokens rotated from it)
# is a "family"; revoking it revokes every access and refresh token it produced.
token_families = Table(
    "token_families",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("client_id", String(2048), nullable=False),
    Column("subject", String(255), nullable=False),
    Column("resource", String(2048), nullable=False),
    Column("scope", Text, nullable=False),
    Column("code_hash", String(64), nullable=True, unique=True),
    Column("created_at", Float, nullable=False),
    Column("absolute_expires_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("revoked_reason", String(40), nullable=True),
    # A public client's grant bound to its DPoP key (RFC 9449 §5): the JWK thumbprint
    # every refresh must prove possession of.
    Column("dpop_jkt", String(64), nullable=True),
    Index("ix_token_families_subject", "subject"),
    Index("ix_token_families_client_id", "client_id"),
)

authorization_codes = Table(
    "authorization_codes",
    metadata,
    Column("code_hash", String(64), primary_key=True),
    Column("client_id", String(2048), nullable=False),
    Column("redirect_uri", String(2048), nullable=False),
    Column("code_challenge", String(128), nullable=False),
    Column("resource", String(2048), nullable=False),
    Column("scope", Text, nullable=False),
    Column("subject", String(255), nullable=False),
    Column("auth_time", Float, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    # ``dpop_jkt`` of the authorization request (RFC 9449 §10): the key the code's
    # redemption must prove.
    Column("dpop_jkt", String(64), nullable=True),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "family_id",
        String(64),
        ForeignKey("token_families.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("scope", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("used_at", Float, nullable=True),
    # The token this one was rotated from; null for a family's first refresh token.
    Column("parent_hash", String(64), nullable=True),
    # A spent token's successor, AES-GCM under a key derived from the data key, kept for
    # the retry window only (a retry after a lost answer gets the same successor), then
    # erased (successor_until in the past, or the successor itself rotated).
    Column("successor_enc", LargeBinary, nullable=True),
    Column("successor_until", Float, nullable=True),
    Index("ix_refresh_tokens_family_id", "family_id"),
    Index("ix_refresh_tokens_successor_until", "successor_until"),
)

# Append-only feed of revocations, read by the guard (polling by seq) so that a revocation
# reaches every replica at its next poll. Rows expire when no token they match can still be
# valid.
#   kind = "jti"      key = jti            token revoked if its jti matches
#   kind = "family"   key = family id      token revoked if its "sid" claim matches
#   kind = "subject"  key = subject        token revoked if sub matches and iat <= revoked_at
#   kind = "client"   key = client_id      token revoked if client_id matches and iat <= revoked_at
revocations = Table(
    "revocations",
    metadata,
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("kind", String(10), nullable=False),
    Column("key", String(2048), nullable=False),
    Column("revoked_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Index("ix_revocations_kind_key", "kind", "key"),
)

signing_keys = Table(
    "signing_keys",
    metadata,
    Column("kid", String(64), primary_key=True),
    Column("alg", String(10), nullable=False),
    Column("public_jwk", JSON, nullable=False),
    Column("private_jwk_enc", LargeBinary, nullable=False),  # AES-GCM under the data key
    Column("created_at", Float, nullable=False),
    # Published from created_at; signs from active_at (after caches have seen it).
    Column("active_at", Float, nullable=False),
    # Stops signing at retired_at; stays published until every token it signed expired.
    Column("retired_at", Float, nullable=True),
    Column("published_until", Float, nullable=True),
)

# RFC 7523 client assertions seen, so a replayed assertion is refused until it expires.
assertion_jtis = Table(
    "assertion_jtis",
    metadata,
    Column("client_id", String(2048), primary_key=True),
    Column("jti", String(255), primary_key=True),
    Column("expires_at", Float, nullable=False),
)

consents = Table(
    "consents",
    metadata,
    Column("user_id", String(64), primary_key=True),
    Column("client_id", String(2048), primary_key=True),
    Column("resource", String(2048), primary_key=True),
    Column("scope", Text, nullable=False),  # sorted, space-separated
    Column("granted_at", Float, nullable=False),
)

# Cached Client ID Metadata Documents (client_id is an HTTPS URL).
client_metadata_documents = Table(
    "client_metadata_documents",
    metadata,
    Column("url", String(2048), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("fetched_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
)

# Browser sessions of the sign-in pages ended on the server (sign out) before their signed
# cookie expires: a copied cookie is refused by every replica. Keyed by the SHA-256 of the
# session id; a row is purged once the session would have expired anyway.
revoked_sessions = Table(
    "revoked_sessions",
    metadata,
    Column("sid_hash", String(64), primary_key=True),
    Column("expires_at", Float, nullable=False),
    Index("ix_revoked_sessions_expires_at", "expires_at"),
)
