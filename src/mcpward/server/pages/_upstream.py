"""Signing in through an upstream OpenID Connect provider (OpenID Connect Core 1.0 §3.1,
Discovery 1.0): authorization code flow with PKCE S256, ``state`` and ``nonce``, the
client authenticated with ``client_secret_basic``, and the ID token verified against the
provider's published keys (issuer, audience, expiry, nonce).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from mcpward._clock import Clock
from mcpward.server.pages.settings import UpstreamProvider

ID_TOKEN_ALGS = ["RS256", "PS256", "ES256", "ES384", "EdDSA"]
CACHE_TTL = 3600.0
MAX_DOCUMENT = 256 * 1024


class UpstreamError(Exception):
    """The upstream provider could not be used or its answer was not acceptable. The message
    is fixed text, safe to show; it never carries a code or token."""


@dataclass(frozen=True, slots=True)
class Pending:
    """What the browser carries (sealed) between the redirect and the callback."""

    state: str
    nonce: str
    verifier: str

    @classmethod
    def new(cls) -> Pending:
        return cls(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            verifier=secrets.token_urlsafe(48),
        )

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(slots=True)
class _Cache:
    discovery: dict[str, Any] | None = None
    discovery_until: float = 0.0
    keys: KeySet | None = None
    keys_until: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)


class UpstreamClient:
    def __init__(
        self,
        provider: UpstreamProvider,
        clock: Clock,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.provider = provider
        self._clock = clock
        self._http = http
        self._cache = _Cache()

    async def _get_json(self, url: str, *, form: dict[str, str] | None = None) -> dict[str, Any]:
        client = self._http or httpx.AsyncClient(timeout=self.provider.timeout)
        try:
            if form is None:
                response = await client.get(url, headers={"Accept": "application/json"})
            else:
                response = await client.post(
                    url,
                    data=form,
                    auth=(self.provider.client_id, self.provider.resolved_client_secret()),
                    headers={"Accept": "application/json"},
                )
        except httpx.HTTPError:
            raise UpstreamError("The identity provider could not be reached.") from None
        finally:
            if self._http is None:
                await client.aclose()
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT:
            raise UpstreamError("The identity provider refused the request.")
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError("The identity provider sent an unreadable answer.") from None
        if not isinstance(body, dict):
            raise UpstreamError("The identity provider sent an unreadable answer.")
        return body

    async def discovery(self) -> dict[str, Any]:
        now = self._clock()
        if self._cache.discovery is not None and self._cache.discovery_until > now:
            return self._cache.discovery
        url = self.provider.issuer + "/.well-known/openid-configuration"
        doc = await self._get_json(url)
        if str(doc.get("issuer", "")).rstrip("/") != self.provider.issuer:
            raise UpstreamError("The identity provider's metadata names another issuer.")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str):
                raise UpstreamError("The identity provider's metadata is incomplete.")
        self._cache.discovery = doc
        self._cache.discovery_until = now + CACHE_TTL
        return doc

    async def _keys(self, refresh: bool = False) -> KeySet:
        now = self._clock()
        if not refresh and self._cache.keys is not None and self._cache.keys_until > now:
            return self._cache.keys
        doc = await self.discovery()
        try:
            keys = KeySet.import_key_set(await self._get_json(doc["jwks_uri"]))  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            raise UpstreamError("The identity provider's keys are unusable.") from None
        self._cache.keys = keys
        self._cache.keys_until = now + CACHE_TTL
        return keys

    async def authorization_url(self, redirect_uri: str, pending: Pending) -> str:
        doc = await self.discovery()
        params = {
            "response_type": "code",
            "client_id": self.provider.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.provider.scopes),
            "state": pending.state,
            "nonce": pending.nonce,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
        endpoint: str = doc["authorization_endpoint"]
        return endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)

    async def authorization_origin(self) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit((await self.discovery())["authorization_endpoint"])
        return f"{parts.scheme}://{parts.netloc}"

    async def exchange(self, code: str, redirect_uri: str, pending: Pending) -> dict[str, Any]:
        """Redeem the code; return the verified ID token claims."""
        doc = await self.discovery()
        tokens = await self._get_json(
            doc["token_endpoint"],
            form={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": pending.verifier,
            },
        )
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise UpstreamError("The identity provider sent no ID token.")
        return await self._verify(id_token, pending.nonce)

    async def _verify(self, id_token: str, nonce: str) -> dict[str, Any]:
        try:
            token = jwt.decode(id_token, await self._keys(), algorithms=ID_TOKEN_ALGS)
        except JoseError:
            # An unknown kid may mean the provider rotated its keys: fetch them once more.
            try:
                token = jwt.decode(id_token, await self._keys(True), algorithms=ID_TOKEN_ALGS)
            except JoseError:
                raise UpstreamError("The identity provider's ID token is not valid.") from None
        claims = dict(token.claims)
        registry = JWTClaimsRegistry(
            now=lambda: int(self._clock()),
            leeway=60,
            iss={"essential": True, "value": self.provider.issuer},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
        )
        try:
            registry.validate(claims)
        except JoseError:
            raise UpstreamError("The identity provider's ID token is not valid.") from None
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self.provider.client_id not in audiences:
            raise UpstreamError("The ID token was issued to another application.")
        if len(audiences) > 1 and claims.get("azp") != self.provider.client_id:
            raise UpstreamError("The ID token was issued to another application.")
        if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
            claims["nonce"], nonce
        ):
            raise UpstreamError("The ID token does not belong to this sign-in.")
        return claims


def admission(provider: UpstreamProvider, claims: dict[str, Any]) -> str | None:
    """None when the provider's allow-lists admit this identity, else the reason."""
    email = claims.get("email")
    verified = claims.get("email_verified") is True
    if provider.allowed_email_domains:
        if not isinstance(email, str) or not verified or "@" not in email:
            return "email_not_verified"
        if email.rsplit("@", 1)[1].lower() not in provider.allowed_email_domains:
            return "domain_not_allowed"
    if provider.allowed_groups:
        groups = claims.get(provider.groups_claim)
        if not isinstance(groups, list) or not set(provider.allowed_groups) & {
            g for g in groups if isinstance(g, str)
        }:
            return "group_not_allowed"
    return None
