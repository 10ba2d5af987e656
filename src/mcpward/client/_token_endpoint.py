"""Calling the token endpoint (RFC 6749 §3.2) with each client authentication method.

`none` (public clients), `client_secret_basic`, `client_secret_post` and `private_key_jwt`
(RFC 7523 §2.2, signed with joserfc), each with a DPoP proof when the session has a key
(RFC 9449 §5; a ``use_dpop_nonce`` answer is retried once with the server's nonce, §8).
Responses become a `TokenSet` whose repr hides secrets.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, TypeVar, get_args
from urllib.parse import quote

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey, RSAKey

from mcpward._clock import Clock, system_clock
from mcpward.client._dpop import DPoP
from mcpward.client.errors import TokenEndpointError, token_error

AuthMethod = Literal["none", "client_secret_basic", "client_secret_post", "private_key_jwt"]
AUTH_METHODS: tuple[AuthMethod, ...] = get_args(AuthMethod)

SigningAlgorithm = Literal[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"
]
"""JWS algorithms a client assertion (private_key_jwt, RFC 7523) may be signed with."""
SIGNING_ALGORITHMS: tuple[SigningAlgorithm, ...] = get_args(SigningAlgorithm)

TokenType = Literal["Bearer", "DPoP"]
"""Token types this client accepts: bearer tokens (RFC 6750) and DPoP-bound ones (RFC 9449),
the latter only in answer to a request that carried a proof."""

_L = TypeVar("_L", bound=str)


def one_of(value: object, members: tuple[_L, ...], what: str) -> _L:
    """`value` narrowed to one of a Literal's `members`; ValueError naming `what` otherwise."""
    for member in members:
        if value == member:
            return member
    raise ValueError(f"unsupported {what} {value!r}; expected one of {', '.join(members)}")


_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_ASSERTION_LIFETIME = 60


@dataclass(frozen=True)
class TokenSet:
    """A token response. `expires_at` is absolute (epoch seconds), from our clock."""

    access_token: str = field(repr=False)
    token_type: TokenType = "Bearer"
    expires_at: float | None = None
    scope: str | None = None
    refresh_token: str | None = field(default=None, repr=False)
    issued_at: float | None = None

    def refresh_due(self, lead: float) -> float | None:
        """When to replace this token: `lead` seconds before expiry, or at half its life
        when it lives less than twice `lead` (else a short-lived token would be replaced
        as soon as it arrives)."""
        if self.expires_at is None:
            return None
        if self.issued_at is not None:
            lead = min(lead, (self.expires_at - self.issued_at) / 2)
        return self.expires_at - lead

    def expires_within(self, seconds: float, now: float) -> bool:
        return self.expires_at is not None and self.expires_at - seconds <= now

    @property
    def scopes(self) -> list[str]:
        return self.scope.split() if self.scope else []


@dataclass(frozen=True)
class ClientAuth:
    """How this client proves its identity at the token endpoint."""

    client_id: str
    method: AuthMethod = "none"
    client_secret: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)
    signing_algorithm: SigningAlgorithm = "RS256"
    # RFC 7523 §3 lets the audience be the token endpoint; newer drafts prefer the issuer.
    assertion_audience: str | None = None

    def apply(
        self, form: dict[str, str], headers: dict[str, str], token_endpoint: str, now: float
    ) -> None:
        if self.method == "client_secret_basic":
            if self.client_secret is None:
                raise ValueError("client_secret_basic needs a client secret")
            # RFC 6749 §2.3.1: both parts are form-urlencoded before Basic encoding.
            pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        elif self.method == "client_secret_post":
            if self.client_secret is None:
                raise ValueError("client_secret_post needs a client secret")
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
        elif self.method == "private_key_jwt":
            form["client_id"] = self.client_id
            form["client_assertion_type"] = _ASSERTION_TYPE
            form["client_assertion"] = self._assertion(token_endpoint, now)
        else:
            form["client_id"] = self.client_id

    def _assertion(self, token_endpoint: str, now: float) -> str:
        if self.private_key_pem is None:
            raise ValueError("private_key_jwt needs a private key")
        alg = self.signing_algorithm
        key: ECKey | RSAKey | OKPKey
        if alg.startswith("ES"):
            key = ECKey.import_key(self.private_key_pem)
        elif alg.startswith(("RS", "PS")):
            key = RSAKey.import_key(self.private_key_pem)
        else:
            key = OKPKey.import_key(self.private_key_pem)
        issued = int(now)
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.assertion_audience or token_endpoint,
            "jti": secrets.token_urlsafe(16),
            "iat": issued,
            "exp": issued + _ASSERTION_LIFETIME,
        }
        return jwt.encode({"alg": alg, "typ": "JWT"}, claims, key, algorithms=[alg])


def parse_token_response(data: object, now: float, *, dpop: bool = False) -> TokenSet:
    """``dpop``: the request carried a proof, so a DPoP-bound token may come back (or a
    bearer token: a server may decline to bind, RFC 9449 §5)."""
    if not isinstance(data, dict):
        raise TokenEndpointError("token response is not a JSON object")
    access_token, token_type = data.get("access_token"), data.get("token_type", "Bearer")
    if not isinstance(access_token, str) or not access_token:
        raise TokenEndpointError("token response lacks access_token")
    kind = token_type.lower() if isinstance(token_type, str) else None
    if kind not in ("bearer", "dpop") or (kind == "dpop" and not dpop):
        raise TokenEndpointError("token response is not a Bearer or DPoP-bound token")
    expires_in = data.get("expires_in")
    expires_at = now + float(expires_in) if isinstance(expires_in, int | float) else None
    scope, refresh = data.get("scope"), data.get("refresh_token")
    return TokenSet(
        access_token=access_token,
        token_type="DPoP" if kind == "dpop" else "Bearer",
        expires_at=expires_at,
        scope=scope if isinstance(scope, str) else None,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        issued_at=now,
    )


async def post_form(
    http: httpx.AsyncClient,
    endpoint: str,
    grant: Mapping[str, str | None],
    client: ClientAuth,
    *,
    now: float,
    assertion_audience: str | None = None,
    dpop: DPoP | None = None,
) -> dict[str, Any]:
    """POST a grant with client authentication (and a DPoP proof); the JSON answer, or the
    error it names."""
    form = {k: v for k, v in grant.items() if v is not None}
    headers = {"Accept": "application/json"}
    if client.method == "private_key_jwt" and client.assertion_audience is None:
        client = replace(client, assertion_audience=assertion_audience)
    client.apply(form, headers, endpoint, now)
    for _ in range(2):
        if dpop is not None:
            headers["DPoP"] = dpop.proof("POST", endpoint)
        response = await http.post(endpoint, data=form, headers=headers)
        # A nonce for the next proof (RFC 9449 §8.2); one retry when this one lacked it.
        fresh = dpop is not None and dpop.remember(endpoint, response.headers)
        if not (fresh and response.status_code == 400 and _error(response) == "use_dpop_nonce"):
            break
        if client.method == "private_key_jwt":
            client.apply(form, headers, endpoint, now)  # a new assertion: jtis are one-time
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code != 200 or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        description = data.get("error_description") if isinstance(data, dict) else None
        raise token_error(
            error if isinstance(error, str) else None,
            description if isinstance(description, str) else f"HTTP {response.status_code}",
            response.status_code,
        )
    return data


async def request_token(
    http: httpx.AsyncClient,
    token_endpoint: str,
    grant: Mapping[str, str | None],
    client: ClientAuth,
    *,
    clock: Clock = system_clock,
    assertion_audience: str | None = None,
    dpop: DPoP | None = None,
) -> TokenSet:
    """POST one grant; raise the `TokenEndpointError` subclass named by the server's error.
    With ``dpop`` the request carries a proof and the token may come back bound to it."""
    now = clock()
    data = await post_form(
        http,
        token_endpoint,
        grant,
        client,
        now=now,
        assertion_audience=assertion_audience,
        dpop=dpop,
    )
    return parse_token_response(data, now, dpop=dpop is not None)


def _error(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    error = data.get("error") if isinstance(data, dict) else None
    return error if isinstance(error, str) else None
