"""OAuth error responses, one class per error code; each renders itself.

::

    MCPWardError
     └── OAuthError
          ├── InvalidRequest            400  RFC 6749 §5.2
          ├── InvalidClient             401  RFC 6749 §5.2 (WWW-Authenticate when Basic was used)
          ├── InvalidGrant              400  RFC 6749 §5.2
          ├── UnauthorizedClient        400  RFC 6749 §5.2
          ├── UnsupportedGrantType      400  RFC 6749 §5.2
          ├── UnsupportedResponseType   400  RFC 6749 §4.1.2.1 (authorization responses)
          ├── InvalidScope              400  RFC 6749 §5.2
          ├── InvalidTarget             400  RFC 8707 §2
          ├── UnsupportedTokenType      400  RFC 7009 §2.2.1
          ├── InvalidRedirectUri        400  RFC 7591 §3.2.2
          ├── InvalidClientMetadata     400  RFC 7591 §3.2.2
          ├── InvalidDPoPProof          400  RFC 9449 §5 (the DPoP proof is missing or invalid)
          │    └── UseDPoPNonce         400  RFC 9449 §8 (retry with the ``DPoP-Nonce`` given)
          ├── AccessDenied              403  RFC 6749 §4.1.2.1 (authorization responses)
          ├── TemporarilyUnavailable    503  RFC 6749 §4.1.2.1 (storage unreachable)
          │    └── TooManyRequests      429  RFC 6585 §4 (registrations per address)
          └── ServerError               500  RFC 6749 §4.1.2.1 (never with details)

Descriptions are fixed strings or name a parameter; they never echo a credential.
"""

from __future__ import annotations

import json
import math
from typing import ClassVar

from mcpward.errors import MCPWardError


class OAuthError(MCPWardError):
    error: ClassVar[str] = "server_error"
    status_code: ClassVar[int] = 500

    def __init__(self, description: str | None = None) -> None:
        super().__init__(description or self.error)
        self.description = description

    def body(self) -> dict[str, str]:
        body = {"error": self.error}
        if self.description:
            body["error_description"] = self.description
        return body

    def headers(self) -> dict[str, str]:
        return {"Cache-Control": "no-store", "Pragma": "no-cache"}

    def render(self) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and JSON body, framework-free."""
        headers = {"Content-Type": "application/json", **self.headers()}
        return self.status_code, headers, json.dumps(self.body()).encode()


class InvalidRequest(OAuthError):
    """The request is missing a required parameter, includes an unsupported parameter value,
    repeats a parameter, or is otherwise malformed."""

    error = "invalid_request"
    status_code = 400


class InvalidClient(OAuthError):
    """Client authentication failed (unknown client, no client authentication included, or
    unsupported authentication method). 401, with a challenge when Basic was attempted."""

    error = "invalid_client"
    status_code = 401

    def __init__(
        self,
        description: str | None = None,
        *,
        basic_attempted: bool = False,
        client_id: str | None = None,
    ) -> None:
        super().__init__(description)
        self.basic_attempted = basic_attempted
        # Set only when the request named a registered client: what the audit trail may
        # record. Whatever else a request put in client_id (a secret pasted into the wrong
        # field, say) is never written anywhere.
        self.client_id = client_id

    def headers(self) -> dict[str, str]:
        headers = super().headers()
        if self.basic_attempted:
            headers["WWW-Authenticate"] = 'Basic realm="mcpward", charset="UTF-8"'
        return headers


class InvalidGrant(OAuthError):
    """The authorization grant or refresh token is invalid, expired, revoked, does not match
    the redirection URI, or was issued to another client."""

    error = "invalid_grant"
    status_code = 400


class UnauthorizedClient(OAuthError):
    """The authenticated client is not authorized to use this grant type."""

    error = "unauthorized_client"
    status_code = 400


class UnsupportedGrantType(OAuthError):
    """The grant type is not supported by the authorization server."""

    error = "unsupported_grant_type"
    status_code = 400


class UnsupportedResponseType(OAuthError):
    """The authorization server does not support obtaining a code using this method."""

    error = "unsupported_response_type"
    status_code = 400


class InvalidScope(OAuthError):
    """The requested scope is invalid, unknown, malformed, or exceeds what was granted."""

    error = "invalid_scope"
    status_code = 400


class InvalidTarget(OAuthError):
    """The requested resource is invalid, missing, unknown, or malformed (RFC 8707)."""

    error = "invalid_target"
    status_code = 400


class UnsupportedTokenType(OAuthError):
    """The server does not support revocation of the presented token type (RFC 7009)."""

    error = "unsupported_token_type"
    status_code = 400


class InvalidRedirectUri(OAuthError):
    """One or more redirect URIs in the registration request are invalid (RFC 7591)."""

    error = "invalid_redirect_uri"
    status_code = 400


class InvalidClientMetadata(OAuthError):
    """A client metadata field is invalid (RFC 7591)."""

    error = "invalid_client_metadata"
    status_code = 400


class InvalidDPoPProof(OAuthError):
    """The DPoP proof is missing where required, malformed, for another request, stale,
    replayed or signed with a key the grant is not bound to (RFC 9449 §5)."""

    error = "invalid_dpop_proof"
    status_code = 400

    def __init__(self, description: str, *, check: str = "invalid") -> None:
        super().__init__(description)
        # Which check failed (htm, htu, iat, replayed, key ...): for the audit trail.
        self.check = check


class UseDPoPNonce(InvalidDPoPProof):
    """The server requires a nonce in the DPoP proof (RFC 9449 §8): the one to use is in
    the ``DPoP-Nonce`` header."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, *, nonce: str) -> None:
        super().__init__(description, check="nonce")
        self.nonce = nonce

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "DPoP-Nonce": self.nonce}


class AccessDenied(OAuthError):
    """The resource owner or authorization server denied the request."""

    error = "access_denied"
    status_code = 403


class TemporarilyUnavailable(OAuthError):
    """The server cannot handle the request now (storage unreachable); retry later."""

    error = "temporarily_unavailable"
    status_code = 503
    retry_after: int = 5

    def headers(self) -> dict[str, str]:
        return {**super().headers(), "Retry-After": str(self.retry_after)}


class TooManyRequests(TemporarilyUnavailable):
    """Too many requests from one client address (anonymous registration). OAuth has no
    error code of its own for this; ``temporarily_unavailable`` with 429 and
    ``Retry-After`` tells a client both what happened and when to try again."""

    status_code = 429

    def __init__(self, description: str, *, retry_after: float) -> None:
        super().__init__(description)
        self.retry_after = max(1, math.ceil(retry_after))


class ServerError(OAuthError):
    """An unexpected condition. Rendered without details; the cause goes to the log."""

    error = "server_error"
    status_code = 500
