"""Tokens for downstream APIs, on behalf of the current caller (RFC 8693).

The MCP spec forbids passing the caller's token on to another API (no token
passthrough). A tool that calls one asks for a token of its own::

    downstream = DownstreamTokens(issuer=..., client_id="orders-mcp", client_secret=...)

    @server.tool()
    async def stock(order_id: str, ctx: Context) -> dict:
        token = await downstream.token_for(ctx, "https://inventory.example/api")
        ...  # Authorization: Bearer <token> to the inventory API only

The MCP server authenticates at the authorization server as its own client and exchanges
the access token the guard verified for this request (``subject_token``) for one whose
audience is the downstream API, as the server's exchange policy allows. Answers are cached
per caller and audience until ``refresh_before`` seconds before they expire; concurrent
calls for the same caller and audience share one exchange. The inbound token is read
from the request the guard verified and goes to the token endpoint only.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_plus

import httpx

from mcpward._clock import Clock, system_clock
from mcpward.errors import MCPWardError
from mcpward.guard._discovery import IssuerDiscoveryError, discover
from mcpward.guard._identity import Identity

TOKEN_EXCHANGE = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
MAX_CACHED = 10_000
MAX_ANSWER = 64 * 1024


class DownstreamTokenError(MCPWardError):
    """No downstream token could be had; the message never holds a token."""


class ExchangeRefused(DownstreamTokenError):
    """The authorization server refused the exchange (its OAuth ``error`` code): no policy
    for that audience, scopes not allowed, the caller's grant revoked ..."""

    def __init__(self, error: str, description: str | None, status: int) -> None:
        detail = f" ({description})" if description else ""
        super().__init__(f"token exchange refused: {error}{detail}")
        self.error = error
        self.description = description
        self.status = status


class ExchangeUnavailable(DownstreamTokenError):
    """The authorization server could not be reached or answered 5xx: retry later."""


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    expires_at: float


Secret = str | Callable[[], str]


class DownstreamTokens:
    """Exchanges the verified caller's token for downstream tokens, cached.

    ``client_secret`` may be a callable (re-read on every exchange, so a rotated secret
    file is picked up). Give the authorization server's ``issuer`` (its token endpoint is
    found by discovery) or its ``token_endpoint``."""

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: Secret,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        http: httpx.AsyncClient | None = None,
        refresh_before: float = 30.0,
        clock: Clock = system_clock,
    ) -> None:
        if issuer is None and token_endpoint is None:
            raise ValueError("give issuer or token_endpoint")
        self.client_id = client_id
        self._secret = client_secret
        self._issuer = issuer
        self._token_endpoint = token_endpoint
        self._http = http
        self._own_http = http is None
        self._refresh_before = refresh_before
        self._clock = clock
        self._cache: OrderedDict[tuple[str, ...], _Cached] = OrderedDict()
        self._pending: dict[tuple[str, ...], asyncio.Future[_Cached]] = {}

    async def aclose(self) -> None:
        if self._own_http and self._http is not None:
            await self._http.aclose()
            self._http = None

    async def token_for(self, source: Any, audience: str, scopes: Sequence[str] = ()) -> str:
        """A token for ``audience`` on behalf of the caller of the request ``source``
        stands for: a tool's ``Context``, a Starlette ``Request`` or an ASGI scope of a
        request the guard let through."""
        identity, subject_token = _caller(source)
        key = (
            identity.issuer,
            identity.subject,
            identity.client_id,
            identity.family or identity.jti or "",
            audience,
            " ".join(sorted(set(scopes))),
        )
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached.expires_at - self._refresh_before > now:
            self._cache.move_to_end(key)
            return cached.token
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._pending[key] = pending
            try:
                fresh = await self._exchange(subject_token, audience, scopes)
            except BaseException as exc:
                pending.set_exception(exc)
                pending.exception()  # retrieved: the waiters (if any) re-raise it
                raise
            finally:
                del self._pending[key]
            pending.set_result(fresh)
            self._remember(key, fresh)
            return fresh.token
        return (await asyncio.shield(pending)).token

    def _remember(self, key: tuple[str, ...], fresh: _Cached) -> None:
        self._cache[key] = fresh
        self._cache.move_to_end(key)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)

    async def _exchange(self, subject_token: str, audience: str, scopes: Sequence[str]) -> _Cached:
        http = self._client()
        form = {
            "grant_type": TOKEN_EXCHANGE,
            "subject_token": subject_token,
            "subject_token_type": ACCESS_TOKEN,
            "requested_token_type": ACCESS_TOKEN,
            "resource": audience,
        }
        if scopes:
            form["scope"] = " ".join(scopes)
        secret = self._secret() if callable(self._secret) else self._secret
        sent_at = self._clock()
        try:
            endpoint = await self._endpoint(http)
            response = await http.post(
                endpoint,
                data=form,
                auth=httpx.BasicAuth(_form_encoded(self.client_id), _form_encoded(secret)),
                headers={"accept": "application/json"},
            )
        except (httpx.HTTPError, IssuerDiscoveryError) as exc:
            raise ExchangeUnavailable(
                f"the authorization server is unreachable: {type(exc).__name__}"
            ) from None
        body = _json(response)
        if response.status_code >= 500 or response.status_code == 429:
            raise ExchangeUnavailable(f"the authorization server answered {response.status_code}")
        if response.status_code != 200:
            error = body.get("error")
            description = body.get("error_description")
            raise ExchangeRefused(
                error if isinstance(error, str) else "invalid_response",
                description[:200] if isinstance(description, str) else None,
                response.status_code,
            )
        token, lifetime = body.get("access_token"), body.get("expires_in")
        if not isinstance(token, str) or not isinstance(lifetime, int | float):
            raise ExchangeUnavailable("the token exchange answer has no access token")
        return _Cached(token, sent_at + float(lifetime))

    async def _endpoint(self, http: httpx.AsyncClient) -> str:
        if self._token_endpoint is None:
            assert self._issuer is not None
            metadata = await discover(self._issuer, http)
            endpoint = metadata.get("token_endpoint")
            if not isinstance(endpoint, str):
                raise IssuerDiscoveryError(f"{self._issuer} publishes no token_endpoint")
            self._token_endpoint = endpoint
        return self._token_endpoint

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(timeout=10.0, follow_redirects=False)
        return self._http


def _caller(source: Any) -> tuple[Identity, str]:
    """The identity the guard verified for this request, and the access token it came
    from (the request's own Authorization header)."""
    scope = _scope_of(source)
    identity = scope.get("mcpward.identity") if scope is not None else None
    if scope is None or not isinstance(identity, Identity):
        raise DownstreamTokenError("no request verified by the mcpward guard: no caller")
    values = [v for k, v in scope.get("headers", ()) if k == b"authorization"]
    scheme, _, token = bytes(values[0]).decode("latin-1").partition(" ") if values else ("", "", "")
    # A DPoP-bound token (RFC 9449) is exchanged too: the guard verified its proof, and
    # the authorization server judges the subject token, not who holds its key.
    if len(values) != 1 or scheme.lower() not in ("bearer", "dpop") or not token.strip():
        raise DownstreamTokenError("the request carries no access token to exchange")
    return identity, token.strip()


def _scope_of(source: Any) -> Mapping[str, Any] | None:
    if isinstance(source, Mapping):
        return source
    scope = getattr(source, "scope", None)  # a Starlette Request
    if isinstance(scope, Mapping):
        return scope
    try:
        request = source.request_context.request  # an mcp SDK Context
    except (AttributeError, ValueError):
        return None
    scope = getattr(request, "scope", None)
    return scope if isinstance(scope, Mapping) else None


def _form_encoded(value: str) -> str:
    """RFC 6749 §2.3.1: client_id and secret are form-urlencoded before Basic."""
    return quote_plus(value)


def _json(response: httpx.Response) -> dict[str, Any]:
    if len(response.content) > MAX_ANSWER:
        return {}
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
