"""Finding an authorization server's keys: RFC 8414 / OpenID discovery and a JWKS cache.

The JWKS is fetched once, kept for ``ttl`` and refetched early when a token names an
unknown ``kid`` (key rotation), but at most once per ``min_refetch_interval`` so a flood of
tokens with made-up ``kid``s cannot turn the guard into a JWKS-fetching amplifier.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import Key as Jwk
from joserfc.jwk import KeySet, KeySetSerialization

from mcpward._clock import Clock, system_clock
from mcpward.errors import MCPWardError


class IssuerDiscoveryError(MCPWardError):
    """The authorization server's metadata or keys could not be obtained."""


class KeySource(Protocol):
    async def get_key(self, kid: str | None) -> Jwk | None:
        """The verification key for ``kid``; ``None`` if there is no such key."""
        ...


def well_known_urls(issuer: str) -> list[str]:
    """RFC 8414 §3.1 (path-inserted), then OpenID Connect Discovery (path-appended)."""
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    inserted = urlunsplit(
        (parts.scheme, parts.netloc, "/.well-known/oauth-authorization-server" + path, "", "")
    )
    openid = urlunsplit(
        (parts.scheme, parts.netloc, path + "/.well-known/openid-configuration", "", "")
    )
    return [inserted, openid]


async def discover(issuer: str, http: httpx.AsyncClient) -> dict[str, Any]:
    """The authorization server metadata whose ``issuer`` is exactly ``issuer``."""
    last: str = "no metadata document found"
    for url in well_known_urls(issuer):
        try:
            response = await http.get(url, headers={"accept": "application/json"})
        except httpx.HTTPError as exc:
            last = f"{url}: {type(exc).__name__}"
            continue
        if response.status_code != 200:
            last = f"{url}: HTTP {response.status_code}"
            continue
        try:
            document = response.json()
        except ValueError:
            last = f"{url}: not JSON"
            continue
        if not isinstance(document, dict):
            last = f"{url}: not a JSON object"
            continue
        # RFC 8414 §3.3: the issuer in the document must be the one we asked for.
        if document.get("issuer") != issuer:
            raise IssuerDiscoveryError(
                f"{url} names issuer {document.get('issuer')!r}, not {issuer!r}"
            )
        return document
    raise IssuerDiscoveryError(f"discovery failed for {issuer}: {last}")


class StaticKeys:
    """Keys given up front: embedded mode, tests, or a pinned JWKS."""

    def __init__(self, jwks: KeySet | Mapping[str, Any]) -> None:
        self._keys = jwks if isinstance(jwks, KeySet) else KeySet.import_key_set(_as_jwks(jwks))

    async def get_key(self, kid: str | None) -> Jwk | None:
        return _pick(self._keys, kid)


class RemoteJWKS:
    """A ``jwks_uri`` fetched over HTTPS, cached, refetched on an unknown ``kid``."""

    def __init__(
        self,
        jwks_uri: str,
        http: httpx.AsyncClient,
        *,
        ttl: float = 3600.0,
        min_refetch_interval: float = 30.0,
        clock: Clock = system_clock,
    ) -> None:
        self.jwks_uri = jwks_uri
        self._http = http
        self._ttl = ttl
        self._min_refetch = min_refetch_interval
        self._clock = clock
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()

    @classmethod
    async def from_issuer(cls, issuer: str, http: httpx.AsyncClient, **kwargs: Any) -> RemoteJWKS:
        metadata = await discover(issuer, http)
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise IssuerDiscoveryError(f"{issuer} publishes no jwks_uri")
        return cls(jwks_uri, http, **kwargs)

    async def get_key(self, kid: str | None) -> Jwk | None:
        now = self._clock()
        if self._keys is None or now - self._fetched_at > self._ttl:
            await self._refresh(now, force=True)
        key = _pick(self._keys, kid) if self._keys is not None else None
        if key is None and kid is not None:
            # Possibly a freshly rotated key: refetch, throttled.
            await self._refresh(now, force=False)
            key = _pick(self._keys, kid) if self._keys is not None else None
        return key

    async def _refresh(self, now: float, *, force: bool) -> None:
        async with self._lock:
            if now - self._fetched_at < self._min_refetch and (self._keys is not None or not force):
                return
            self._fetched_at = now
            try:
                response = await self._http.get(self.jwks_uri)
                response.raise_for_status()
                self._keys = KeySet.import_key_set(_as_jwks(response.json()))
            except (httpx.HTTPError, ValueError, JoseError) as exc:
                if self._keys is None:
                    raise IssuerDiscoveryError(
                        f"cannot fetch {self.jwks_uri}: {type(exc).__name__}"
                    ) from exc
                # Keep serving the keys we have; a JWKS outage must not reject valid tokens.


def _as_jwks(document: Any) -> KeySetSerialization:
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise ValueError("a JWKS is an object with a 'keys' array")
    # Only public verification keys with an algorithm family we verify; others are skipped
    # so one odd key (say an RSA-OAEP encryption key) does not poison the set.
    keys = [
        k
        for k in document["keys"]
        if isinstance(k, Mapping) and k.get("use", "sig") == "sig" and k.get("kty") in _KTYS
    ]
    return cast(KeySetSerialization, {"keys": keys})


_KTYS = {"EC", "RSA", "OKP"}


def _pick(keys: KeySet, kid: str | None) -> Jwk | None:
    if kid is None:
        return keys.keys[0] if len(keys.keys) == 1 else None
    for key in keys.keys:
        if key.kid == kid:
            return key
    return None


class IssuerKeys:
    """The keys of an issuer found by discovery on first use, then a :class:`RemoteJWKS`.
    Lets a guard be built synchronously (at import time of an ASGI app)."""

    def __init__(self, issuer: str, http: httpx.AsyncClient | None = None, **kwargs: Any) -> None:
        self.issuer = issuer
        self._http = http
        self._kwargs = kwargs
        self._jwks: RemoteJWKS | None = None
        self._lock = asyncio.Lock()
        self._own_http = http is None

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None
            self._jwks = None

    async def get_key(self, kid: str | None) -> Jwk | None:
        if self._jwks is None:
            async with self._lock:
                if self._jwks is None:
                    http = self._http or httpx.AsyncClient(timeout=5.0)
                    self._http = http
                    self._jwks = await RemoteJWKS.from_issuer(self.issuer, http, **self._kwargs)
        return await self._jwks.get_key(kid)


class LocalKeys:
    """Keys looked up in this process (embedded mode: the authorization server's key ring),
    e.g. ``LocalKeys(server.keys.public_key)``. No HTTP, no cache to go stale."""

    def __init__(self, lookup: Callable[[str], Jwk | None]) -> None:
        self._lookup = lookup

    async def get_key(self, kid: str | None) -> Jwk | None:
        return self._lookup(kid) if kid is not None else None
