"""The keys of ``private_key_jwt`` clients that publish a ``jwks_uri`` (RFC 7591 §2),
fetched through the SSRF-safe fetcher and cached in memory for ``Cache-Control: max-age``,
at most 5 minutes."""

from __future__ import annotations

import logging
from typing import Any

from mcpward._clock import Clock
from mcpward.server._client_metadata import validate_jwks
from mcpward.server._safe_fetch import FetchRefused, SafeFetcher, shown
from mcpward.server.errors import OAuthError

log = logging.getLogger("mcpward.server.jwks_uri")

JWKS_MAX_BYTES = 64 * 1024
# RFC 7517 §8.5's media type, and the plain JSON most servers send.
JWKS_TYPES = ("application/json", "application/jwk-set+json")
JWKS_MAX_CACHE = 300.0
MAX_CACHED = 1000


class JwksUriFetcher:
    def __init__(self, fetcher: SafeFetcher, clock: Clock, *, cache_ttl: float) -> None:
        self._fetcher = fetcher
        self._clock = clock
        self._cache_ttl = cache_ttl
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    async def __call__(self, url: str) -> dict[str, Any]:
        """A client's JWK Set from its ``jwks_uri``; raises :class:`FetchRefused`."""
        now = self._clock()
        hit = self._jwks.get(url)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            fetched = await self._fetcher.fetch_json(
                url, max_bytes=JWKS_MAX_BYTES, media_types=JWKS_TYPES
            )
            try:
                jwks = validate_jwks(fetched.body)
            except OAuthError:
                raise FetchRefused("invalid_jwks") from None
        except FetchRefused as refused:
            log.warning("jwks_uri %r refused: %s", shown(url), refused.reason)
            raise
        ttl = min(JWKS_MAX_CACHE, self._cache_ttl)
        if fetched.max_age is not None:
            ttl = min(ttl, fetched.max_age)
        if ttl > 0:
            if len(self._jwks) > MAX_CACHED:
                self._jwks.clear()
            self._jwks[url] = (now + ttl, jwks)
        return jwks
