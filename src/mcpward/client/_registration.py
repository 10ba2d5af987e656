"""Getting a client_id, in the order MCP authorization (2025-11-25) gives:

1. pre-registered credentials for this authorization server;
2. a Client ID Metadata Document URL, when the server says it supports them;
3. Dynamic Client Registration (RFC 7591), with `application_type` "native" for a
   loopback redirect (OpenID Connect Registration §2; MCP asks clients to set it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import httpx

from mcpward.client._discovery import ServerMetadata
from mcpward.client._token_endpoint import AUTH_METHODS, AuthMethod, ClientAuth, one_of
from mcpward.client.errors import RegistrationError

_SECRET_METHODS: tuple[AuthMethod, ...] = ("client_secret_basic", "client_secret_post")


@dataclass(frozen=True)
class Registration:
    """A client identity at one authorization server (`issuer`)."""

    issuer: str
    client_id: str
    token_endpoint_auth_method: AuthMethod = "none"
    client_secret: str | None = field(default=None, repr=False)
    redirect_uris: tuple[str, ...] = ()
    client_secret_expires_at: int | None = None

    def auth(self) -> ClientAuth:
        return ClientAuth(self.client_id, self.token_endpoint_auth_method, self.client_secret)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["redirect_uris"] = list(self.redirect_uris)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Registration:
        return cls(
            issuer=data["issuer"],
            client_id=data["client_id"],
            token_endpoint_auth_method=one_of(
                data.get("token_endpoint_auth_method", "none"),
                AUTH_METHODS,
                "token_endpoint_auth_method",
            ),
            client_secret=data.get("client_secret"),
            redirect_uris=tuple(data.get("redirect_uris", ())),
            client_secret_expires_at=data.get("client_secret_expires_at"),
        )


def secret_method(server: ServerMetadata) -> AuthMethod:
    """client_secret_basic unless the server lists only client_secret_post (RFC 8414 §2)."""
    methods = server.token_endpoint_auth_methods_supported
    if methods and "client_secret_basic" not in methods and "client_secret_post" in methods:
        return "client_secret_post"
    return "client_secret_basic"


def preregistered(
    server: ServerMetadata, client_id: str, client_secret: str | None, redirect_uri: str | None
) -> Registration:
    method: AuthMethod = secret_method(server) if client_secret else "none"
    uris = (redirect_uri,) if redirect_uri else ()
    return Registration(server.issuer, client_id, method, client_secret, uris)


def from_metadata_document(server: ServerMetadata, url: str) -> Registration:
    # The document itself declares token_endpoint_auth_method "none" (or private_key_jwt);
    # the authorization server fetches it, so there is nothing to send here.
    return Registration(server.issuer, url, "none")


async def register_dynamically(
    http: httpx.AsyncClient,
    server: ServerMetadata,
    *,
    client_name: str,
    redirect_uri: str,
) -> Registration:
    if server.registration_endpoint is None:
        raise RegistrationError(
            f"{server.issuer} offers no dynamic client registration; "
            "pass a pre-registered client_id or a client metadata document URL"
        )
    methods = server.token_endpoint_auth_methods_supported
    # A public client with PKCE is the native-app default (RFC 8252 §8.4); ask for a secret
    # only when the server will not take a public client.
    method: AuthMethod = "none" if not methods or "none" in methods else secret_method(server)
    body: dict[str, Any] = {
        "client_name": client_name,
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": method,
        "application_type": "native",
    }
    # No "scope" member: some servers (oidc-provider) then restrict the client to it, which
    # would make every later step-up to a wider scope fail.
    try:
        response = await http.post(server.registration_endpoint, json=body)
    except httpx.HTTPError as exc:
        raise RegistrationError(
            f"client registration request failed: {type(exc).__name__}"
        ) from exc
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code not in (200, 201) or not isinstance(data, dict):
        error = data.get("error") if isinstance(data, dict) else None
        raise RegistrationError(
            f"client registration refused: HTTP {response.status_code} {error or ''}".rstrip()
        )
    client_id = data.get("client_id")
    if not isinstance(client_id, str):
        raise RegistrationError("client registration response lacks client_id")
    secret = data.get("client_secret")
    answered = data.get("token_endpoint_auth_method", method)
    granted: AuthMethod = method
    if answered == "none" or answered in _SECRET_METHODS:
        granted = one_of(answered, AUTH_METHODS, "token_endpoint_auth_method")
    if granted in _SECRET_METHODS and not isinstance(secret, str):
        granted = "none"
    expires = data.get("client_secret_expires_at")
    return Registration(
        issuer=server.issuer,
        client_id=client_id,
        token_endpoint_auth_method=granted,
        client_secret=secret if isinstance(secret, str) else None,
        redirect_uris=tuple(data.get("redirect_uris") or [redirect_uri]),
        client_secret_expires_at=expires if isinstance(expires, int) and expires > 0 else None,
    )
