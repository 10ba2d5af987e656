"""RFC 7591 Dynamic Client Registration, and the client-metadata rules it shares with
Client ID Metadata Documents (``_cimd.py``).

Validation is strict: every field has a type, a length and a set of allowed values, and
anything else is ``invalid_client_metadata`` (400), never a 500. Redirect URIs follow
OAuth 2.1 §2.3.1 and RFC 8252, honouring ``application_type``:

* ``web`` clients: ``https`` only, never a loopback host (``localhost``, 127.0.0.0/8,
  ``::1``).
* ``native`` clients: ``http`` on a loopback host (RFC 8252 §7.3; the port may vary at the
  authorization endpoint for IP literals), claimed ``https`` URIs (§7.2) and private-use
  schemes such as ``com.example.app:/cb`` (§7.1). ``http://localhost`` is accepted although
  RFC 8252 §8.3 calls it NOT RECOMMENDED, because widely used MCP clients (Claude Code,
  MCP Inspector) register it; it matches exactly (port included), unlike IP literals.
* No fragments, no user-info, no wildcards, no whitespace or non-ASCII characters, and no
  dangerous schemes (``javascript:``, ``data:``, ``file:`` ...).

When ``application_type`` is absent it is inferred from the redirect URIs: ``native`` if
any of them is a loopback or private-use URI, ``web`` otherwise. (OpenID Connect's default
of ``web`` would refuse every MCP desktop client that omits the field, and a client whose
redirect URIs are loopback is a native client by definition.) An explicit ``web`` with a
loopback URI is refused.

Unrecognised metadata is ignored (RFC 7591 §2) and not echoed back.

Anonymous registration cannot create ``client_credentials`` clients unless the caller
opts in (``allow_client_credentials=True``, e.g. behind an initial access token): otherwise
anyone on the network could mint machine-to-machine tokens without a user.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast
from urllib.parse import SplitResult, urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from starlette.requests import Request

from mcpward._secrets import new_id
from mcpward.audit import AuditEvent
from mcpward.config import is_loopback_host
from mcpward.server import _scopes
from mcpward.server.clients import AUTH_METHODS, GRANT_TYPES
from mcpward.server.errors import (
    InvalidClientMetadata,
    InvalidRedirectUri,
    InvalidRequest,
    OAuthError,
)
from mcpward.storage.records import (
    AuthMethod,
    ClientRecord,
    ClientSource,
    GrantType,
    ResourceRecord,
)

if TYPE_CHECKING:
    from mcpward.server.core import AuthorizationServer

MAX_BODY = 16 * 1024
MAX_URI = 2048
MAX_NAME = 200
MAX_REDIRECT_URIS = 32
MAX_CONTACTS = 10
MAX_SHORT = 200
MAX_KEYS = 10
MIN_RSA_BITS = 2048

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
RESPONSE_TYPES = ("code",)
APPLICATION_TYPES = ("native", "web")
# Never acceptable as a redirect target, whatever the application type.
FORBIDDEN_SCHEMES = frozenset(
    {
        "javascript",
        "vbscript",
        "data",
        "file",
        "about",
        "blob",
        "filesystem",
        "view-source",
        "ws",
        "wss",
        "ftp",
        "mailto",
        "tel",
        "sms",
    }
)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.\-]*$")
_URI_CHARS = re.compile(r"^[\x21-\x7e]+$")  # printable ASCII, no space
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_ASYMMETRIC_KTY = ("EC", "RSA", "OKP")
_OPTIONAL_URIS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_OPTIONAL_STRINGS = ("software_id", "software_version")

ApplicationType = Literal["native", "web"]


@dataclass(frozen=True, slots=True)
class ClientMetadata:
    """Client metadata after validation; everything here is safe to store and echo."""

    redirect_uris: tuple[str, ...]
    grant_types: tuple[str, ...]
    response_types: tuple[str, ...]
    token_endpoint_auth_method: str
    application_type: ApplicationType
    client_name: str | None = None
    scope: str | None = None
    jwks: dict[str, Any] | None = None
    jwks_uri: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def registered(self) -> dict[str, Any]:
        """The metadata as registered, for the RFC 7591 §3.2.1 response."""
        body: dict[str, Any] = {
            "redirect_uris": list(self.redirect_uris),
            "grant_types": list(self.grant_types),
            "response_types": list(self.response_types),
            "token_endpoint_auth_method": self.token_endpoint_auth_method,
            "application_type": self.application_type,
        }
        optional: dict[str, Any] = {
            "client_name": self.client_name,
            "scope": self.scope,
            "jwks": self.jwks,
            "jwks_uri": self.jwks_uri,
        }
        body.update({k: v for k, v in optional.items() if v is not None})
        body.update(self.extra)
        return body

    def record(self, client_id: str, *, source: ClientSource, name: str) -> ClientRecord:
        metadata: dict[str, Any] = {"response_types": list(self.response_types), **self.extra}
        if self.client_name is not None:
            metadata["client_name"] = self.client_name
        return ClientRecord(
            client_id=client_id,
            name=self.client_name or name,
            source=source,
            # validate_metadata admits only values of the vocabulary.
            token_endpoint_auth_method=cast(AuthMethod, self.token_endpoint_auth_method),
            grant_types=cast(tuple[GrantType, ...], self.grant_types),
            redirect_uris=self.redirect_uris,
            application_type=self.application_type,
            allowed_scope=self.scope,
            jwks=self.jwks,
            jwks_uri=self.jwks_uri,
            metadata=metadata,
        )


# -- reading the request ----------------------------------------------------------------


async def read_json(request: Request, max_bytes: int = MAX_BODY) -> object:
    """The registration request's JSON body: ``application/json`` (RFC 7591 §3.1), at most
    ``max_bytes``, valid UTF-8 JSON without duplicate names or NaN/Infinity."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidRequest("the body must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
        raise InvalidRequest("the request body is too large")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_bytes:
            raise InvalidRequest("the request body is too large")
    return parse_json(bytes(body))


def parse_json(data: bytes) -> object:
    """Strict JSON: UTF-8, no duplicate object names, no NaN/Infinity, bounded nesting."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        obj: dict[str, Any] = {}
        for name, value in pairs:
            if name in obj:
                raise ValueError("duplicate name")
            obj[name] = value
        return obj

    def no_constants(_: str) -> Any:
        raise ValueError("not JSON")

    try:
        return json.loads(
            data.decode("utf-8"), object_pairs_hook=unique, parse_constant=no_constants
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise InvalidClientMetadata("the body is not a valid JSON document") from None


# -- registration -----------------------------------------------------------------------


async def register(
    server: AuthorizationServer, body: object, *, allow_client_credentials: bool = False
) -> tuple[int, dict[str, Any]]:
    """Register a client from RFC 7591 metadata; (201, the §3.2.1 response body).

    A secret, for ``client_secret_basic``/``client_secret_post`` clients, appears in this
    response only; it is stored as a hash."""
    try:
        metadata = validate_metadata(
            body,
            resources=server.resources(),
            allow_http_jwks_uri=server.settings.client_metadata_documents.allow_http,
        )
        if "client_credentials" in metadata.grant_types:
            if not allow_client_credentials:
                raise InvalidClientMetadata(
                    "client_credentials clients are created by an operator, not by "
                    "dynamic registration"
                )
            if metadata.scope is None:
                raise InvalidClientMetadata("scope is required for client_credentials")
    except OAuthError as error:
        server.audit.emit(
            AuditEvent(
                "client.registration_rejected",
                "invalid",
                reason=error.error,
                detail={"source": "dcr"},
            )
        )
        raise

    client_id = new_id()
    record = metadata.record(client_id, source="dcr", name=client_id)
    secret = await server.clients.create(record)
    stored = await server.store.clients.get(client_id)
    issued_at = stored.created_at if stored is not None else server.clock()
    response: dict[str, Any] = {
        "client_id": client_id,
        "client_id_issued_at": int(issued_at),
    }
    if secret is not None:
        response["client_secret"] = secret.secret
        response["client_secret_expires_at"] = int(secret.expires_at)
    response.update(metadata.registered())
    server.audit.emit(
        AuditEvent(
            "client.registered",
            "ok",
            client_id=client_id,
            scopes=tuple(_scopes.parse(metadata.scope)),
            detail={
                "source": "dcr",
                "auth_method": metadata.token_endpoint_auth_method,
                "application_type": metadata.application_type,
            },
        )
    )
    return 201, response


# -- metadata validation ----------------------------------------------------------------


def validate_metadata(
    body: object,
    *,
    resources: Sequence[ResourceRecord],
    auth_methods: Sequence[str] = AUTH_METHODS,
    default_auth_method: str = "client_secret_basic",
    grant_types: Sequence[str] = GRANT_TYPES,
    drop_unknown_scopes: bool = False,
    allow_http_jwks_uri: bool = False,
) -> ClientMetadata:
    """Validate client metadata (RFC 7591 §2) and return it normalised.

    The keyword arguments narrow the rules for Client ID Metadata Documents: no shared
    secrets, ``none`` by default, and scopes this server does not know dropped rather than
    refused (the document is shared by every authorization server the client talks to).
    """
    if not isinstance(body, Mapping):
        raise InvalidClientMetadata("the client metadata must be a JSON object")

    grants = _string_list(body, "grant_types", max_items=len(GRANT_TYPES), max_len=40)
    if grants is None:
        grants = ("authorization_code",)
    if not grants:
        raise InvalidClientMetadata("grant_types must not be empty")
    for grant in grants:
        if grant not in grant_types:
            raise InvalidClientMetadata("grant_types contains an unsupported grant type")
    if "refresh_token" in grants and "authorization_code" not in grants:
        raise InvalidClientMetadata("refresh_token is only issued with authorization_code")

    response_types = _string_list(body, "response_types", max_items=4, max_len=40)
    if response_types is None:
        response_types = ("code",) if "authorization_code" in grants else ()
    for response_type in response_types:
        if response_type not in RESPONSE_TYPES:
            raise InvalidClientMetadata("response_types supports only code")
    if ("code" in response_types) != ("authorization_code" in grants):
        raise InvalidClientMetadata(
            "response_types code and grant_types authorization_code go together"
        )

    method = _string(body, "token_endpoint_auth_method", max_len=40) or default_auth_method
    if method not in auth_methods:
        raise InvalidClientMetadata("token_endpoint_auth_method is not supported")
    if "client_credentials" in grants and method == "none":
        raise InvalidClientMetadata("client_credentials needs a confidential client")

    jwks, jwks_uri = _keys(body, method, allow_http_jwks_uri)

    declared_type = _string(body, "application_type", max_len=10)
    if declared_type is not None and declared_type not in APPLICATION_TYPES:
        raise InvalidClientMetadata("application_type must be native or web")

    redirect_uris = _string_list(
        body,
        "redirect_uris",
        max_items=MAX_REDIRECT_URIS,
        max_len=MAX_URI,
        error=InvalidRedirectUri,
    )
    redirect_uris = redirect_uris or ()
    if "authorization_code" in grants and not redirect_uris:
        raise InvalidRedirectUri("redirect_uris is required for authorization_code")
    parsed = [_parse_redirect_uri(uri) for uri in redirect_uris]
    application_type: ApplicationType
    if declared_type == "native":
        application_type = "native"
    elif declared_type == "web":
        application_type = "web"
    else:
        application_type = "native" if any(_native_only(p) for p in parsed) else "web"
    for p in parsed:
        _check_redirect_uri(p, application_type)

    client_name = _string(body, "client_name", max_len=MAX_NAME)
    if client_name is not None and not client_name.strip():
        raise InvalidClientMetadata("client_name must not be blank")

    scope = _scope(body, resources, drop_unknown_scopes)

    extra: dict[str, Any] = {}
    for name in _OPTIONAL_URIS:
        uri = _string(body, name, max_len=MAX_URI)
        if uri is not None:
            _web_url(uri, name, allow_http=True)
            extra[name] = uri
    for name in _OPTIONAL_STRINGS:
        value = _string(body, name, max_len=MAX_SHORT)
        if value is not None:
            extra[name] = value
    contacts = _string_list(body, "contacts", max_items=MAX_CONTACTS, max_len=320)
    if contacts:
        extra["contacts"] = list(contacts)

    return ClientMetadata(
        redirect_uris=tuple(dict.fromkeys(redirect_uris)),
        grant_types=grants,
        response_types=response_types,
        token_endpoint_auth_method=method,
        application_type=application_type,
        client_name=client_name,
        scope=scope,
        jwks=jwks,
        jwks_uri=jwks_uri,
        extra=extra,
    )


def _string(
    body: Mapping[str, Any],
    name: str,
    *,
    max_len: int,
    error: type[OAuthError] = InvalidClientMetadata,
) -> str | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if not isinstance(value, str):
        raise error(f"{name} must be a string")
    if not value or len(value) > max_len:
        raise error(f"{name} must be 1 to {max_len} characters")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise error(f"{name} contains control characters")
    return value


def _string_list(
    body: Mapping[str, Any],
    name: str,
    *,
    max_items: int,
    max_len: int,
    error: type[OAuthError] = InvalidClientMetadata,
) -> tuple[str, ...] | None:
    if name not in body or body[name] is None:
        return None
    value = body[name]
    if not isinstance(value, list):
        raise error(f"{name} must be an array of strings")
    if len(value) > max_items:
        raise error(f"{name} has too many entries")
    items: list[str] = []
    for item in value:
        if not isinstance(item, str) or not item or len(item) > max_len:
            raise error(f"{name} must contain non-empty strings of at most {max_len} characters")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in item):
            raise error(f"{name} contains control characters")
        items.append(item)
    return tuple(dict.fromkeys(items))


def _scope(
    body: Mapping[str, Any], resources: Iterable[ResourceRecord], drop_unknown: bool
) -> str | None:
    raw = _string(body, "scope", max_len=4096)
    if raw is None:
        return None
    try:
        requested = _scopes.parse(raw)
    except OAuthError:
        raise InvalidClientMetadata("scope is malformed") from None
    known = {s for r in resources for s in r.scopes}
    unknown = [s for s in requested if s not in known]
    if unknown and not drop_unknown:
        raise InvalidClientMetadata("scope names scopes no registered resource offers")
    kept = [s for s in requested if s in known]
    if not kept:
        if drop_unknown:
            return None
        raise InvalidClientMetadata("scope must not be empty")
    return _scopes.render(kept)


# -- redirect URIs ----------------------------------------------------------------------


def _parse_redirect_uri(uri: str) -> SplitResult:
    if not _URI_CHARS.match(uri) or "\\" in uri:
        raise InvalidRedirectUri("redirect_uris must be ASCII URIs without spaces")
    if "#" in uri:
        raise InvalidRedirectUri("redirect_uris must not contain a fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018 - raises ValueError when the port is not a number
    except ValueError:
        raise InvalidRedirectUri("redirect_uris contains a malformed URI") from None
    if not parts.scheme or not _SCHEME.match(parts.scheme) or ":" not in uri:
        raise InvalidRedirectUri("redirect_uris must be absolute URIs")
    if parts.scheme in FORBIDDEN_SCHEMES:
        raise InvalidRedirectUri("redirect_uris uses a forbidden scheme")
    if "@" in parts.netloc:
        raise InvalidRedirectUri("redirect_uris must not contain user information")
    if "*" in parts.netloc:
        raise InvalidRedirectUri("redirect_uris must not contain wildcards")
    if parts.scheme in ("http", "https") and not parts.hostname:
        raise InvalidRedirectUri("redirect_uris must name a host")
    return parts


def _native_only(parts: SplitResult) -> bool:
    """A loopback or private-use redirect, which only a native client can have."""
    return parts.scheme != "https" or is_loopback_host(parts.hostname)


def _check_redirect_uri(parts: SplitResult, application_type: ApplicationType) -> None:
    loopback = is_loopback_host(parts.hostname)
    if application_type == "web":
        if parts.scheme != "https":
            raise InvalidRedirectUri("web clients must use https redirect URIs")
        if loopback:
            raise InvalidRedirectUri("web clients must not use loopback redirect URIs")
        return
    if parts.scheme == "http" and not loopback:
        raise InvalidRedirectUri("http redirect URIs must use a loopback host (RFC 8252)")
    # https (claimed, RFC 8252 §7.2) and private-use schemes (§7.1) are fine.


def check_redirect_uri(uri: str, application_type: ApplicationType) -> None:
    """Validate one redirect URI for the given application type (InvalidRedirectUri)."""
    _check_redirect_uri(_parse_redirect_uri(uri), application_type)


# -- other URLs and keys ----------------------------------------------------------------


def _web_url(uri: str, name: str, *, allow_http: bool) -> None:
    if not _URI_CHARS.match(uri) or "\\" in uri or "#" in uri:
        raise InvalidClientMetadata(f"{name} must be an ASCII URL without fragment")
    try:
        parts = urlsplit(uri)
        parts.port  # noqa: B018
    except ValueError:
        raise InvalidClientMetadata(f"{name} is malformed") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        raise InvalidClientMetadata(f"{name} must be an {' or '.join(schemes)} URL")


def _keys(
    body: Mapping[str, Any], method: str, allow_http: bool
) -> tuple[dict[str, Any] | None, str | None]:
    jwks_raw = body.get("jwks")
    jwks_uri = _string(body, "jwks_uri", max_len=MAX_URI)
    if jwks_raw is not None and jwks_uri is not None:
        raise InvalidClientMetadata("jwks and jwks_uri must not both be present")
    if method != "private_key_jwt":
        if jwks_raw is not None or jwks_uri is not None:
            raise InvalidClientMetadata("jwks and jwks_uri are only used with private_key_jwt")
        return None, None
    if jwks_uri is not None:
        _web_url(jwks_uri, "jwks_uri", allow_http=allow_http)
        return None, jwks_uri
    if jwks_raw is None:
        raise InvalidClientMetadata("private_key_jwt needs jwks or jwks_uri")
    return validate_jwks(jwks_raw), None


def validate_jwks(value: object) -> dict[str, Any]:
    """A JWK Set of 1 to 10 public asymmetric keys (no private or symmetric material)."""
    if not isinstance(value, Mapping):
        raise InvalidClientMetadata("jwks must be a JWK Set object")
    keys = value.get("keys")
    if not isinstance(keys, list) or not 1 <= len(keys) <= MAX_KEYS:
        raise InvalidClientMetadata(f"jwks must hold 1 to {MAX_KEYS} keys")
    for key in keys:
        if not isinstance(key, Mapping) or key.get("kty") not in _ASYMMETRIC_KTY:
            raise InvalidClientMetadata("jwks keys must be EC, RSA or OKP public keys")
        if any(member in key for member in _PRIVATE_JWK_MEMBERS):
            raise InvalidClientMetadata("jwks must contain public keys only")
    document = {"keys": [dict(k) for k in keys]}
    for key in document["keys"]:
        if key["kty"] == "RSA" and _rsa_bits(key.get("n")) < MIN_RSA_BITS:
            raise InvalidClientMetadata(f"RSA keys must have at least {MIN_RSA_BITS} bits")
    try:
        with warnings.catch_warnings():
            # joserfc warns about weak keys; treat any such warning as a refusal.
            warnings.simplefilter("error")
            KeySet.import_key_set(document)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError, KeyError, Warning):
        raise InvalidClientMetadata("jwks contains an invalid key") from None
    return document


def _rsa_bits(n: object) -> int:
    if not isinstance(n, str) or len(n) > 2048:
        return 0
    try:
        raw = base64.urlsafe_b64decode(n + "=" * (-len(n) % 4))
    except (ValueError, binascii.Error):
        return 0
    return int.from_bytes(raw, "big").bit_length()
