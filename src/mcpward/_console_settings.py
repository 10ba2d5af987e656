"""The operator console's settings (``[console]``), in a module of their own to keep
``mcpward.config`` small; ``mcpward.config`` re-exports them and checks, with the rest of
the settings, that the console never shares the issuer's origin."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, model_validator

from mcpward._hosts import is_loopback_host


class ConsoleSettings(BaseModel):
    """The operator console: off by default; when on, served by ``mcpward serve`` on a
    listener of its own, never at the issuer's origin."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8402
    # The URL operators open when a TLS proxy is in front (default: from host and port).
    origin: str | None = None
    # TLS on the console's own listener (default: the server's certificate, if any).
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # An operator signs in again (password and TOTP) after this long.
    session_lifetime: float = 4 * 3600
    # Destructive actions need a sign-in or re-authentication at most this old.
    step_up_window: float = 5 * 60
    page_size: int = Field(default=50, ge=5, le=500)

    @model_validator(mode="after")
    def _tls_pair(self) -> ConsoleSettings:
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("console.tls_cert_file and console.tls_key_file go together")
        return self

    def tls(self, fallback: tuple[Path, Path] | None) -> tuple[Path, Path] | None:
        """The console's certificate and key, else ``fallback`` (the server's)."""
        if self.tls_cert_file is not None and self.tls_key_file is not None:
            return self.tls_cert_file, self.tls_key_file
        return fallback

    def resolved_origin(self, *, https: bool) -> str:
        if self.origin:
            parts = urlsplit(self.origin.rstrip("/"))
            return f"{parts.scheme}://{parts.netloc}"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if https else 'http'}://{host}:{self.port}"

    def check_apart(self, server_port: int, issuer: str, *, https: bool) -> None:
        """The console never shares the issuer's origin or listener, and speaks plain
        http only on a loopback address."""
        if self.port == server_port:
            raise ValueError("console.port must differ from the server's port")
        origin, public = urlsplit(self.resolved_origin(https=https)), urlsplit(issuer)
        if (origin.scheme, origin.netloc) == (public.scheme, public.netloc):
            raise ValueError("the console must not be served at the issuer's origin")
        if origin.scheme != "https" and not is_loopback_host(origin.hostname):
            raise ValueError("the console is served over https (plain http only on loopback)")
