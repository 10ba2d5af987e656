"""A person's client: authorization code + PKCE, refresh with rotation, step-up.

The access token stays in memory. The refresh token and the client registration are kept
in a `TokenStore` (the OS keychain by default), written before the access token they came
with is handed out, so a crash never leaves a spent refresh token in the store.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import sys
import webbrowser
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mcpward._clock import Clock, system_clock
from mcpward.client import _registration as reg
from mcpward.client._authorization_code import (
    AuthorizeHandler,
    authorization_url,
    await_redirect,
    check_response,
)
from mcpward.client._challenge import BearerChallenge, parse_bearer
from mcpward.client._discovery import Discovery, canonical_resource, discover, issuers_match, probe
from mcpward.client._flow import FlowAuth, Request, Response
from mcpward.client._loopback import LoopbackListener
from mcpward.client._pkce import Pkce
from mcpward.client._registration import Registration
from mcpward.client._token_endpoint import TokenSet, request_token
from mcpward.client._token_store import StoredSession, TokenStore, default_store, session_lock
from mcpward.client.errors import (
    AuthorizationError,
    InvalidClientError,
    InvalidGrantError,
    MetadataError,
    SignInRequired,
    StepUpLimitReached,
)

logger = logging.getLogger("mcpward.client")


async def open_browser(url: str) -> None:
    """Open the system browser, and print the URL too: on a remote shell the "browser"
    may be nothing, or a text browser, and the user can still copy the link."""
    opened = await asyncio.to_thread(webbrowser.open, url)
    lead = "If the browser did not open, visit" if opened else "Open this URL to sign in"
    print(f"{lead}:\n\n  {url}\n", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SessionInfo:
    """What `whoami` shows: never a token."""

    resource: str
    issuer: str
    client_id: str
    scope: str | None
    signed_in: bool
    access_token_expires_at: float | None


def _union(*scope_lists: Sequence[str] | None) -> list[str]:
    merged: dict[str, None] = {}
    for scopes in scope_lists:
        merged.update(dict.fromkeys(scopes or ()))
    return list(merged)


class HumanAuth(FlowAuth):
    """`httpx.Auth` / `httpx2.Auth` for a person signing in to one MCP server.

    Pass it to `httpx2.AsyncClient(auth=...)` and give that client to the mcp SDK's
    `streamable_http_client`. The first 401 starts discovery and a browser sign-in;
    later runs refresh silently from the stored refresh token.
    """

    def __init__(
        self,
        server_url: str,
        *,
        client_id: str | None = None,
        client_secret: str | None = None,
        client_metadata_url: str | None = None,
        client_name: str = "mcpward",
        scopes: Sequence[str] | None = None,
        store: TokenStore | None = None,
        authorize: AuthorizeHandler = open_browser,
        interactive: bool = True,
        login_timeout: float = 300.0,
        max_step_ups: int = 2,
        refresh_skew: float = 60.0,
        redirect_port: int = 0,
        http: httpx.AsyncClient | None = None,
        clock: Clock = system_clock,
        lock_dir: Path | None = None,
    ) -> None:
        if client_metadata_url is not None:
            parts = urlsplit(client_metadata_url)
            if parts.scheme != "https" or parts.path in ("", "/"):
                raise ValueError("client_metadata_url must be an https URL with a path")
        self.server_url = server_url
        self.key = canonical_resource(server_url)
        self.client_id = client_id
        self._client_secret = client_secret
        self.client_metadata_url = client_metadata_url
        self.client_name = client_name
        self.scopes = list(scopes) if scopes is not None else None
        self.store = store if store is not None else default_store()
        self.authorize = authorize
        self.interactive = interactive
        self.login_timeout = login_timeout
        self.max_step_ups = max_step_ups
        self.refresh_skew = refresh_skew
        self.redirect_port = redirect_port
        self.clock = clock
        self.lock_dir = lock_dir
        self._http = http
        self._owns_http = http is None
        self._discovery: Discovery | None = None
        self._challenge: BearerChallenge | None = None
        self._tokens: TokenSet | None = None
        self._registration: Registration | None = None
        self._lock: asyncio.Lock | None = None
        self._step_ups_in_a_row = 0

    # -- public coroutines -------------------------------------------------------------

    async def token(self) -> str:
        """A valid access token: from memory, by refresh, or (if interactive) by signing in."""
        async with self._guard():
            tokens = await self._usable_tokens()
            if tokens is None:
                tokens = await self._sign_in_or_fail(None)
            return tokens.access_token

    async def login(self, scopes: Sequence[str] | None = None) -> TokenSet:
        """Sign in through the browser now, whatever is stored."""
        async with self._guard():
            return await self._login(scopes)

    async def logout(self) -> None:
        """Revoke the refresh token where the server allows it (RFC 7009); forget the session."""
        async with self._guard():
            stored = self.store.load(self.key)
            if stored is not None and stored.refresh_token is not None:
                try:
                    discovery = await self._ensure_discovery()
                    endpoint = discovery.server.revocation_endpoint
                    if endpoint is not None:
                        form = {"token": stored.refresh_token, "token_type_hint": "refresh_token"}
                        headers: dict[str, str] = {}
                        stored.registration.auth().apply(form, headers, endpoint, self.clock())
                        await self._client().post(endpoint, data=form, headers=headers)
                except (httpx.HTTPError, MetadataError) as exc:
                    logger.warning("could not revoke the refresh token: %s", type(exc).__name__)
            self.store.delete(self.key)
            self._tokens = None
            self._registration = None

    async def session_info(self) -> SessionInfo | None:
        stored = self.store.load(self.key)
        if stored is None:
            return None
        tokens = self._tokens
        return SessionInfo(
            resource=stored.resource,
            issuer=stored.registration.issuer,
            client_id=stored.registration.client_id,
            scope=tokens.scope if tokens and tokens.scope else stored.scope,
            signed_in=stored.refresh_token is not None or tokens is not None,
            access_token_expires_at=tokens.expires_at if tokens else None,
        )

    # -- the httpx flow ----------------------------------------------------------------

    async def _flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        async with self._guard():
            tokens = await self._usable_tokens()
        sent = self._authorize_request(request, tokens)
        response = yield request
        renewed = False
        while True:
            challenge = parse_bearer(response.headers.get_list("www-authenticate"))
            if response.status_code == 401 and not renewed:
                renewed = True
                async with self._guard():
                    self._challenge = challenge
                    tokens = await self._after_401(sent, challenge)
            elif (
                response.status_code == 403
                and challenge is not None
                and challenge.error == "insufficient_scope"
            ):
                async with self._guard():
                    # Counts re-authorizations until a request succeeds again, so that a
                    # server that can never be satisfied does not loop us forever.
                    if self._step_ups_in_a_row >= self.max_step_ups:
                        raise StepUpLimitReached(
                            f"{self.key} still answers insufficient_scope after "
                            f"{self.max_step_ups} re-authorizations"
                        )
                    self._step_ups_in_a_row += 1
                    held = self._tokens.scopes if self._tokens else None
                    wanted = _union(held or self._last_requested, challenge.scopes)
                    tokens = await self._sign_in_or_fail(wanted, challenge)
            else:
                if response.status_code < 400:
                    self._step_ups_in_a_row = 0
                return
            sent = self._authorize_request(request, tokens)
            response = yield request

    def _authorize_request(self, request: Request, tokens: TokenSet | None) -> str | None:
        if tokens is None:
            request.headers.pop("Authorization", None)
            return None
        request.headers["Authorization"] = f"Bearer {tokens.access_token}"
        return tokens.access_token

    async def _after_401(self, sent: str | None, challenge: BearerChallenge | None) -> TokenSet:
        current = self._tokens
        if current is not None and current.access_token != sent and self._fresh(current):
            return current  # another task already renewed it
        self._tokens = None
        # The server may have moved to another authorization server: discover again.
        self._discovery = None
        await self._ensure_discovery(challenge)
        # A rejected access token may be revoked or signed with a retired key; a refresh
        # is cheaper than a sign-in. With nothing stored, _refresh returns None at once.
        tokens = await self._refresh()
        return tokens or await self._sign_in_or_fail(None, challenge)

    # -- token sources -----------------------------------------------------------------

    def _guard(self) -> asyncio.Lock:
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

    def _fresh(self, tokens: TokenSet) -> bool:
        due = tokens.refresh_due(self.refresh_skew)
        return due is None or self.clock() < due

    async def _usable_tokens(self) -> TokenSet | None:
        """Memory, else a refresh from the stored session; never interactive."""
        if self._tokens is not None and self._fresh(self._tokens):
            return self._tokens
        stored = self.store.load(self.key)
        if stored is None or stored.refresh_token is None:
            return None
        try:
            await self._ensure_discovery()
        except MetadataError as exc:
            logger.warning("cannot refresh the session for %s: %s", self.key, exc)
            return None
        return await self._refresh()

    async def _sign_in_or_fail(
        self, scopes: Sequence[str] | None, challenge: BearerChallenge | None = None
    ) -> TokenSet:
        if not self.interactive:
            raise SignInRequired(f"sign in first: mcpward login {self.server_url}")
        return await self._login(scopes, challenge)

    async def _ensure_discovery(self, challenge: BearerChallenge | None = None) -> Discovery:
        if self._discovery is None:
            http = self._client()
            if challenge is None:
                challenge = await probe(http, self.server_url)
                self._challenge = challenge or self._challenge
            self._discovery = await discover(http, self.server_url, challenge)
        return self._discovery

    async def _refresh(self) -> TokenSet | None:
        discovery = await self._ensure_discovery()
        async with session_lock(self.key, self.lock_dir):
            # Re-read under the lock: another process may have rotated the token meanwhile.
            stored = self.store.load(self.key)
            if stored is None or stored.refresh_token is None:
                return None
            if not issuers_match(stored.registration.issuer, discovery.server.issuer):
                logger.info("%s moved to another authorization server; signing in again", self.key)
                self.store.delete(self.key)
                return None
            try:
                tokens = await request_token(
                    self._client(),
                    discovery.server.token_endpoint,
                    {
                        "grant_type": "refresh_token",
                        "refresh_token": stored.refresh_token,
                        "resource": discovery.resource,
                    },
                    stored.registration.auth(),
                    clock=self.clock,
                )
            except InvalidClientError:
                # The registration itself is gone (a DCR client cleaned up, a secret
                # expired): forget it, so the sign-in registers afresh.
                logger.info("the client registration for %s is no longer valid", self.key)
                self.store.delete(self.key)
                self._registration = None
                return None
            except InvalidGrantError:
                # Expired, revoked, or its family was revoked: a fresh sign-in, not a crash.
                logger.info("the stored session for %s is no longer valid", self.key)
                self.store.save(self.key, replace(stored, refresh_token=None))
                return None
            self.store.save(
                self.key,
                replace(
                    stored,
                    refresh_token=tokens.refresh_token or stored.refresh_token,
                    scope=tokens.scope or stored.scope,
                ),
            )
        self._registration = stored.registration
        self._tokens = tokens
        return tokens

    # -- browser sign-in ---------------------------------------------------------------

    _last_requested: list[str] | None = None

    def _login_scopes(
        self,
        discovery: Discovery,
        requested: Sequence[str] | None,
        challenge: BearerChallenge | None,
    ) -> list[str]:
        # MCP 2025-11-25 "Scope Selection Strategy": the challenge's scope, else what the
        # resource lists as supported, else none at all.
        prm = discovery.resource_metadata
        scopes = list(
            requested
            or self.scopes
            or (challenge.scopes if challenge else None)
            or (prm.scopes_supported if prm else None)
            or []
        )
        # SEP-2207: ask for offline_access where the server offers it, to get a refresh token.
        if discovery.server.supports_offline_access and "offline_access" not in scopes:
            scopes.append("offline_access")
        return scopes

    async def _login(
        self, requested: Sequence[str] | None, challenge: BearerChallenge | None = None
    ) -> TokenSet:
        challenge = challenge or self._challenge
        discovery = await self._ensure_discovery(challenge)
        server = discovery.server
        if server.authorization_endpoint is None:
            raise MetadataError(f"{server.issuer} publishes no authorization_endpoint")
        if server.published and "S256" not in (server.code_challenge_methods_supported or []):
            # MCP: without advertised S256 support a client must not proceed.
            raise AuthorizationError(f"{server.issuer} does not advertise PKCE S256; refusing")
        scopes = self._login_scopes(discovery, requested, challenge)
        self._last_requested = [s for s in scopes if s != "offline_access"]
        stored = self.store.load(self.key)
        preferred_port = 0
        if self.redirect_port:
            preferred_port = self.redirect_port
        elif stored is not None and stored.registration.redirect_uris:
            preferred_port = urlsplit(stored.registration.redirect_uris[0]).port or 0
        async with LoopbackListener(preferred_port) as listener:
            redirect_uri = listener.redirect_uri
            registration = await self._registration_for(
                discovery, redirect_uri, " ".join(scopes) or None, stored
            )
            pkce, state = Pkce(), secrets.token_urlsafe(32)
            url = authorization_url(
                server.authorization_endpoint,
                client_id=registration.client_id,
                redirect_uri=redirect_uri,
                pkce=pkce,
                state=state,
                resource=discovery.resource,
                scopes=scopes,
            )
            result = await await_redirect(self.authorize, url, listener, self.login_timeout)
        code = check_response(result, state, server)
        tokens = await request_token(
            self._client(),
            server.token_endpoint,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": pkce.verifier,
                "resource": discovery.resource,
            },
            registration.auth(),
            clock=self.clock,
        )
        async with session_lock(self.key, self.lock_dir):
            self.store.save(
                self.key,
                StoredSession(
                    resource=discovery.resource,
                    registration=registration,
                    refresh_token=tokens.refresh_token,
                    scope=tokens.scope or " ".join(scopes) or None,
                ),
            )
        self._registration = registration
        self._tokens = tokens
        return tokens

    async def _registration_for(
        self,
        discovery: Discovery,
        redirect_uri: str,
        scope: str | None,
        stored: StoredSession | None,
    ) -> Registration:
        server = discovery.server
        if self.client_id is not None:
            return reg.preregistered(server, self.client_id, self._client_secret, redirect_uri)
        for known in (self._registration, stored.registration if stored else None):
            if known is not None and issuers_match(known.issuer, server.issuer):
                expires = known.client_secret_expires_at
                if expires is None or expires > self.clock() + 60:
                    return known
        if self.client_metadata_url is not None and server.client_id_metadata_document_supported:
            return reg.from_metadata_document(server, self.client_metadata_url)
        return await reg.register_dynamically(
            self._client(),
            server,
            client_name=self.client_name,
            redirect_uri=redirect_uri,
            scope=scope,
        )

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        return self._http

    async def _aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
