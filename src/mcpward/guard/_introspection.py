"""Opaque access tokens through token introspection (RFC 7662), with a bounded cache.

An answer is cached for at most ``cache_ttl`` seconds (and never past the token's ``exp``):
a short TTL bounds how long a token revoked at the authorization server keeps working here
when no revocation feed reaches this guard.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

import httpx

from mcpward._clock import Clock, system_clock
from mcpward.guard._claims import MCPWARD, ClaimMapping
from mcpward.guard._errors import InvalidToken
from mcpward.guard._identity import Identity
from mcpward.guard._verify import MAX_TOKEN_LENGTH, identity_from_claims, token_audiences


class IntrospectionVerifier:
    def __init__(
        self,
        *,
        endpoint: str,
        client_id: str,
        client_secret: str,
        issuer: str,
        audience: str | Iterable[str],
        http: httpx.AsyncClient,
        claims: ClaimMapping = MCPWARD,
        cache_ttl: float = 30.0,
        cache_size: int = 10_000,
        clock: Clock = system_clock,
    ) -> None:
        self._endpoint = endpoint
        self._auth = httpx.BasicAuth(client_id, client_secret)
        self.issuer = issuer
        self.audiences = frozenset([audience] if isinstance(audience, str) else audience)
        self._http = http
        self._claims = claims
        self._ttl = cache_ttl
        self._size = cache_size
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Identity]] = OrderedDict()

    async def verify(self, token: str) -> Identity:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken("the access token is too large")
        now = self._clock()
        hit = self._cache.get(token)
        if hit is not None and hit[0] > now:
            return hit[1]
        identity = await self._introspect(token, now)
        until = min(now + self._ttl, identity.expires_at)
        self._cache[token] = (until, identity)
        if len(self._cache) > self._size:
            self._cache.popitem(last=False)
        return identity

    async def _introspect(self, token: str, now: float) -> Identity:
        try:
            response = await self._http.post(
                self._endpoint,
                data={"token": token, "token_type_hint": "access_token"},
                auth=self._auth,
                headers={"accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise InvalidToken("the token could not be checked") from exc
        if response.status_code != 200:
            raise InvalidToken("the token could not be checked")
        try:
            body: Any = response.json()
        except ValueError as exc:
            raise InvalidToken("the token could not be checked") from exc
        if not isinstance(body, dict) or body.get("active") is not True:
            raise InvalidToken("the access token is not active")
        if body.get("iss", self.issuer) != self.issuer:
            raise InvalidToken("the token is from another issuer")
        audiences = token_audiences(body)
        if not self.audiences.intersection(audiences):
            raise InvalidToken("the token is for another resource")
        exp = body.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise InvalidToken("the access token expired")
        return identity_from_claims(
            body, self._claims, issuer=self.issuer, audiences=audiences, expires_at=exp
        )
