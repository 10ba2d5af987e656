"""What a person sees at the authorization server: sign in (built-in users with argon2id
passwords and optional TOTP, or an upstream OpenID Connect provider), consent, the
account page and sign out.

``page_routes(server, settings)`` gives the Starlette routes; mount them next to
:func:`mcpward.server.routes`.
"""

from __future__ import annotations

from starlette.routing import BaseRoute

from mcpward.server.core import AuthorizationServer
from mcpward.server.pages._passwords import hash_password, verify_password
from mcpward.server.pages.settings import LoginLimits, PagesSettings, UpstreamProvider

__all__ = [
    "LoginLimits",
    "PagesSettings",
    "UpstreamProvider",
    "hash_password",
    "page_routes",
    "verify_password",
]


def page_routes(
    server: AuthorizationServer, settings: PagesSettings | None = None
) -> list[BaseRoute]:
    """The sign-in, consent, account and upstream-callback routes, under the issuer's
    path. ``settings`` defaults to ``server.settings.pages`` once that exists."""
    from mcpward.server.pages._routes import build_routes

    if settings is None:
        settings = server.settings.pages
    return build_routes(server, settings)
