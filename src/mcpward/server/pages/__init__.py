"""What a person sees at the authorization server: sign in (built-in users with argon2id
passwords and optional TOTP, or an upstream OpenID Connect provider), consent, the
account page and sign out.

``page_routes(server, settings)`` gives a :class:`PageRoutes`: mount its ``routes`` next
to :func:`mcpward.server.routes`, and ``await aclose()`` it when the application stops.
"""

from __future__ import annotations

from mcpward.server.core import AuthorizationServer
from mcpward.server.pages._passwords import hash_password, verify_password
from mcpward.server.pages._routes import PageRoutes
from mcpward.server.pages.settings import LoginLimits, PagesSettings, UpstreamProvider

__all__ = [
    "LoginLimits",
    "PageRoutes",
    "PagesSettings",
    "UpstreamProvider",
    "hash_password",
    "page_routes",
    "verify_password",
]


def page_routes(server: AuthorizationServer, settings: PagesSettings | None = None) -> PageRoutes:
    """The sign-in, consent, account and upstream-callback routes, under the issuer's
    path. ``settings`` defaults to ``server.settings.pages``."""
    return PageRoutes(server, settings if settings is not None else server.settings.pages)
