"""The interactive half of a person's client: one browser sign-in, start to finish.

Which scopes to ask for, which client identity to use at this authorization server, the
loopback listener (RFC 8252 §7.3), the browser, the checks on the redirect, and the
authorization code exchange with the PKCE verifier. What to do with the tokens afterwards
(storage, refresh, step-up) is `HumanAuth`'s business.
"""

from __future__ import annotations

import asyncio
import secrets
import sys
import webbrowser
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx

from mcpward._clock import Clock
from mcpward.client import _registration as reg
from mcpward.client._authorization_code import (
    AuthorizeHandler,
    authorization_url,
    await_redirect,
    check_response,
)
from mcpward.client._challenge import BearerChallenge
from mcpward.client._discovery import Discovery
from mcpward.client._dpop import DPoP
from mcpward.client._loopback import LoopbackListener
from mcpward.client._pkce import Pkce
from mcpward.client._registration import Registration
from mcpward.client._token_endpoint import TokenSet, request_token
from mcpward.client.errors import AuthorizationError, MetadataError


async def open_browser(url: str) -> None:
    """Open the system browser, and print the URL too: on a remote shell the "browser"
    may be nothing, or a text browser, and the user can still copy the link."""
    opened = await asyncio.to_thread(webbrowser.open, url)
    lead = "If the browser did not open, visit" if opened else "Open this URL to sign in"
    print(f"{lead}:\n\n  {url}\n", file=sys.stderr, flush=True)


def login_scopes(
    discovery: Discovery,
    requested: Sequence[str] | None,
    challenge: BearerChallenge | None,
) -> list[str]:
    """MCP 2025-11-25 "Scope Selection Strategy": what the caller asks for, else the
    challenge's scope, else what the resource lists as supported, else none at all; plus
    `offline_access` where the server offers it, to get a refresh token (SEP-2207)."""
    prm = discovery.resource_metadata
    scopes = list(
        requested
        or (challenge.scopes if challenge else None)
        or (prm.scopes_supported if prm else None)
        or []
    )
    if discovery.server.supports_offline_access and "offline_access" not in scopes:
        scopes.append("offline_access")
    return scopes


def union_scopes(*scope_lists: Sequence[str] | None) -> list[str]:
    """The scopes of every list, each once, in order of first appearance (step-up)."""
    merged: dict[str, None] = {}
    for scopes in scope_lists:
        merged.update(dict.fromkeys(scopes or ()))
    return list(merged)


@dataclass(frozen=True)
class SignedIn:
    tokens: TokenSet
    registration: Registration
    scopes: list[str]


@dataclass(frozen=True)
class BrowserSignIn:
    """How this person's client signs in: the client identity it presents and how it gets
    the browser to the authorization server."""

    authorize: AuthorizeHandler
    timeout: float
    clock: Clock
    client_name: str = "mcpward"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    client_metadata_url: str | None = None
    redirect_port: int = 0

    async def run(
        self,
        http: httpx.AsyncClient,
        discovery: Discovery,
        scopes: list[str],
        known: Sequence[Registration],
        dpop: DPoP | None = None,
    ) -> SignedIn:
        """Sign in once. `known` are registrations already held (in memory, in the store);
        one is reused only if it was made at this very authorization server. With `dpop`
        the code and the tokens are bound to its key (RFC 9449 §10, §5)."""
        server = discovery.server
        if server.authorization_endpoint is None:
            raise MetadataError(f"{server.issuer} publishes no authorization_endpoint")
        if server.published and "S256" not in (server.code_challenge_methods_supported or []):
            # MCP: without advertised S256 support a client must not proceed.
            raise AuthorizationError(f"{server.issuer} does not advertise PKCE S256; refusing")
        usable = [k for k in known if k.issuer == server.issuer]
        async with LoopbackListener(self._preferred_port(usable)) as listener:
            redirect_uri = listener.redirect_uri
            registration = await self._registration(http, discovery, redirect_uri, usable)
            pkce, state = Pkce(), secrets.token_urlsafe(32)
            url = authorization_url(
                server.authorization_endpoint,
                client_id=registration.client_id,
                redirect_uri=redirect_uri,
                pkce=pkce,
                state=state,
                resource=discovery.resource,
                scopes=scopes,
                dpop_jkt=dpop.jkt if dpop is not None else None,
            )
            result = await await_redirect(self.authorize, url, listener, self.timeout)
        code = check_response(result, state, server)
        tokens = await request_token(
            http,
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
            dpop=dpop,
        )
        return SignedIn(tokens, registration, scopes)

    def _preferred_port(self, known: Sequence[Registration]) -> int:
        # The port registered before, so a registration bound to one redirect URI still fits.
        if self.redirect_port:
            return self.redirect_port
        for registration in known:
            if registration.redirect_uris:
                return httpx.URL(registration.redirect_uris[0]).port or 0
        return 0

    async def _registration(
        self,
        http: httpx.AsyncClient,
        discovery: Discovery,
        redirect_uri: str,
        known: Sequence[Registration],
    ) -> Registration:
        """MCP 2025-11-25 client registration order: pre-registered, one held already for
        this authorization server, a Client ID Metadata Document, then DCR (RFC 7591)."""
        server = discovery.server
        if self.client_id is not None:
            return reg.preregistered(server, self.client_id, self.client_secret, redirect_uri)
        for registration in known:
            expires = registration.client_secret_expires_at
            if expires is None or expires > self.clock() + 60:
                return registration
        if self.client_metadata_url is not None and server.client_id_metadata_document_supported:
            return reg.from_metadata_document(server, self.client_metadata_url)
        return await reg.register_dynamically(
            http, server, client_name=self.client_name, redirect_uri=redirect_uri
        )
