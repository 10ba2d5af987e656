"""``GET /authorize``: validate the authorization request before anything is shown, then
send the person to sign in, to consent, or straight back to the client with a code when
they are signed in and have already consented; and ``/authorize/cancel``."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server._authorization import (
    RedirectableError,
    UnsafeRequest,
    error_redirect,
    issue_code,
)
from mcpward.server.errors import AccessDenied, OAuthError
from mcpward.server.pages._consent import consent_page
from mcpward.server.pages._login import login_page
from mcpward.server.pages._pages import MAX_QUERY, Pages
from mcpward.server.pages._render import redirect


class LoginRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and nobody is signed in."""

    error: ClassVar[str] = "login_required"
    status_code: ClassVar[int] = 400


class ConsentRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and consent would be needed."""

    error: ClassVar[str] = "consent_required"
    status_code: ClassVar[int] = 400


def params_client(query: str) -> str | None:
    for name, value in parse_qsl(query[:MAX_QUERY]):
        if name == "client_id":
            return value[:200]
    return None


class Authorize:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def authorize(self, request: Request) -> Response:
        pages = self.pages
        query = request.url.query
        try:
            areq, params = await pages.validate(query)
        except UnsafeRequest as exc:
            pages.audit("authorize.rejected", "invalid", request=request, reason="unsafe_request")
            return pages.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            pages.audit(
                "authorize.rejected",
                "invalid",
                request=request,
                client_id=params_client(query),
                reason=exc.error.error,
            )
            return redirect(exc.redirect_to, 302)
        now = pages.now()
        prompt = set(params.get("prompt", "").split())
        session = await pages.load_session(request)
        user = await pages.active_user(session)
        needs_login = user is None or "login" in prompt
        if user is not None and session is not None and "max_age" in params:
            try:
                max_age = int(params["max_age"])
            except ValueError:
                max_age = 0
            needs_login = needs_login or (session.auth_time or 0) + max_age < now
        if needs_login or user is None or session is None:
            if "none" in prompt:
                return redirect(error_redirect(pages.server, areq, LoginRequired()), 302)
            return login_page(pages, session, query, areq)
        consent = await pages.users.get_consent(user.id, areq.client.client_id, areq.resource.uri)
        lifetime = pages.settings.consent_lifetime
        if (
            consent is not None
            and "consent" not in prompt
            and lifetime > 0
            and consent.granted_at + lifetime > now
            and set(areq.scopes) <= set(consent.scope.split())
        ):
            location = await issue_code(
                pages.server, areq, subject=user.id, auth_time=session.auth_time or now
            )
            pages.audit_request("consent.remembered", "ok", request, areq, subject=user.id)
            return redirect(location, 302)
        if "none" in prompt:
            return redirect(error_redirect(pages.server, areq, ConsentRequired()), 302)
        return consent_page(pages, session, user, query, areq)

    async def cancel(self, request: Request) -> Response:
        """The person gives up before signing in: tell the client (access_denied) so it
        stops waiting. Harmless if forged: it only sends an error to the client's own
        registered redirect URI."""
        pages = self.pages
        areq = await pages.checked_request(request.query_params.get("request", ""))
        if isinstance(areq, Response):
            return areq
        pages.audit(
            "authorize.cancelled",
            "denied",
            request=request,
            client_id=areq.client.client_id,
            audience=areq.resource.uri,
        )
        return redirect(
            error_redirect(pages.server, areq, AccessDenied("the user cancelled the sign-in"))
        )
