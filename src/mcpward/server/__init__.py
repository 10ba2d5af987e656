"""The OAuth 2.1 authorization server role.

``AuthorizationServer`` is the whole server as one object, built by the composition root
(``mcpward.compose.server.open_server``); ``routes`` gives its HTTP endpoints (mountable
next to a guarded MCP server), ``create_app`` a standalone app with its pages.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette

from mcpward.server._authorization import (
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
    error_redirect,
    issue_code,
    validate_request,
)
from mcpward.server._readiness import Readiness
from mcpward.server.app import routes, token_fast_path
from mcpward.server.core import AuthorizationServer, Endpoints
from mcpward.server.pages import page_routes as _page_routes

__all__ = [
    "AuthorizationRequest",
    "AuthorizationServer",
    "Endpoints",
    "Readiness",
    "RedirectableError",
    "UnsafeRequest",
    "create_app",
    "error_redirect",
    "issue_code",
    "maintained",
    "routes",
    "token_fast_path",
    "validate_request",
]


@asynccontextmanager
async def maintained(server: AuthorizationServer) -> AsyncIterator[None]:
    """Run the server's maintenance loop for the duration of the block."""
    task = asyncio.create_task(server.maintain())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(server: AuthorizationServer) -> Starlette:
    """The server's endpoints and pages as one application that maintains the server and
    closes it when it stops."""
    pages = _page_routes(server)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            async with maintained(server):
                yield
        finally:
            await pages.aclose()
        await server.close()

    return Starlette(
        routes=routes(server) + pages.routes,
        middleware=[token_fast_path(server)],
        lifespan=lifespan,
    )
