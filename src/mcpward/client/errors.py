"""Everything the client library raises.

    MCPWardError                      (mcpward.errors: the root of every role's tree)
    └── ClientError
        ├── MetadataError             no usable resource or authorization server metadata
        ├── RegistrationError         no way to obtain a client_id, or the AS refused one
        ├── AuthorizationError        the authorization response was an error or failed a check
        │   └── SignInTimeout         nobody completed the sign-in in time
        ├── SignInRequired            a sign-in is needed but the caller is not interactive
        ├── StepUpLimitReached        403 insufficient_scope kept coming after re-authorization
        └── TokenEndpointError        the token endpoint answered an OAuth error (RFC 6749 §5.2)
            ├── InvalidRequestError
            ├── InvalidClientError
            ├── InvalidGrantError
            ├── UnauthorizedClientError
            ├── UnsupportedGrantTypeError
            └── InvalidScopeError

The names differ from the server's (`mcpward.server.errors.InvalidGrant` is what the server
raises; `InvalidGrantError` is what a client is told) and the guard's, so a traceback or an
`except` clause says which role it is about. The names of earlier releases
(`DiscoveryError`, `LoginRequired`, `LoginTimeout`, `InvalidClient`, `InvalidGrant`) still
import, with a `DeprecationWarning`.

Messages carry error codes, descriptions from the server and URLs, never a token, an
authorization code, a PKCE verifier or a client secret.
"""

from __future__ import annotations

import warnings

from mcpward.errors import MCPWardError

__all__ = [
    "AuthorizationError",
    "ClientError",
    "InvalidClientError",
    "InvalidGrantError",
    "InvalidRequestError",
    "InvalidScopeError",
    "MetadataError",
    "RegistrationError",
    "SignInRequired",
    "SignInTimeout",
    "StepUpLimitReached",
    "TokenEndpointError",
    "UnauthorizedClientError",
    "UnsupportedGrantTypeError",
    "token_error",
]


class ClientError(MCPWardError):
    """Base class of every error the mcpward client raises."""


class MetadataError(ClientError):
    """Neither Protected Resource Metadata nor authorization server metadata could be used:
    missing, unreachable, for another resource, or naming another issuer."""


class RegistrationError(ClientError):
    """No pre-registered credentials, no usable Client ID Metadata Document, and DCR failed."""


class AuthorizationError(ClientError):
    """The authorization response carried an error, or failed the state / iss checks."""

    def __init__(self, message: str, error: str | None = None) -> None:
        super().__init__(message)
        self.error = error


class SignInTimeout(AuthorizationError):
    """The loopback listener got no redirect before the time-out."""


class SignInRequired(ClientError):
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


class InvalidRequestError(TokenEndpointError):
    """ "The request is missing a required parameter, includes an unsupported parameter value
    (other than grant type), repeats a parameter, …" (RFC 6749 §5.2)"""

    error = "invalid_request"


class InvalidClientError(TokenEndpointError):
    """ "Client authentication failed (e.g., unknown client, no client authentication included,
    or unsupported authentication method)." (RFC 6749 §5.2) Agents re-read a rotated secret."""

    error = "invalid_client"


class InvalidGrantError(TokenEndpointError):
    """ "The provided authorization grant … or refresh token is invalid, expired, revoked …"
    (RFC 6749 §5.2) A human client answers it with a fresh sign-in."""

    error = "invalid_grant"


class UnauthorizedClientError(TokenEndpointError):
    """ "The authenticated client is not authorized to use this authorization grant type.\""""

    error = "unauthorized_client"


class UnsupportedGrantTypeError(TokenEndpointError):
    """ "The authorization grant type is not supported by the authorization server.\""""

    error = "unsupported_grant_type"


class InvalidScopeError(TokenEndpointError):
    """ "The requested scope is invalid, unknown, malformed, or exceeds the scope granted by
    the resource owner." (RFC 6749 §5.2)"""

    error = "invalid_scope"


_BY_CODE: dict[str, type[TokenEndpointError]] = {
    cls.error: cls
    for cls in (
        InvalidRequestError,
        InvalidClientError,
        InvalidGrantError,
        UnauthorizedClientError,
        UnsupportedGrantTypeError,
        InvalidScopeError,
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


# Names of earlier releases that `mcpward.client` exported. They are the same classes, so
# `except LoginRequired` keeps catching; importing one warns.
RENAMED: dict[str, type[ClientError]] = {
    "DiscoveryError": MetadataError,
    "LoginRequired": SignInRequired,
    "LoginTimeout": SignInTimeout,
    "InvalidClient": InvalidClientError,
    "InvalidGrant": InvalidGrantError,
}


def renamed(module: str, name: str) -> type[ClientError]:
    """The class behind an old name, with a DeprecationWarning; AttributeError otherwise."""
    try:
        cls = RENAMED[name]
    except KeyError:
        raise AttributeError(f"module {module!r} has no attribute {name!r}") from None
    warnings.warn(
        f"{module}.{name} is now {cls.__name__}; the old name will be removed",
        DeprecationWarning,
        stacklevel=3,
    )
    return cls


def __getattr__(name: str) -> type[ClientError]:
    return renamed(__name__, name)
