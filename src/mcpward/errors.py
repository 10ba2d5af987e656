"""The root of every exception mcpward raises on purpose, and the errors every role
shares."""

__all__ = ["ConfigError", "MCPWardError", "StateUnavailable"]


class MCPWardError(Exception):
    """Base class of the server's, guard's and client's exception trees."""


class StateUnavailable(MCPWardError):
    """A shared dependency (Redis, or the revocations log a guard follows) cannot answer
    now. Callers answer 503 with ``Retry-After`` (fail closed) unless the operator chose to
    let rate limits fail open."""

    retry_after = 5


class ConfigError(MCPWardError):
    """A configuration problem, described without echoing any value (values may be
    secrets)."""
