"""Everything the client library raises.

    ClientError
    ├── DiscoveryError            no usable resource or authorization server metadata
    ├── RegistrationError         no way to obtain a client_id, or the AS refused one
    ├── AuthorizationError        the authorization response was an error or failed a check
    │   └── LoginTimeout          nobody completed the sign-in in time
    ├── LoginRequired             a sign-in is needed but the caller is not interactive
    ├── StepUpLimitReached        403 insufficient_scope kept coming after re-authorization
    └── TokenEndpointError        the token endpoint answered with an OAuth error (RFC 6749 §5.2)
        ├── InvalidRequest
        ├── InvalidClient
        ├── InvalidGrant
        ├── UnauthorizedClient
        ├── UnsupportedGrantType
        └── InvalidScope

Messages carry error codes, descriptions from the server and URLs, never a token, an
authorization code, a PKCE verifier or a client secret.
"""

from __future__ import annotations

__all__ = [
    "AuthorizationError",
    "ClientError",
    "DiscoveryError",
    "InvalidClient",
    "InvalidGrant",
    "InvalidRequest",
    "InvalidScope",
    "LoginRequired",
    "LoginTimeout",
    "RegistrationError",
    "StepUpLimitReached",
    "TokenEndpointError",
    "UnauthorizedClient",
    "UnsupportedGrantType",
    "token_error",
]


class ClientError(Exception):
    """Base class of every error the mcpward client raises."""


class DiscoveryError(ClientError):
    """Neither Protected Resource Metadata nor authorization server metadata could be used."""


class RegistrationError(ClientError):
    """No pre-registered credentials, no usable Client ID Metadata Document, and DCR failed."""


class AuthorizationError(ClientError):
    """The authorization response carried an error, or failed the state / iss checks."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class LoginTimeout(AuthorizationError):
    """The loopback listener got no redirect before the time-out."""


class LoginRequired(ClientError):
    """A browser sign-in is needed (no stored session, or it was revoked); run `mcpward login`."""


class StepUpLimitReached(ClientError):
    """The server kept answering 403 insufficient_scope after the allowed re-authorizations."""


class TokenEndpointError(ClientError):
    """An error response from the token endpoint (RFC 6749 §5.2)."""

    error = "server_error"

    def __init__(self, description: str | None = None, status_code: int | None = None) -> None:
        self.description = description
        self.status_code = status_code
        detail = f": {description}" if description else ""
        super().__init__(f"token endpoint answered {self.error}{detail}")


class InvalidRequest(TokenEndpointError):
    """ "The request is missing a required parameter, includes an unsupported parameter value
    (other than grant type), repeats a parameter, …" (RFC 6749 §5.2)"""

    error = "invalid_request"


class InvalidClient(TokenEndpointError):
    """ "Client authentication failed (e.g., unknown client, no client authentication included,
    or unsupported authentication method)." (RFC 6749 §5.2) Agents re-read a rotated secret."""

    error = "invalid_client"


class InvalidGrant(TokenEndpointError):
    """ "The provided authorization grant … or refresh token is invalid, expired, revoked …"
    (RFC 6749 §5.2) A human client answers it with a fresh sign-in."""

    error = "invalid_grant"


class UnauthorizedClient(TokenEndpointError):
    """ "The authenticated client is not authorized to use this authorization grant type.\""""

    error = "unauthorized_client"


class UnsupportedGrantType(TokenEndpointError):
    """ "The authorization grant type is not supported by the authorization server.\""""

    error = "unsupported_grant_type"


class InvalidScope(TokenEndpointError):
    """ "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by
    the resource owner." (RFC 6749 §5.2)"""

    error = "invalid_scope"


_BY_CODE: dict[str, type[TokenEndpointError]] = {
    cls.error: cls
    for cls in (
        InvalidRequest,
        InvalidClient,
        InvalidGrant,
        UnauthorizedClient,
        UnsupportedGrantType,
        InvalidScope,
    )
}


def token_error(error: str | None, description: str | None, status_code: int) -> TokenEndpointError:
    """The exception for a token endpoint error code; unknown codes keep their name."""
    cls = _BY_CODE.get(error or "")
    if cls is not None:
        return cls(description, status_code)
    exc = TokenEndpointError(description, status_code)
    if error:
        exc.error = error
        exc.args = (
            f"token endpoint answered {error}" + (f": {description}" if description else ""),
        )
    return exc
