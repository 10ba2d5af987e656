"""The route table of the pages: which handler answers which path and method."""

from __future__ import annotations

from pathlib import Path

from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mcpward.server.core import AuthorizationServer
from mcpward.server.pages._account import Account
from mcpward.server.pages._authorize import Authorize
from mcpward.server.pages._consent import Consent
from mcpward.server.pages._login import Login
from mcpward.server.pages._pages import Endpoint, Pages
from mcpward.server.pages._upstream_routes import Upstream
from mcpward.server.pages.settings import PagesSettings
from mcpward.state import StateUnavailable

# Seconds a person (or the browser) should wait before trying again during an outage.
RETRY_AFTER = "5"


class PageRoutes:
    """The pages' Starlette ``routes``, and ``aclose()`` to release what they hold open
    (the sign-in throttle's Redis connection) when the application stops."""

    def __init__(self, server: AuthorizationServer, settings: PagesSettings) -> None:
        pages = Pages(server, settings)
        self._pages = pages
        base = pages.base
        authorize, login, consent = Authorize(pages), Login(pages), Consent(pages)
        account, upstream = Account(pages), Upstream(pages)
        # The error page's title when a posted form cannot be read.
        failed, refused = "Sign-in failed", "Request failed"
        static = StaticFiles(directory=Path(__file__).parent / "static")

        def route(
            path: str, endpoint: Endpoint, methods: list[str], throttled: bool = False
        ) -> Route:
            return Route(path, outage_safe(pages, endpoint, throttled), methods=methods)

        self.routes: list[BaseRoute] = [
            route(base + "/authorize", authorize.authorize, methods=["GET"]),
            route(base + "/authorize/cancel", authorize.cancel, methods=["GET"]),
            route(base + "/login", login.login_form, methods=["GET"]),
            route(
                base + "/login",
                pages.form_post(failed, login.login),
                methods=["POST"],
                throttled=True,
            ),
            route(base + "/login/totp", login.totp_form, methods=["GET"]),
            route(
                base + "/login/totp",
                pages.form_post(failed, login.totp_submit),
                methods=["POST"],
                throttled=True,
            ),
            route(base + "/consent", pages.form_post(refused, consent.consent), methods=["POST"]),
            route(base + "/account", account.account, methods=["GET"]),
            route(
                base + "/account/revoke",
                pages.form_post(refused, account.revoke),
                methods=["POST"],
            ),
            route(base + "/logout", account.logout_form, methods=["GET"]),
            route(base + "/logout", account.logout, methods=["POST"]),
            route(base + "/oidc/start/{name}", upstream.start, methods=["GET"]),
            route(base + "/oidc/callback", upstream.callback, methods=["GET"]),
            Mount(base + "/static", app=static, name="pages-static"),
        ]

    async def aclose(self) -> None:
        await self._pages.aclose()


def outage_safe(pages: Pages, endpoint: Endpoint, throttled: bool = False) -> Endpoint:
    """A page that cannot reach the database or Redis (the sign-in throttle, one-time
    codes) answers 503 with Retry-After and a page that says to try again: never a 500 or
    a traceback, and one log line per outage (a ``throttled`` page that answers again
    ends a Redis outage; readiness checks end a storage outage)."""
    server = pages.server

    async def page(request: Request) -> Response:
        try:
            response = await endpoint(request)
        except (StateUnavailable, RedisError) as exc:
            pages.redis_outage.failed(type(exc).__name__)
            return _unavailable(pages)
        except Exception as exc:
            if not server.store.is_unavailable(exc):
                raise
            server.storage_outage.failed(type(exc).__name__)
            return _unavailable(pages)
        if throttled:
            pages.redis_outage.succeeded()
        return response

    return page


def _unavailable(pages: Pages) -> Response:
    response = pages.error_page(
        "Temporarily unavailable",
        "Signing in is not possible at the moment. Please try again in a few seconds.",
        status=503,
    )
    response.headers["Retry-After"] = RETRY_AFTER
    return response
