"""Client metadata (RFC 7591 §2) validated once for both ways a client arrives: Dynamic
Client Registration (``_rfc7591.py``) and Client ID Metadata Documents (``_cimd.py``).

Validation is strict: every field has a type, a length and a set of allowed values, and
anything else is ``invalid_client_metadata`` (400), never a 500. Redirect URIs follow
``_redirect_uris.py``, honouring ``application_type``. When ``application_type`` is absent
it is inferred from the redirect URIs: ``native`` if any of them is a loopback or
private-use URI, ``web`` otherwise. (OpenID Connect's default of ``web`` would refuse every
MCP desktop client that omits the field, and a client whose redirect URIs are loopback is
a native client by definition.) An explicit ``web`` with a loopback URI is refused.

Unrecognised metadata is ignored (RFC 7591 §2) and not echoed back.
"""

from __future__ import annotations

import base64
import binascii
import json
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from mcpward.server import _scopes
from mcpward.server._redirect_uris import (
    URI_CHARS,
    ApplicationType,
    check_redirect_uri,
    native_only,
    parse_redirect_uri,
)
from mcpward.server.errors import InvalidClientMetadata, InvalidRedirectUri, OAuthError
from mcpward.storage.records import (
    AUTH_METHODS,
    GRANT_TYPES,
    SELF_REGISTERED_GRANT_TYPES,
    AuthMethod,
    ClientRecord,
    ClientSource,
    GrantType,
    ResourceRecord,
)

MAX_URI = 2048
MAX_NAME = 200
MAX_REDIRECT_URIS = 32
MAX_CONTACTS = 10
MAX_SHORT = 200
MAX_KEYS = 10
MIN_RSA_BITS = 2048

RESPONSE_TYPES = ("code",)
APPLICATION_TYPES = ("native", "web")
_PRIVATE_JWK_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
_ASYMMETRIC_KTY = ("EC", "RSA", "OKP")
_OPTIONAL_URIS = ("client_uri", "logo_uri", "tos_uri", "policy_uri")
_OPTIONAL_STRINGS = ("software_id", "software_version")


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
    # RFC 9449 §5.2: this client always uses DPoP at the token endpoint.
    dpop_bound_access_tokens: bool = False
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
        if self.dpop_bound_access_tokens:
            body["dpop_bound_access_tokens"] = True
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
            dpop_bound_access_tokens=self.dpop_bound_access_tokens,
        )


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


def validate_metadata(
    body: object,
    *,
    resources: Sequence[ResourceRecord],
    auth_methods: Sequence[str] = AUTH_METHODS,
    default_auth_method: str = "client_secret_basic",
    grant_types: Sequence[str] = SELF_REGISTERED_GRANT_TYPES,
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

    grants = _string_list(body, "grant_types", max_items=len(GRANT_TYPES), max_len=64)
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
    parsed = [parse_redirect_uri(uri) for uri in redirect_uris]
    application_type: ApplicationType
    if declared_type == "native":
        application_type = "native"
    elif declared_type == "web":
        application_type = "web"
    else:
        application_type = "native" if any(native_only(p) for p in parsed) else "web"
    for p in parsed:
        check_redirect_uri(p, application_type)

    client_name = _string(body, "client_name", max_len=MAX_NAME)
    if client_name is not None and not client_name.strip():
        raise InvalidClientMetadata("client_name must not be blank")

    scope = _scope(body, resources, drop_unknown_scopes)

    dpop_bound = body.get("dpop_bound_access_tokens", False)
    if dpop_bound is None:
        dpop_bound = False
    if not isinstance(dpop_bound, bool):
        raise InvalidClientMetadata("dpop_bound_access_tokens must be a boolean")

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
        dpop_bound_access_tokens=dpop_bound,
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


# -- other URLs and keys ----------------------------------------------------------------


def _web_url(uri: str, name: str, *, allow_http: bool) -> None:
    if not URI_CHARS.match(uri) or "\\" in uri or "#" in uri:
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
