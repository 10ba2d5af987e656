"""Configuration: one TOML file, overridden by ``MCPWARD_*`` environment variables.

Secrets (the database password, the key-encryption key, upstream client secrets) never come
from the TOML file: they come from the environment or from files named in it, and they are
never printed back (``SecretStr``).
"""

from __future__ import annotations

import ipaddress
import os
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

CONFIG_ENV = "MCPWARD_CONFIG"
DEFAULT_CONFIG_FILE = "mcpward.toml"

DAY = 86_400.0


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
    # Let a refresh request that re-presents a just-rotated token within this many seconds
    # fail without revoking the family (0 = strict RFC 9700 reuse detection).
    refresh_reuse_grace: float = 0.0

    client_metadata_documents: ClientMetadataDocuments = Field(
        default_factory=ClientMetadataDocuments
    )
    dynamic_client_registration: bool = True

    # TLS directly, or behind a proxy whose X-Forwarded-* headers are trusted only from
    # these addresses.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    trusted_proxies: list[str] = Field(default_factory=list)
    cors_allow_origins: list[str] = Field(default_factory=lambda: ["*"])

    audit_sink: str = "stdout"
    # Where `clients rotate-due` hands new secrets: "dir:/run/secrets/mcpward" (a 0600
    # file per client) or "command:/usr/local/bin/push-secret" (secret on stdin).
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
        if parts.scheme == "http" and is_loopback_host(parts.hostname or ""):
            return value
        raise ValueError("the issuer must be https:// (plain http only on loopback addresses)")

    @model_validator(mode="after")
    def _tls_pair(self) -> Settings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        return self

    # -- derived values -------------------------------------------------------------

    def resolved_database_url(self) -> str:
        if self.database_url_file is not None:
            return self.database_url_file.read_text().strip()
        url = self.database_url.get_secret_value()
        if url:
            return url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'mcpward.db').resolve()}"

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


_SECRET_KEYS = {"database_url", "data_key"}


class _SecretFreeToml(TomlConfigSettingsSource):
    """The TOML file may name secret *files*, never hold a secret."""

    def __call__(self) -> dict[str, Any]:
        data = super().__call__()
        leaked = sorted(_SECRET_KEYS & data.keys())
        if leaked:
            raise ValueError(
                f"{', '.join(leaked)} must not be written in the configuration file: set "
                "MCPWARD_" + leaked[0].upper() + " or " + leaked[0] + "_file instead"
            )
        return data


def is_loopback_host(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class ConfigError(Exception):
    """A configuration problem, described without echoing any value (values may be
    secrets)."""


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
