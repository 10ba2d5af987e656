"""The console's route table, and what each route that changes state writes to the audit
trail (``mutations``: the drift test checks every POST route is declared there, and does
write one of its events)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mcpward.audit import EventName
from mcpward.config import ConsoleSettings
from mcpward.console._actions import confirm_endpoint, perform_endpoint
from mcpward.console._activity import ActivityPages
from mcpward.console._clients import Clients
from mcpward.console._core import Console, Handler, Operator
from mcpward.console._keys import Keys
from mcpward.console._signin import SignIn
from mcpward.console._users import Users
from mcpward.operations import NotFound
from mcpward.server import AuthorizationServer
from mcpward.state import StateUnavailable

log = logging.getLogger("mcpward.console")
View = Callable[[Request, Operator], Awaitable[Response]]
RETRY_AFTER = "5"


class ConsoleApp:
    """The operator console as an ASGI application (``app``), served by ``mcpward serve``
    on a listener of its own next to the authorization server it operates on."""

    def __init__(
        self, server: AuthorizationServer, settings: ConsoleSettings | None = None
    ) -> None:
        console = Console(server, settings or server.settings.console)
        self.console = console
        sign_in, clients, users = SignIn(console), Clients(console), Users(console)
        keys, activity = Keys(console), ActivityPages(console)
        self.mutations: dict[str, tuple[EventName, ...]] = {
            "/sign-in": ("console.signed_in", "console.sign_in_failed"),
            "/sign-out": ("console.signed_out",),
            "/step-up": ("console.stepped_up", "console.step_up_failed"),
        }
        routes: list[BaseRoute] = [
            Route("/", self._view(activity.overview), methods=["GET"]),
            Route("/sign-in", self._guard(sign_in.form), methods=["GET"]),
            Route("/sign-in", self._guard(sign_in.submit), methods=["POST"]),
            Route("/sign-out", self._guard(sign_in.sign_out), methods=["POST"]),
            Route("/step-up", self._guard(sign_in.step_up_form), methods=["GET"]),
            Route("/step-up", self._guard(sign_in.step_up), methods=["POST"]),
            Route("/clients", self._view(clients.index), methods=["GET"]),
            Route("/clients/show", self._view(clients.show), methods=["GET"]),
            Route("/users", self._view(users.index), methods=["GET"]),
            Route("/users/show", self._view(users.show), methods=["GET"]),
            Route("/keys", self._view(keys.index), methods=["GET"]),
            Route("/activity", self._view(activity.activity), methods=["GET"]),
        ]
        for action in [*clients.actions(), *users.actions(), *keys.actions()]:
            self.mutations[action.path] = action.events
            routes.append(
                Route(action.path, self._guard(confirm_endpoint(console, action)), methods=["GET"])
            )
            routes.append(
                Route(action.path, self._guard(perform_endpoint(console, action)), methods=["POST"])
            )
        static = StaticFiles(directory=Path(__file__).parent / "static")
        routes.append(Mount("/static", app=static, name="console-static"))
        self.routes = routes

        @asynccontextmanager
        async def lifespan(app: Starlette) -> AsyncIterator[None]:
            try:
                yield
            finally:
                await console.aclose()

        host = urlsplit(console.origin).hostname or "127.0.0.1"
        self.app = Starlette(
            routes=routes,
            # Requests for another host name are refused: DNS rebinding cannot reach a
            # console on loopback through a name an attacker controls.
            middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=[host])],
            lifespan=lifespan,
        )

    def _view(self, view: View) -> Handler:
        """A page for signed-in operators only (others go to the sign-in page)."""
        console = self.console

        async def endpoint(request: Request) -> Response:
            operator = await console.operator(request)
            if operator is None:
                return console.to_sign_in(request)
            try:
                return await view(request, operator)
            except NotFound as exc:
                return console.error("Not found", str(exc), 404, operator)

        return self._guard(endpoint)

    def _guard(self, endpoint: Handler) -> Handler:
        """Storage or shared state down: 503 with Retry-After; anything else unexpected:
        a plain 500 page. The cause goes to the log by type, never to the browser."""
        console = self.console

        async def guarded(request: Request) -> Response:
            try:
                return await endpoint(request)
            except Exception as exc:
                if isinstance(exc, StateUnavailable) or console.server.store.is_unavailable(exc):
                    log.error("console: storage unavailable: %s", type(exc).__name__)
                    response = console.error(
                        "Try again shortly",
                        "Storage is unavailable right now. Try again in a few seconds.",
                        503,
                        None,
                    )
                    response.headers["Retry-After"] = RETRY_AFTER
                    return response
                log.error("console: unexpected %s", type(exc).__name__, exc_info=exc)
                return console.error("Something went wrong", "The error was logged.", 500, None)

        return guarded
