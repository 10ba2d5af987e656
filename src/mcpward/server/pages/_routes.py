"""The route table of the pages: which handler answers which path and method."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mcpward.server.core import AuthorizationServer
from mcpward.server.pages._account import Account
from mcpward.server.pages._authorize import Authorize
from mcpward.server.pages._consent import Consent
from mcpward.server.pages._login import Login
from mcpward.server.pages._pages import Pages
from mcpward.server.pages._upstream_routes import Upstream
from mcpward.server.pages.settings import PagesSettings


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
        self.routes: list[BaseRoute] = [
            Route(base + "/authorize", authorize.authorize, methods=["GET"]),
            Route(base + "/authorize/cancel", authorize.cancel, methods=["GET"]),
            Route(base + "/login", login.login_form, methods=["GET"]),
            Route(base + "/login", pages.form_post(failed, login.login), methods=["POST"]),
            Route(base + "/login/totp", login.totp_form, methods=["GET"]),
            Route(
                base + "/login/totp",
                pages.form_post(failed, login.totp_submit),
                methods=["POST"],
            ),
            Route(base + "/consent", pages.form_post(refused, consent.consent), methods=["POST"]),
            Route(base + "/account", account.account, methods=["GET"]),
            Route(
                base + "/account/revoke",
                pages.form_post(refused, account.revoke),
                methods=["POST"],
            ),
            Route(base + "/logout", account.logout_form, methods=["GET"]),
            Route(base + "/logout", account.logout, methods=["POST"]),
            Route(base + "/oidc/start/{name}", upstream.start, methods=["GET"]),
            Route(base + "/oidc/callback", upstream.callback, methods=["GET"]),
            Mount(base + "/static", app=static, name="pages-static"),
        ]

    async def aclose(self) -> None:
        await self._pages.aclose()
