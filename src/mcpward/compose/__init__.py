"""The composition root: the one place where mcpward's parts are built, each once, with
its collaborators passed in.

- :mod:`.server` opens the authorization server (storage, keys, clients, shared state,
  revocation publishing) for ``mcpward serve``, the operator CLI and the testing kit;
- :mod:`.apps` turns it into the ASGI application ``mcpward serve`` runs, with the guarded
  demo MCP server when asked (the only part that loads the ``mcp`` SDK);
- :mod:`.gateway` builds the standalone gateway.

Import the submodule you need: importing this package loads none of them.
"""
