"""The verification keys of the issuers this server trusts for JWT grants (RFC 7523):
a pinned JWK Set, a configured ``jwks_uri``, or OpenID Connect Discovery then RFC 8414
of the issuer (SEP-1933). Remote documents come through the SSRF-safe fetcher; the JWK
Set is kept for an hour and refetched early for an unknown ``kid`` (key rotation), at
most once per 30 s, so made-up ``kid``s cannot make this server hammer an IdP. When a
refetch fails, the keys already held keep serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from joserfc.errors import JoseError
from joserfc.jwk import Key, KeySet

from mcpward._clock import Clock
from mcpward._config_federation import TrustedIssuer
from mcpward._hosts import is_loopback_host
from mcpward.errors import ConfigError
from mcpward.server._jwks_uri import JWKS_TYPES
from mcpward.server._safe_fetch import FetchRefused, SafeFetcher, shown
from mcpward.server.errors import TemporarilyUnavailable

log = logging.getLogger("mcpward.server.trusted_keys")


class KeysRefused(ValueError):
    """A discovery document or JWK Set not to be used; the message is a fixed text."""


MAX_DOCUMENT = 64 * 1024
MAX_KEYS = 50
KEYS_TTL = 3600.0
MIN_REFETCH = 30.0
_KTYS = frozenset({"EC", "RSA", "OKP"})
_PRIVATE = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


def public_key_set(document: object) -> KeySet:
    """The signing keys of a JWK Set document: public EC, RSA and OKP keys not marked for
    encryption. Others are skipped, so one odd key does not poison the set."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise KeysRefused("a JWK Set is an object with a keys array")
    keys = [
        dict(k)
        for k in document["keys"][:MAX_KEYS]
        if isinstance(k, Mapping)
        and k.get("kty") in _KTYS
        and k.get("use", "sig") == "sig"
        and not _PRIVATE & set(k)
    ]
    if not keys:
        raise KeysRefused("the JWK Set holds no usable signing key")
    return KeySet.import_key_set({"keys": keys})


def discovery_urls(issuer: str) -> list[str]:
    """OpenID Connect Discovery §4 (path appended), then RFC 8414 §3.1 (path inserted)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [
        issuer + "/.well-known/openid-configuration",
        urlunsplit(
            (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
        ),
    ]


class IssuerKeys:
    """The keys of one trusted issuer."""

    def __init__(self, config: TrustedIssuer, fetcher: SafeFetcher, clock: Clock) -> None:
        self.config = config
        self._fetcher = fetcher
        self._clock = clock
        self._keys: KeySet | None = None
        self._jwks_uri = config.jwks_uri
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        if config.jwks_file is not None:
            try:
                self._keys = public_key_set(json.loads(config.jwks_file.read_text()))
            except (OSError, ValueError, JoseError) as exc:
                raise ConfigError(
                    f"jwks_file of trusted issuer {config.issuer}: {type(exc).__name__}"
                ) from None

    @property
    def pinned(self) -> bool:
        return self.config.jwks_file is not None

    async def key(self, kid: str | None) -> Key | None:
        """The key for ``kid`` (or the only key when the JWT names none); ``None`` when
        the issuer has no such key. 503 when no keys could ever be fetched."""
        if not self.pinned:
            now = self._clock()
            keys = self._keys
            stale = keys is None or now - self._fetched_at > KEYS_TTL
            if stale or (keys is not None and kid is not None and _pick(keys, kid) is None):
                await self._refresh(now)
        if self._keys is None:
            raise TemporarilyUnavailable("the assertion issuer's keys are unavailable, retry")
        return _pick(self._keys, kid)

    async def _refresh(self, now: float) -> None:
        async with self._lock:
            # Without any keys yet, try again sooner: requests are being refused meanwhile.
            if now - self._fetched_at < (MIN_REFETCH if self._keys is not None else 5.0):
                return
            self._fetched_at = now
            try:
                jwks_uri = self._jwks_uri or await self._discover()
                fetched = await self._fetcher.fetch_json(
                    jwks_uri, max_bytes=MAX_DOCUMENT, media_types=JWKS_TYPES
                )
                self._keys = public_key_set(fetched.body)
                self._jwks_uri = jwks_uri
            except (FetchRefused, ValueError, JoseError) as exc:
                if isinstance(exc, FetchRefused):
                    reason = exc.reason
                else:
                    reason = str(exc) if isinstance(exc, KeysRefused) else type(exc).__name__
                # Kept: the keys held so far (an IdP outage must not refuse valid grants).
                log.warning("keys of %s not refreshed: %s", shown(self.config.issuer), reason)

    async def _discover(self) -> str:
        issuer = self.config.issuer
        last: FetchRefused | KeysRefused = FetchRefused("no_metadata")
        for url in discovery_urls(issuer):
            try:
                fetched = await self._fetcher.fetch_json(url, max_bytes=MAX_DOCUMENT)
            except FetchRefused as refused:
                # A document that was there but unusable says more than a later 404.
                last = refused if isinstance(last, FetchRefused) else last
                continue
            document: Any = fetched.body
            if not isinstance(document, Mapping) or document.get("issuer") != issuer:
                # RFC 8414 §3.3, OpenID Discovery §4.3: the document names this issuer.
                last = KeysRefused("the discovery document names another issuer")
                continue
            jwks_uri = document.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not self._acceptable(jwks_uri):
                last = KeysRefused("the discovery document has no usable jwks_uri")
                continue
            return jwks_uri
        raise last

    def _acceptable(self, url: str) -> bool:
        """SEP-1933: keys come over TLS. Plain http only for a loopback issuer (tests)."""
        parts = urlsplit(url)
        if parts.scheme == "https":
            return True
        issuer = urlsplit(self.config.issuer)
        return (
            parts.scheme == "http"
            and issuer.scheme == "http"
            and is_loopback_host(parts.hostname)
            and is_loopback_host(issuer.hostname)
        )


def _pick(keys: KeySet, kid: str | None) -> Key | None:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    for key in keys.keys:
        if key.kid == kid:
            return key
    return None


def trust_fetcher(issuers: list[TrustedIssuer], timeout: float = 5.0) -> SafeFetcher:
    """A fetcher for trusted issuers' documents. The hosts an operator named (issuers,
    configured ``jwks_uri``s) may be private (an in-cluster Kubernetes issuer); a
    ``jwks_uri`` a discovery document points to must be public like any other fetch."""
    hosts = {
        host
        for issuer in issuers
        for url in (issuer.issuer, issuer.jwks_uri)
        if url and (host := urlsplit(url).hostname)
    }
    loopback_http = any(urlsplit(i.issuer).scheme == "http" for i in issuers)
    return SafeFetcher(timeout=timeout, allow_private_hosts=sorted(hosts), allow_http=loopback_http)
