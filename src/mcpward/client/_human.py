"""A person's client: the session behind the sign-in — refresh with rotation, step-up, storage.

The access token stays in memory. The refresh token and the client registration are kept
in a `TokenStore` (the OS keychain by default) under the MCP server's URL *and* its
authorization server's issuer, written before the access token they came with is handed
out, so a crash never leaves a spent refresh token in the store, and a server that moves
to another authorization server never has the old one's credentials presented there
(SEP-2352). Store calls run on a worker thread: a keychain may wait for an unlock prompt.
The browser sign-in itself is `_sign_in.BrowserSignIn`. Where the authorization server
supports DPoP (RFC 9449), the session has a key of its own, stored with the refresh token
it binds, and every request carries a proof (`_dpop.py`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from mcpward._clock import Clock, system_clock
from mcpward.client._authorization_code import AuthorizeHandler
from mcpward.client._challenge import BearerChallenge, parse_bearer
from mcpward.client._discovery import Discovery, canonical_resource, discover, probe
from mcpward.client._dpop import DPoP, authorize, dpop_for
from mcpward.client._flow import FlowAuth, Request, Response, new_http_client
from mcpward.client._registration import Registration
from mcpward.client._sign_in import BrowserSignIn, login_scopes, open_browser, union_scopes
from mcpward.client._token_endpoint import TokenSet, request_token
from mcpward.client._token_store import (
    OffLoopStore,
    StoredSession,
    TokenStore,
    default_store,
    session_key,
    session_lock,
)
from mcpward.client.errors import (
    InvalidClientError,
    InvalidGrantError,
    MetadataError,
    SignInRequired,
    StepUpLimitReached,
)

logger = logging.getLogger("mcpward.client")


@dataclass(frozen=True)
class SessionInfo:
    """What `whoami` shows: never a token."""

    resource: str
    issuer: str
    client_id: str
    scope: str | None
    signed_in: bool
    access_token_expires_at: float | None


class HumanAuth(FlowAuth):
    """`httpx.Auth` / `httpx2.Auth` for a person signing in to one MCP server.

    Pass it to `httpx2.AsyncClient(auth=...)` and give that client to the mcp SDK's
    `streamable_http_client`. The first 401 starts discovery and a browser sign-in;
    later runs refresh silently from the stored refresh token.

    Call `await auth.token()` before opening the SDK's `Client`: in its default
    `mode="auto"` the SDK (2.3) allows its `server/discover` request ten seconds, a sign-in
    inside it included, and then falls back to the pre-2026 initialize handshake, so a
    person who takes longer in the browser would get a 2026-07-28 server in legacy mode.
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
        dpop: bool = True,
    ) -> None:
        if client_metadata_url is not None:
            parts = urlsplit(client_metadata_url)
            if parts.scheme != "https" or parts.path in ("", "/"):
                raise ValueError("client_metadata_url must be an https URL with a path")
        self.server_url = server_url
        self.key = canonical_resource(server_url)
        self.client_id = client_id
        self.scopes = list(scopes) if scopes is not None else None
        self.store = store if store is not None else default_store()
        self._store = OffLoopStore(self.store)
        self.interactive = interactive
        self.max_step_ups = max_step_ups
        self.refresh_skew = refresh_skew
        self.clock = clock
        self.lock_dir = lock_dir
        self._sign_in = BrowserSignIn(
            authorize=authorize,
            timeout=login_timeout,
            clock=clock,
            client_name=client_name,
            client_id=client_id,
            client_secret=client_secret,
            client_metadata_url=client_metadata_url,
            redirect_port=redirect_port,
        )
        self._http = http
        self._owns_http = http is None
        self._discovery: Discovery | None = None
        self._challenge: BearerChallenge | None = None
        self._tokens: TokenSet | None = None
        self._registration: Registration | None = None
        self._last_requested: list[str] | None = None
        self._lock: asyncio.Lock | None = None
        self._step_ups_in_a_row = 0
        self.use_dpop = dpop  # when the authorization server supports it
        self._dpop: DPoP | None = None

    @property
    def session_key(self) -> str:
        """Where this session lives in the store; known once the authorization server is."""
        if self._discovery is None:
            raise RuntimeError("the authorization server is not discovered yet")
        return session_key(self.key, self._discovery.server.issuer)

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
        """Revoke the refresh token where the server allows it (RFC 7009); forget the session.

        Finding the session needs the authorization server's issuer, so the MCP server
        must be reachable; otherwise `MetadataError`, and nothing is forgotten."""
        async with self._guard():
            discovery = await self._ensure_discovery()
            key = self.session_key
            stored = await self._load(key)
            endpoint = discovery.server.revocation_endpoint
            if stored is not None and stored.refresh_token is not None and endpoint is not None:
                form = {"token": stored.refresh_token, "token_type_hint": "refresh_token"}
                headers: dict[str, str] = {}
                stored.registration.auth().apply(form, headers, endpoint, self.clock())
                try:
                    await self._client().post(endpoint, data=form, headers=headers)
                except httpx.HTTPError as exc:
                    logger.warning("could not revoke the refresh token: %s", type(exc).__name__)
            await self._store.delete(key)
            self._tokens = None
            self._registration = None

    async def session_info(self) -> SessionInfo | None:
        """The stored session, or None when there is none (or the server is unreachable)."""
        try:
            await self._ensure_discovery()
        except MetadataError:
            return None
        stored = await self._load(self.session_key)
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
            # Before the first 401 nothing is discovered yet; the server's challenge then
            # says where to look, so the first request goes out as it is.
            tokens = await self._usable_tokens(discover=False)
        sent = self._authorize_request(request, tokens)
        response = yield request
        renewed = nonce_retried = stepped_up = False
        while True:
            challenge = parse_bearer(response.headers.get_list("www-authenticate"))
            dpop = self._dpop
            if dpop and not nonce_retried and dpop.nonce_challenge(str(request.url), response):
                nonce_retried = True  # the resource's nonce (RFC 9449 §9): one more proof
            elif response.status_code == 401 and not renewed:
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
                    # At most max_step_ups until a stepped-up request succeeds (no loop
                    # with a server that is never satisfied); none for scopes already held.
                    held = self._tokens.scopes if self._tokens else None
                    if self._step_ups_in_a_row >= self.max_step_ups or (
                        held and challenge.scopes and set(challenge.scopes) <= set(held)
                    ):
                        raise StepUpLimitReached(
                            f"{self.key} still answers insufficient_scope after "
                            f"{self._step_ups_in_a_row} re-authorization(s)"
                        )
                    self._step_ups_in_a_row += 1
                    stepped_up = True
                    wanted = union_scopes(held or self._last_requested, challenge.scopes)
                    tokens = await self._sign_in_or_fail(wanted, challenge)
            else:
                if stepped_up and response.status_code < 400:
                    self._step_ups_in_a_row = 0
                return
            sent = self._authorize_request(request, tokens)
            response = yield request

    def _authorize_request(self, request: Request, tokens: TokenSet | None) -> str | None:
        if tokens is None:
            request.headers.pop("Authorization", None)
            return None
        authorize(request, tokens.token_type, tokens.access_token, self._dpop)
        return tokens.access_token

    async def _after_401(self, sent: str | None, challenge: BearerChallenge | None) -> TokenSet:
        current = self._tokens
        if current is not None and current.access_token != sent and self._fresh(current):
            return current  # another task already renewed it
        self._tokens = None
        # The server may have moved to another authorization server: discover again. The
        # session key then names the new issuer, so nothing of the old one is presented.
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

    async def _usable_tokens(self, *, discover: bool = True) -> TokenSet | None:
        """Memory, else a refresh from the stored session; never interactive. The session's
        key names the issuer, so without discovery (`discover=False`) nothing is looked up."""
        if self._tokens is not None and self._fresh(self._tokens):
            return self._tokens
        if self._discovery is None and not discover:
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

    async def _load(self, key: str) -> StoredSession | None:
        issuer = self._discovery.server.issuer if self._discovery is not None else None
        return await self._store.load_or_adopt(key, self.key, issuer)

    async def _refresh(self) -> TokenSet | None:
        discovery = await self._ensure_discovery()
        key = self.session_key
        async with session_lock(key, self.lock_dir, self.store):
            # Re-read under the lock: another process may have rotated the token meanwhile.
            stored = await self._load(key)
            if stored is None or stored.refresh_token is None:
                return None
            supported = discovery.server.dpop_signing_alg_values_supported
            dpop = dpop_for(supported, stored.dpop_key, enabled=self.use_dpop)
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
                    dpop=dpop,
                )
            except InvalidClientError:
                # The registration itself is gone (a DCR client cleaned up, a secret
                # expired): forget it, so the sign-in registers afresh.
                logger.info("the client registration for %s is no longer valid", self.key)
                await self._store.delete(key)
                self._registration = None
                return None
            except InvalidGrantError:
                # Expired, revoked, or its family was revoked: a fresh sign-in, not a crash.
                logger.info("the stored session for %s is no longer valid", self.key)
                await self._store.save(key, replace(stored, refresh_token=None))
                return None
            await self._store.save(
                key,
                replace(
                    stored,
                    refresh_token=tokens.refresh_token or stored.refresh_token,
                    scope=tokens.scope or stored.scope,
                    dpop_key=dpop.stored() if dpop else None,
                ),
            )
        self._registration, self._tokens, self._dpop = stored.registration, tokens, dpop
        return tokens

    # -- browser sign-in ---------------------------------------------------------------

    async def _login(
        self, requested: Sequence[str] | None, challenge: BearerChallenge | None = None
    ) -> TokenSet:
        challenge = challenge or self._challenge
        discovery = await self._ensure_discovery(challenge)
        key = self.session_key
        scopes = login_scopes(discovery, requested or self.scopes, challenge)
        self._last_requested = [s for s in scopes if s != "offline_access"]
        stored = await self._load(key)
        known = [r for r in (self._registration, stored.registration if stored else None) if r]
        # The session's key, kept across a step-up; a new one for a new session.
        held = self._dpop.stored() if self._dpop else stored.dpop_key if stored else None
        supported = discovery.server.dpop_signing_alg_values_supported
        dpop = dpop_for(supported, held, enabled=self.use_dpop)
        signed_in = await self._sign_in.run(self._client(), discovery, scopes, known, dpop)
        tokens = signed_in.tokens
        async with session_lock(key, self.lock_dir, self.store):
            await self._store.save(
                key,
                StoredSession(
                    resource=discovery.resource,
                    registration=signed_in.registration,
                    refresh_token=tokens.refresh_token,
                    scope=tokens.scope or " ".join(scopes) or None,
                    dpop_key=dpop.stored() if dpop else None,
                ),
            )
        self._registration, self._tokens, self._dpop = signed_in.registration, tokens, dpop
        return tokens

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = new_http_client()
        return self._http

    async def _aclose(self) -> None:
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None
