"""An agent's client: client_credentials, cached until shortly before expiry.

A request inside the last `refresh_before` seconds of a token's life still goes out with
that token while one background task fetches the next; only a caller holding no valid
token waits, and all such callers wait on the same request. Transient token endpoint
failures (network errors, 5xx, 429) are retried with exponential backoff. Where the
authorization server supports DPoP (RFC 9449), the agent holds a key for its lifetime and
every token request and MCP request carries a proof (`_dpop.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import httpx

from mcpward._clock import Clock, system_clock
from mcpward.client import _registration as reg
from mcpward.client._challenge import parse_bearer
from mcpward.client._discovery import (
    ServerMetadata,
    canonical_resource,
    discover,
    fetch_server_metadata,
    probe,
)
from mcpward.client._dpop import DPoP, authorize, dpop_for
from mcpward.client._flow import FlowAuth, Request, Response, new_http_client
from mcpward.client._secret_source import SecretSource, StaticSecret, read_secret
from mcpward.client._token_endpoint import (
    AuthMethod,
    ClientAuth,
    SigningAlgorithm,
    TokenSet,
    request_token,
)
from mcpward.client.errors import InvalidClientError, TokenEndpointError

logger = logging.getLogger("mcpward.client")

JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def _transient(exc: Exception) -> bool:
    if isinstance(exc, httpx.TransportError):
        return True
    status = exc.status_code if isinstance(exc, TokenEndpointError) else None
    return status is not None and (status >= 500 or status == 429)


def _fingerprint(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class AgentAuth(FlowAuth):
    """`httpx.Auth` / `httpx2.Auth` for a process acting as itself (no user).

    Give it the MCP server URL (the authorization server is discovered) or an `issuer` /
    `token_endpoint`, a `client_id`, and either `client_secret` or `private_key`
    (`private_key_jwt`, RFC 7523). Secrets are `SecretSource`s so that a rotated secret
    is picked up without a restart.

    Or `workload_token`, a JWT the platform issues to the workload (a Kubernetes projected
    service-account token file, a CI job's OIDC token): no secret at all. It is sent as
    the JWT bearer grant's assertion (RFC 7523 §2.1, MCP SEP-1933) and read again for
    every token, so a file the platform rotates is always current.
    """

    def __init__(
        self,
        server_url: str | None = None,
        *,
        client_id: str,
        client_secret: SecretSource | str | None = None,
        private_key: SecretSource | None = None,
        workload_token: SecretSource | str | None = None,
        signing_algorithm: SigningAlgorithm = "RS256",
        auth_method: AuthMethod | None = None,
        scopes: Sequence[str] | None = None,
        resource: str | None = None,
        issuer: str | None = None,
        token_endpoint: str | None = None,
        refresh_before: float = 60.0,
        max_attempts: int = 5,
        backoff: float = 0.5,
        clock: Clock = system_clock,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        http: httpx.AsyncClient | None = None,
        dpop: bool = True,
    ) -> None:
        if server_url is None and issuer is None and token_endpoint is None:
            raise ValueError("give server_url, issuer or token_endpoint")
        if isinstance(client_secret, str):
            client_secret = StaticSecret(client_secret)
        self.server_url = server_url
        self.client_id = client_id
        self._secret = client_secret
        self._private_key = private_key
        if isinstance(workload_token, str):
            workload_token = StaticSecret(workload_token)
        self._workload_token = workload_token
        self.signing_algorithm = signing_algorithm
        self.auth_method = auth_method
        self.scopes = list(scopes) if scopes is not None else None
        self.resource = resource
        self.issuer = issuer
        self.token_endpoint = token_endpoint
        self.refresh_before = refresh_before
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep
        self._http = http
        self._owns_http = http is None
        self._server: ServerMetadata | None = None
        self._extra_scopes: list[str] = []
        self._tokens: TokenSet | None = None
        self._inflight: asyncio.Task[TokenSet] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._last_credential: str | None = None
        self.use_dpop = dpop  # when the authorization server supports it
        self._dpop: DPoP | None = None
        self.token_requests = 0  # how many times the token endpoint was called; for operators

    # -- public --------------------------------------------------------------------------

    async def token(self) -> str:
        """A valid access token; never waits while the cached one is still valid."""
        return (await self._token_set()).access_token

    async def _token_set(self) -> TokenSet:
        tokens, now = self._tokens, self.clock()
        if tokens is not None and not tokens.expires_within(0, now):
            due = tokens.refresh_due(self.refresh_before)
            if due is not None and due <= now:
                self._start_fetch()
            return tokens
        task = self._start_fetch()
        return await asyncio.shield(task)

    @property
    def cached(self) -> TokenSet | None:
        return self._tokens

    # -- the httpx flow ------------------------------------------------------------------

    async def _flow(self, request: Request) -> AsyncGenerator[Request, Response]:
        tokens = await self._token_set()
        token = tokens.access_token
        authorize(request, tokens.token_type, token, self._dpop)
        response = yield request
        challenge = parse_bearer(response.headers.get_list("www-authenticate"))
        if self._dpop is not None and self._dpop.nonce_challenge(str(request.url), response):
            pass  # the resource's nonce (RFC 9449 §9): the same token, a proof with it
        elif response.status_code == 401:
            # Revoked or signed with a retired key: one fresh token, one retry.
            self._drop(token)
        elif (
            response.status_code == 403
            and challenge is not None
            and challenge.error == "insufficient_scope"
            and challenge.scopes
            and not set(challenge.scopes) <= set(self._granted())
        ):
            self._extra_scopes = list(dict.fromkeys([*self._extra_scopes, *challenge.scopes]))
            self._drop(token)
        else:
            return
        tokens = await self._token_set()
        authorize(request, tokens.token_type, tokens.access_token, self._dpop)
        yield request

    # -- fetching ------------------------------------------------------------------------

    def _granted(self) -> list[str]:
        return self._tokens.scopes if self._tokens else []

    def _drop(self, token: str) -> None:
        if self._tokens is not None and self._tokens.access_token == token:
            self._tokens = None

    def _start_fetch(self) -> asyncio.Task[TokenSet]:
        if self._inflight is None or self._inflight.done():
            self._inflight = asyncio.create_task(self._fetch_with_retries())
            self._inflight.add_done_callback(_log_failure)
        return self._inflight

    async def _fetch_with_retries(self) -> TokenSet:
        reread = False
        for attempt in range(self.max_attempts):
            try:
                return await self._fetch()
            except InvalidClientError:
                # A rotated secret: the source may already hold the new one.
                if reread or self._last_credential == await self._credential_fingerprint():
                    raise
                reread = True
            except (httpx.TransportError, TokenEndpointError) as exc:
                if not _transient(exc) or attempt == self.max_attempts - 1:
                    raise
                delay = self.backoff * 2**attempt
                logger.warning(
                    "token request failed (%s); retrying in %.1f s",
                    type(exc).__name__ if isinstance(exc, httpx.TransportError) else exc.error,
                    delay,
                )
                await self.sleep(delay)
        raise AssertionError("unreachable")

    async def _credential_fingerprint(self) -> str | None:
        source = self._private_key or self._secret
        try:
            return _fingerprint(await read_secret(source)) if source is not None else None
        except LookupError:
            return None

    async def _fetch(self) -> TokenSet:
        server = await self._metadata()
        client = await self._client_auth(server)
        self._last_credential = _fingerprint(client.private_key_pem or client.client_secret or "")
        scopes = list(dict.fromkeys([*(self.scopes or []), *self._extra_scopes]))
        if self._dpop is None:
            supported = server.dpop_signing_alg_values_supported
            self._dpop = dpop_for(supported, enabled=self.use_dpop)
        self.token_requests += 1
        tokens = await request_token(
            self._client(),
            server.token_endpoint,
            await self._grant(server, " ".join(scopes) or None),
            client,
            clock=self.clock,
            assertion_audience=server.issuer if server.published else None,
            dpop=self._dpop,
        )
        self._tokens = tokens
        self._schedule_refresh(tokens)
        return tokens

    def _schedule_refresh(self, tokens: TokenSet) -> None:
        """Wake up ahead of expiry even when no request comes (an idle agent, a long-lived
        stream), so the next request never waits for the token endpoint."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        due = tokens.refresh_due(self.refresh_before)
        if due is not None:
            delay = max(due - self.clock(), 0.0)
            self._timer = asyncio.get_running_loop().call_later(delay, self._start_fetch)

    async def _grant(self, server: ServerMetadata, scope: str | None) -> dict[str, str | None]:
        """The grant to send; subclasses swap client_credentials for another grant."""
        if self._workload_token is not None:
            return {
                "grant_type": JWT_BEARER,
                "assertion": await read_secret(self._workload_token),
                "scope": scope,
                "resource": self.resource,
            }
        return {"grant_type": "client_credentials", "scope": scope, "resource": self.resource}

    async def _client_auth(self, server: ServerMetadata) -> ClientAuth:
        if self._private_key is not None:
            return ClientAuth(
                self.client_id,
                "private_key_jwt",
                private_key_pem=await read_secret(self._private_key),
                signing_algorithm=self.signing_algorithm,
            )
        secret = await read_secret(self._secret) if self._secret is not None else None
        method: AuthMethod = self.auth_method or (reg.secret_method(server) if secret else "none")
        return ClientAuth(self.client_id, method, secret)

    async def _metadata(self) -> ServerMetadata:
        if self._server is not None:
            return self._server
        http = self._client()
        if self.token_endpoint is not None:
            issuer = self.issuer or self.token_endpoint
            self._server = ServerMetadata(
                issuer=issuer,
                authorization_endpoint=None,
                token_endpoint=self.token_endpoint,
                published=False,
            )
        elif self.issuer is not None:
            self._server = await fetch_server_metadata(http, self.issuer, legacy=False)
        else:
            assert self.server_url is not None
            challenge = await probe(http, self.server_url)
            discovery = await discover(http, self.server_url, challenge)
            self._server = discovery.server
            if self.resource is None:
                self.resource = discovery.resource
            if self.scopes is None and challenge is not None:
                # Least privilege: what the resource's challenge asks for, never every scope
                # it lists as supported; with neither, the server applies its defaults.
                self.scopes = challenge.scopes
        if self.resource is None and self.server_url is not None:
            self.resource = canonical_resource(self.server_url)
        return self._server

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = new_http_client()
        return self._http

    async def _aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._inflight is not None and not self._inflight.done():
            self._inflight.cancel()
            with contextlib.suppress(BaseException):
                await self._inflight
        if self._owns_http and self._http is not None:
            await self._http.aclose()
            self._http = None


def _log_failure(task: asyncio.Task[TokenSet]) -> None:
    # Retrieve the exception so a failed background refresh is logged once, by type only.
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.warning("background token request failed: %s", exc)
