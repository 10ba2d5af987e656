"""What the guard answers when it refuses a request; each refusal renders itself.

::

    MCPWardError
     └── GuardError
          ├── MissingToken          401  RFC 6750 §3.1 (no ``error``: no token was presented)
          ├── InvalidToken          401  RFC 6750 §3.1 ``invalid_token``
          ├── InvalidDPoPProof      401  RFC 9449 §7.1 ``invalid_dpop_proof``
          │    └── UseDPoPNonce     401  RFC 9449 §9 ``use_dpop_nonce`` with ``DPoP-Nonce``
          ├── BadAuthorization      401  RFC 6750 §3.1 ``invalid_request`` (token in the query)
          ├── InsufficientScope     403  RFC 6750 §3.1 ``insufficient_scope`` (+ MCP step-up)
          ├── PolicyDenied          403  a policy said no; not fixable by a broader token
          ├── RateLimited           429  RFC 6585 §4 with ``Retry-After`` and RateLimit headers
          ├── BadMessage            400  the body is not JSON-RPC
          └── Unavailable           503  shared state (Redis) unreachable; ``Retry-After``

Descriptions are fixed strings; they never echo a token, a proof or any other client
input. Every challenge names each scheme the resource accepts (``Schemes``), the error on
the one the request used (``scheme``, set by the guard).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import ClassVar

from mcpward._asgi import ratelimit_headers
from mcpward.audit import Outcome
from mcpward.errors import MCPWardError
from mcpward.guard._challenge import BEARER_ONLY, Scheme, Schemes, challenges


class GuardError(MCPWardError):
    status_code: ClassVar[int] = 401
    error: ClassVar[str | None] = None
    outcome: ClassVar[Outcome] = "unauthorized"

    def __init__(self, description: str, *, scheme: Scheme = "Bearer") -> None:
        super().__init__(description)
        self.description = description
        # The scheme of the refused request's Authorization header.
        self.scheme: Scheme = scheme

    # The scopes a challenge asks for (insufficient_scope); none by default.
    scope: Iterable[str] | None = None

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return challenges(
            schemes,
            resource_metadata=resource_metadata,
            error=self.error,
            description=self.description,
            scope=self.scope,
            used=self.scheme,
        )

    def headers(
        self, resource_metadata: str | None, schemes: Schemes = BEARER_ONLY
    ) -> dict[str, str]:
        headers = {"content-type": "application/json", "cache-control": "no-store"}
        challenge = self.challenge(resource_metadata, schemes)
        if challenge is not None:
            headers["www-authenticate"] = challenge
        return headers

    def body(self) -> bytes:
        return json.dumps(
            {"error": self.error or "unauthorized", "error_description": self.description}
        ).encode()


class MissingToken(GuardError):
    """No bearer token: the challenge carries only ``resource_metadata`` (RFC 6750 §3.1)."""

    def __init__(self, description: str = "a bearer token is required") -> None:
        super().__init__(description)

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return challenges(schemes, resource_metadata=resource_metadata)


class InvalidToken(GuardError):
    """The access token is expired, revoked, malformed or not for this resource, or sent
    with the wrong scheme (a DPoP-bound token as a bearer token, RFC 9449 §7.2)."""

    error = "invalid_token"


class InvalidDPoPProof(GuardError):
    """The DPoP proof is missing, malformed, stale, replayed, for another request or
    token, or signed by a key other than the one the token is bound to."""

    error = "invalid_dpop_proof"

    def __init__(self, description: str, check: str = "invalid") -> None:
        super().__init__(description, scheme="DPoP")
        # Which check failed: the audit trail's reason detail.
        self.check = check


class UseDPoPNonce(InvalidDPoPProof):
    """This resource wants its own nonce in the proof (RFC 9449 §9): retry with the one
    in ``DPoP-Nonce``."""

    error = "use_dpop_nonce"

    def __init__(self, description: str, nonce: str) -> None:
        super().__init__(description, "nonce")
        self.nonce = nonce

    def headers(
        self, resource_metadata: str | None, schemes: Schemes = BEARER_ONLY
    ) -> dict[str, str]:
        return {**super().headers(resource_metadata, schemes), "dpop-nonce": self.nonce}


class BadAuthorization(GuardError):
    """The credentials are sent wrongly, e.g. a token in the URI query (RFC 6750 §2.3, which
    OAuth 2.1 and MCP forbid). RFC 6750 suggests 400; we answer 401 so that MCP clients
    treat it as an authentication failure and retry with the header."""

    status_code = 401
    error = "invalid_request"


class InsufficientScope(GuardError):
    """The token lacks scopes the call needs. ``scope`` is what to request next: the
    scopes required, accumulated with those already held (MCP 2026-07-28 step-up), so a
    client re-authorizing with it does not lose access to the tools it already had."""

    status_code = 403
    error = "insufficient_scope"
    outcome = "forbidden"

    def __init__(self, description: str, *, required: Iterable[str], held: Iterable[str]) -> None:
        super().__init__(description)
        self.required = frozenset(required)
        self.scope: frozenset[str] = self.required | frozenset(held)


class PolicyDenied(GuardError):
    """The policy refuses this caller this tool, whatever its scopes."""

    status_code = 403
    error = "access_denied"
    outcome = "forbidden"

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return None


class RateLimited(GuardError):
    """Too many requests for this token, client or subject in the window."""

    status_code = 429
    error = "rate_limited"
    outcome = "rate_limited"

    def __init__(
        self, *, retry_after: float, limit: int, window: float, policy: str = "default"
    ) -> None:
        super().__init__("rate limit exceeded")
        self.retry_after = max(1, math.ceil(retry_after))
        self.limit = limit
        self.window = window
        self.policy = policy

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return None

    def headers(
        self, resource_metadata: str | None, schemes: Schemes = BEARER_ONLY
    ) -> dict[str, str]:
        headers = super().headers(resource_metadata, schemes)
        headers["retry-after"] = str(self.retry_after)
        fields = ratelimit_headers(
            self.policy, quota=self.limit, window=self.window, remaining=0, reset=self.retry_after
        )
        headers.update((name.decode(), value.decode()) for name, value in fields)
        return headers


class BadMessage(GuardError):
    """The body is not a JSON-RPC message the guard can authorize."""

    status_code = 400
    error = "invalid_request"
    outcome = "error"

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return None


class Unavailable(GuardError):
    """A check the request needs cannot run now (the shared state is unreachable): fail
    closed, and say when to retry. Not an authentication failure: no challenge."""

    status_code = 503
    error = "temporarily_unavailable"
    outcome = "error"

    def __init__(self, description: str, retry_after: int = 5) -> None:
        super().__init__(description)
        self.retry_after = retry_after

    def challenge(self, resource_metadata: str | None, schemes: Schemes) -> str | None:
        return None

    def headers(
        self, resource_metadata: str | None, schemes: Schemes = BEARER_ONLY
    ) -> dict[str, str]:
        return {**super().headers(resource_metadata, schemes), "retry-after": str(self.retry_after)}
