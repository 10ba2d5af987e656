"""Configuration: one TOML file, overridden by ``MCPWARD_*`` environment variables.

Secrets (the database password, the key-encryption key, upstream client secrets) never come
from the TOML file: they come from the environment or from files named in it, and they are
never printed back (``SecretStr``).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from mcpward._config_federation import ExchangePolicy, Federation, TrustedIssuer, WorkloadRule
from mcpward._hosts import is_loopback_host
from mcpward.errors import ConfigError

CONFIG_ENV = "MCPWARD_CONFIG"
DEFAULT_CONFIG_FILE = "mcpward.toml"

DAY = 86_400.0
_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,39}$")


class TokenLifetimes(BaseModel):
    access_token: float = 15 * 60
    authorization_code: float = 60
    # Rolling: every rotation extends the family to now + refresh_token ...
    refresh_token: float = 30 * DAY
    # ... but never past created_at + refresh_token_absolute.
    refresh_token_absolute: float = 90 * DAY
    client_secret: float = 90 * DAY
    client_secret_overlap: float = 7 * DAY
    # A new signing key is published this long before it signs (JWKS caches refresh).
    signing_key_publish_lead: float = 3600
    # Leeway granted to clock skew when judging whether a token could still be valid.
    leeway: float = 60


class ClientMetadataDocuments(BaseModel):
    """Fetching Client ID Metadata Documents (client_id is an HTTPS URL)."""

    enabled: bool = True
    timeout: float = 5.0
    max_bytes: int = 5 * 1024
    cache_ttl: float = 3600
    # Private, loopback and link-local addresses are refused unless listed here (tests).
    allow_private_hosts: list[str] = Field(default_factory=list)
    # Plain http:// document URLs: only for tests against loopback.
    allow_http: bool = False


DPoPAlgorithm = Literal["ES256", "ES384", "EdDSA", "RS256", "PS256"]
DPOP_ALGORITHMS: tuple[DPoPAlgorithm, ...] = ("ES256", "ES384", "EdDSA", "RS256", "PS256")


class DPoPSettings(BaseModel):
    """Sender-constrained tokens (RFC 9449) at the token endpoint."""

    # Accept DPoP proofs and issue key-bound tokens; advertised in the metadata.
    enabled: bool = True
    algorithms: list[DPoPAlgorithm] = Field(
        default_factory=lambda: list(DPOP_ALGORITHMS), min_length=1
    )
    # A proof is accepted for this long after its iat, plus leeway for clock skew.
    proof_max_age: float = Field(default=60.0, gt=0)
    proof_leeway: float = Field(default=30.0, ge=0)
    # Answer proofs without a server nonce with use_dpop_nonce (RFC 9449 §8). Nonces are
    # derived from the data key and the time, so every replica agrees without storage.
    require_nonce: bool = False
    # A nonce is valid in its own step and the next: between 1 and 2 steps.
    nonce_step: float = Field(default=120.0, gt=0)


class LoginLimits(BaseModel):
    """Failed sign-ins allowed before the account (or the address) must wait."""

    # Per account (the username typed, known or not, so that limits do not reveal which
    # accounts exist): this many failures within ``window`` lock it for ``lockout``.
    account_failures: int = 5
    window: float = 15 * 60
    lockout: float = 15 * 60
    # Per client address, across every account (password spraying).
    address_failures: int = 30


class UpstreamProvider(BaseModel):
    """An OpenID Connect provider people may sign in with (Keycloak, Auth0, Okta, Clerk,
    Google ...), found through discovery from its issuer URL."""

    name: str  # URL slug: /oidc/start/<name>
    display_name: str
    issuer: str
    client_id: str
    client_secret: SecretStr = SecretStr("")
    client_secret_file: Path | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    # Who may come in: an empty list allows everyone the provider vouches for.
    allowed_email_domains: list[str] = Field(default_factory=list)
    allowed_groups: list[str] = Field(default_factory=list)
    groups_claim: str = "groups"
    # Create a local user on first sign-in; otherwise only already linked users get in.
    create_users: bool = True
    # Link a first-time upstream identity to an existing local user with the same email,
    # only when the provider says the email is verified.
    link_by_email: bool = False
    timeout: float = 10.0

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _SLUG.match(value):
            raise ValueError("name must be a lower-case slug (a-z, 0-9, -)")
        return value

    @field_validator("issuer")
    @classmethod
    def _https(cls, value: str) -> str:
        value = value.rstrip("/")
        parts = urlsplit(value)
        loopback = is_loopback_host(parts.hostname)
        if parts.scheme == "https" or (parts.scheme == "http" and loopback):
            return value
        raise ValueError("an upstream issuer must be https:// (plain http only on loopback)")

    @field_validator("allowed_email_domains")
    @classmethod
    def _lower(cls, value: list[str]) -> list[str]:
        return [d.lower().lstrip("@") for d in value]

    def resolved_client_secret(self) -> str:
        if self.client_secret_file is not None:
            return self.client_secret_file.read_text().strip()
        return self.client_secret.get_secret_value()


class PagesSettings(BaseModel):
    # A session lasts this long after sign-in, then the person signs in again.
    session_lifetime: float = 8 * 3600
    # A password accepted, the second factor must follow within this time.
    second_factor_timeout: float = 5 * 60
    # Remembered consent is asked again after this long (0 = never remember).
    consent_lifetime: float = 90 * DAY
    login_limits: LoginLimits = Field(default_factory=LoginLimits)
    # Share failed-sign-in counts, lockouts and used TOTP codes between replicas
    # (redis://, rediss://; Valkey and Upstash work). Empty: this process only.
    redis_url: SecretStr = SecretStr("")
    upstream: list[UpstreamProvider] = Field(default_factory=list)
    # Shown in the header of every page and in authenticator apps.
    product_name: str = "mcpward"

    @model_validator(mode="after")
    def _unique_names(self) -> PagesSettings:
        names = [p.name for p in self.upstream]
        if len(names) != len(set(names)):
            raise ValueError("upstream provider names must be unique")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="MCPWARD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    issuer: str = "http://127.0.0.1:8400"
    host: str = "127.0.0.1"
    port: int = 8400
    data_dir: Path = Path(".mcpward")
    # Empty means the embedded SQLite file under data_dir.
    database_url: SecretStr = SecretStr("")
    database_url_file: Path | None = None
    # 32 bytes, base64url, encrypting signing keys and TOTP secrets at rest. Empty means
    # the embedded default: generated once into data_dir/data-key (mode 0600).
    data_key: SecretStr = SecretStr("")
    data_key_file: Path | None = None

    signing_alg: Literal["ES256", "EdDSA"] = "ES256"
    lifetimes: TokenLifetimes = Field(default_factory=TokenLifetimes)
    # When a token request names no resource and exactly this one should be assumed.
    default_resource: str | None = None
    # The state every replica must share (redis://, rediss://, unix://; Valkey and Upstash
    # work): the registration limit per address, one-time-use values, and revocations
    # published to the guards that read the same Redis. Empty: this process only, and
    # guards learn of revocations by polling the database.
    redis_url: SecretStr = SecretStr("")
    # A refresh token presented again by its client within this many seconds of its
    # rotation gets the same successor (a retry after a lost answer, two workers at once)
    # instead of revoking the grant; later, it is a reuse and revokes the family.
    # 0 = strict RFC 9700 reuse detection.
    refresh_retry_window: float = Field(default=30.0, ge=0.0, le=300.0)
    dpop: DPoPSettings = Field(default_factory=DPoPSettings)

    client_metadata_documents: ClientMetadataDocuments = Field(
        default_factory=ClientMetadataDocuments
    )
    dynamic_client_registration: bool = True
    # Registrations accepted per client address per hour (anonymous DCR is open to anyone).
    registrations_per_hour: int = Field(default=30, ge=1)
    pages: PagesSettings = Field(default_factory=PagesSettings)

    # TLS directly, or behind a proxy whose X-Forwarded-* headers are trusted only from
    # these addresses.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    cors_allow_origins: list[str] = Field(default_factory=lambda: ["*"])

    # Enterprise and workload identity (SEP-990 ID-JAGs, SEP-1933 workload JWTs) and
    # on-behalf-of exchanges for downstream APIs (RFC 8693): see mcpward._config_federation.
    trusted_issuers: list[TrustedIssuer] = Field(default_factory=list)
    workload_rules: list[WorkloadRule] = Field(default_factory=list)
    token_exchange: list[ExchangePolicy] = Field(default_factory=list)

    audit_sink: str = "stdout"
    # Also push the audit trail to Grafana Loki (http(s)://host:3100), batched in the
    # background: a Loki outage never slows or fails a request.
    loki_url: SecretStr = SecretStr("")
    # Seconds between SIGTERM and closing the listening socket, while /readyz answers 503
    # so that load balancers stop sending new requests; in-flight requests then finish
    # (up to 30 s). Set it above the balancer's health-check interval times its failure
    # threshold.
    shutdown_drain: float = Field(default=0.0, ge=0.0, le=300.0)
    # Where `clients rotate-due` and `rotate-secret` hand new secrets:
    # "dir:/run/secrets/mcpward" (a 0600 file per client), "command:/usr/local/bin/push"
    # (secret on stdin), "aws-sm:mcpward/clients/{client_id}" (AWS Secrets Manager) or
    # "vault:secret/mcpward/clients/{client_id}" (Vault KV v2, mount "secret").
    secret_sink: str | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = Path(os.environ.get(CONFIG_ENV, DEFAULT_CONFIG_FILE))
        toml = _SecretFreeToml(settings_cls, toml_file=path)
        return (init_settings, env_settings, toml)

    @field_validator("issuer")
    @classmethod
    def _issuer_is_https_or_loopback(cls, value: str) -> str:
        value = value.rstrip("/")
        parts = urlsplit(value)
        if parts.query or parts.fragment:
            raise ValueError("the issuer has no query or fragment (RFC 8414 §2)")
        if parts.scheme == "https":
            return value
        if parts.scheme == "http" and is_loopback_host(parts.hostname):
            return value
        raise ValueError("the issuer must be https:// (plain http only on loopback addresses)")

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    @model_validator(mode="after")
    def _federation_consistent(self) -> Settings:
        self.federation  # noqa: B018 - raises ValueError when rules and issuers disagree
        return self

    # -- derived values -------------------------------------------------------------

    @property
    def federation(self) -> Federation:
        return Federation(
            trusted_issuers=self.trusted_issuers,
            workload_rules=self.workload_rules,
            token_exchange=self.token_exchange,
        )

    def resolved_database_url(self) -> str:
        if self.database_url_file is not None:
            return self.database_url_file.read_text().strip()
        url = self.database_url.get_secret_value()
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mcpward.db').resolve()}"

    def resolved_redis_url(self) -> str | None:
        return self.redis_url.get_secret_value() or None

    def resolved_loki_url(self) -> str | None:
        return self.loki_url.get_secret_value() or None

    def resolved_data_key(self) -> str:
        """The key-encryption key; the embedded default creates one on first use."""
        if self.data_key_file is not None:
            return self.data_key_file.read_text().strip()
        key = self.data_key.get_secret_value()
        if key:
            return key
        path = self.data_dir / "data-key"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(_new_data_key())
        return path.read_text().strip()


def _new_data_key() -> str:
    import base64

    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")


def _has_password(url: object) -> bool:
    return isinstance(url, str) and urlsplit(url).password is not None


class _SecretFreeToml(TomlConfigSettingsSource):
    """The TOML file may name secret *files*, never hold a secret."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        leaked = ["data_key"] if "data_key" in data else []
        for name in ("database_url", "redis_url", "loki_url"):
            if _has_password(data.get(name)):
                leaked.append(name)
        pages = data.get("pages")
        if isinstance(pages, dict):
            if _has_password(pages.get("redis_url")):
                leaked.append("pages.redis_url")
            for i, provider in enumerate(pages.get("upstream") or []):
                if isinstance(provider, dict) and "client_secret" in provider:
                    leaked.append(f"pages.upstream.{i}.client_secret")
        if leaked:
            raise ValueError(
                f"{', '.join(leaked)} must not be written in the configuration file: use "
                "the MCPWARD_* environment variable (nested with __) or the *_file setting"
            )
        return data


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        ]
        raise ConfigError("; ".join(problems)) from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
