"""mcpward: production auth for MCP servers.

Three roles in one package:

- ``mcpward.server``: the OAuth 2.1 authorization server,
- ``mcpward.guard``: the resource guard every MCP server runs,
- ``mcpward.client``: the client library for humans and agents.
"""

__version__ = "0.1.0"
