"""Client authentication at the token, revocation and introspection endpoints.

``client_secret_basic`` and ``client_secret_post`` (RFC 6749 §2.3.1), ``private_key_jwt``
(RFC 7523 §2.2 with the audience and replay rules of RFC 7523bis) and ``none`` for public
clients. A request may use one method only, and it must be the one the client registered.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mcpward._clock import Clock
from mcpward.server._workload import CLIENT_ASSERTION, WorkloadMatch, WorkloadTrust
from mcpward.server.clients import ClientRegistry
from mcpward.server.errors import InvalidClient, InvalidRequest
from mcpward.storage.records import JWT_BEARER, ClientRecord

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_ALGS = ["ES256", "ES384", "EdDSA", "RS256", "PS256"]
MAX_ASSERTION_BYTES = 8192
MAX_ASSERTION_LIFETIME = 600.0

JwksFetcher = Callable[[str], Awaitable[dict[str, Any]]]
RememberJti = Callable[[str, str, float], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class AuthenticatedClient:
    client: ClientRecord
    # The registered method used, or "workload_jwt" when a workload JWT (SEP-1933)
    # authenticated the client through a workload rule, named in ``workload``.
    method: str
    workload: WorkloadMatch | None = None


class ClientAuthenticator:
    def __init__(
        self,
        registry: ClientRegistry,
        clock: Clock,
        *,
        audiences: tuple[str, ...],
        remember_jti: RememberJti,
        fetch_jwks: JwksFetcher | None = None,
        workload: WorkloadTrust | None = None,
        leeway: float = 60.0,
    ) -> None:
        self._registry = registry
        self._clock = clock
        self._audiences = audiences
        self._remember_jti = remember_jti
        self._fetch_jwks = fetch_jwks
        self._workload = workload
        self._leeway = leeway

    async def authenticate(
        self, form: Mapping[str, str], authorization: str | None
    ) -> AuthenticatedClient:
        basic = _parse_basic(authorization)
        used = [
            name
            for name, present in (
                ("client_secret_basic", basic is not None),
                ("client_secret_post", "client_secret" in form),
                ("private_key_jwt", "client_assertion" in form),
            )
            if present
        ]
        if len(used) > 1:
            raise InvalidRequest("use exactly one client authentication method")
        method = used[0] if used else "none"

        if method == "client_secret_basic":
            assert basic is not None
            client_id, secret = basic
            if form.get("client_id", client_id) != client_id:
                raise InvalidRequest("client_id differs from the authenticated client")
            return await self._by_secret(client_id, secret, method, basic_attempted=True)
        if method == "client_secret_post":
            return await self._by_secret(form.get("client_id", ""), form["client_secret"], method)
        workload = self._workload
        if method == "private_key_jwt":
            if workload is not None and workload.recognizes(form["client_assertion"]):
                return await self._by_workload(form, form["client_assertion"], CLIENT_ASSERTION)
            return await self._by_assertion(form)
        if workload is not None and form.get("grant_type") == JWT_BEARER:
            # SEP-1933: no secret; the workload JWT in the grant is the client's credential.
            assertion = form.get("assertion")
            if assertion and workload.recognizes(assertion):
                return await self._by_workload(form, assertion, JWT_BEARER)

        client_id = form.get("client_id", "")
        client = await self._usable_client(client_id)
        if client.token_endpoint_auth_method != "none":
            raise InvalidClient("client authentication is required", client_id=client_id)
        return AuthenticatedClient(client, "none")

    async def _usable_client(self, client_id: str, *, basic: bool = False) -> ClientRecord:
        if not client_id:
            raise InvalidClient("client_id is missing", basic_attempted=basic)
        client = await self._registry.get(client_id)
        if client is None or client.disabled_at is not None:
            raise InvalidClient("unknown or disabled client", basic_attempted=basic)
        return client

    async def _by_secret(
        self, client_id: str, secret: str, method: str, *, basic_attempted: bool = False
    ) -> AuthenticatedClient:
        client = await self._usable_client(client_id, basic=basic_attempted)
        if client.token_endpoint_auth_method not in ("client_secret_basic", "client_secret_post"):
            raise InvalidClient(
                f"this client authenticates with {client.token_endpoint_auth_method}",
                basic_attempted=basic_attempted,
                client_id=client_id,
            )
        if not await self._registry.check_secret(client_id, secret):
            raise InvalidClient(
                "client authentication failed",
                basic_attempted=basic_attempted,
                client_id=client_id,
            )
        # Both secret methods are accepted for a secret client: they carry the same proof.
        return AuthenticatedClient(client, method)

    async def _by_assertion(self, form: Mapping[str, str]) -> AuthenticatedClient:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient("unsupported client_assertion_type")
        assertion = form["client_assertion"]
        if len(assertion) > MAX_ASSERTION_BYTES:
            raise InvalidClient("client_assertion is too large")
        try:
            claims = json.loads(jws.extract_compact(assertion.encode()).payload)
        except (JoseError, ValueError, binascii.Error):
            raise InvalidClient("client_assertion is not a JWT") from None
        if not isinstance(claims, dict):
            raise InvalidClient("client_assertion is not a JWT")
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise InvalidClient("client_assertion iss and sub must both be the client_id")
        if form.get("client_id", client_id) != client_id:
            raise InvalidRequest("client_id differs from the assertion's issuer")
        client = await self._usable_client(client_id)
        try:
            if client.token_endpoint_auth_method != "private_key_jwt":
                raise InvalidClient("this client does not use private_key_jwt")
            keys = await self._client_keys(client)
            try:
                token = jwt.decode(assertion, keys, algorithms=ASSERTION_ALGS)
            except (JoseError, ValueError):
                raise InvalidClient("client_assertion signature is invalid") from None
            await self._check_assertion_claims(client_id, token.claims)
        except InvalidClient as error:
            # A registered client: the audit trail may name it.
            raise InvalidClient(error.description, client_id=client_id) from None
        return AuthenticatedClient(client, "private_key_jwt")

    async def _by_workload(
        self, form: Mapping[str, str], token: str, via: str
    ) -> AuthenticatedClient:
        assert self._workload is not None
        if via == CLIENT_ASSERTION and form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient("unsupported client_assertion_type")
        match = await self._workload.authenticate(token, form.get("client_id"), via=via)
        return AuthenticatedClient(match.client, "workload_jwt", match)

    async def _client_keys(self, client: ClientRecord) -> KeySet:
        document: dict[str, Any] | None = client.jwks
        if document is None and client.jwks_uri and self._fetch_jwks is not None:
            try:
                document = await self._fetch_jwks(client.jwks_uri)
            except Exception:
                raise InvalidClient("the client's jwks_uri could not be fetched") from None
        if not document:
            raise InvalidClient("the client has no registered keys")
        try:
            return KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, TypeError):
            raise InvalidClient("the client's registered keys are invalid") from None

    async def _check_assertion_claims(self, client_id: str, claims: dict[str, Any]) -> None:
        now = self._clock()
        aud = claims.get("aud")
        audiences = [aud] if isinstance(aud, str) else aud if isinstance(aud, list) else []
        if not any(a in self._audiences for a in audiences):
            raise InvalidClient("client_assertion audience is not this server")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp + self._leeway < now:
            raise InvalidClient("client_assertion is expired or has no exp")
        if exp - now > MAX_ASSERTION_LIFETIME + self._leeway:
            raise InvalidClient("client_assertion lives too long")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and nbf - self._leeway > now:
            raise InvalidClient("client_assertion is not valid yet")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti or len(jti) > 255:
            raise InvalidClient("client_assertion needs a jti")
        if not await self._remember_jti(client_id, jti, float(exp) + self._leeway):
            raise InvalidClient("client_assertion was already used")


def _parse_basic(authorization: str | None) -> tuple[str, str] | None:
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        # Non-ASCII input is a ValueError (not binascii.Error) in b64decode.
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        raise InvalidClient("malformed Basic credentials", basic_attempted=True) from None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        raise InvalidClient("malformed Basic credentials", basic_attempted=True)
    # RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))
