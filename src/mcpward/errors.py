"""The root of every exception mcpward raises on purpose."""


class MCPWardError(Exception):
    """Base class of the server's, guard's and client's exception trees."""
