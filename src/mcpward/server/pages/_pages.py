"""What every page shares: the server, settings, session cookies (and their end on the
server at sign out), the sign-in throttle, rendering, auditing, and the steps every form
post starts with (read the session and the form, check the CSRF token and the Origin,
validate the authorization request the form belongs to).

Nothing is kept on the server between steps: the authorization request travels through
the forms as its original query string and is validated again, in full, by the
code-issuing core at every step, so a tampered form can do no more than a tampered
``/authorize`` link. Every form carries a CSRF token bound to the session.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response

from mcpward._asgi import BodyIncomplete, BodyTooLarge, media_type, read_body
from mcpward._outage import OutageLog
from mcpward.audit import AuditEvent, EventName, Outcome
from mcpward.server._authorization import (
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
    validate_request,
)
from mcpward.server._crypto import DataKey
from mcpward.server._forms import parse_pairs
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import OAuthError
from mcpward.server.pages._render import Renderer, form_target, redirect
from mcpward.server.pages._session import Session, SessionCookies, Signer, derive_key
from mcpward.server.pages._throttle import MemoryThrottle, RedisThrottle, Throttle
from mcpward.server.pages._upstream import UpstreamClient
from mcpward.server.pages.settings import PagesSettings
from mcpward.storage.records import UserRecord

Form = list[tuple[str, str]]
FormHandler = Callable[[Request, Session | None, Form], Awaitable[Response]]
Endpoint = Callable[[Request], Awaitable[Response]]
log = logging.getLogger("mcpward.pages")

MAX_QUERY = 8 * 1024
MAX_FORM = 64 * 1024
# Sessions known here to have ended (a revocation is final, so this cache is never stale).
MAX_ENDED = 10_000


class BadForm(Exception):
    pass


async def read_form(request: Request) -> Form:
    if media_type(request.headers.get("content-type")) != "application/x-www-form-urlencoded":
        raise BadForm("unexpected content type")
    try:
        body = await read_body(
            request.receive, limit=MAX_FORM, content_length=request.headers.get("content-length")
        )
    except BodyTooLarge:
        raise BadForm("form too large") from None
    except BodyIncomplete:
        raise BadForm("the form did not arrive") from None
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise BadForm("malformed form") from None


def one(pairs: Form, name: str) -> str:
    """The single value of ``name`` in a form ("" when missing or repeated)."""
    values = [v for k, v in pairs if k == name]
    return values[0] if len(values) == 1 else ""


def minutes(seconds: float) -> str:
    count = max(1, math.ceil(seconds / 60))
    return f"{count} minute" + ("s" if count != 1 else "")


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Pages:
    def __init__(self, server: AuthorizationServer, settings: PagesSettings) -> None:
        self.server = server
        self.settings = settings
        self.users = server.store.users
        self.sessions = server.store.sessions
        self._ended: dict[str, float] = {}
        issuer = server.settings.issuer
        parts = urlsplit(issuer)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.base = parts.path.rstrip("/")
        data_key = server.settings.resolved_data_key()
        self.data_key = DataKey(data_key)
        self.signer = Signer(derive_key(data_key, "pages session"))
        self.cookies = SessionCookies(
            self.signer, secure=parts.scheme == "https", clock_lifetime=settings.session_lifetime
        )
        # The pages' own setting, else the deployment's shared Redis.
        redis_url = settings.redis_url.get_secret_value() or (
            server.settings.resolved_redis_url() or ""
        )
        self.throttle: Throttle = (
            RedisThrottle.from_url(redis_url, settings.login_limits, server.clock)
            if redis_url
            else MemoryThrottle(settings.login_limits, server.clock)
        )
        # Pages that cannot reach it answer 503, logged once per outage.
        self.redis_outage = OutageLog("redis (sign-in pages)", log, "sign-in answers 503")
        self.upstream = {p.name: UpstreamClient(p, server.clock) for p in settings.upstream}
        self.renderer = Renderer(
            {
                "product": settings.product_name,
                "static": self.base + "/static",
                "base": self.base,
            },
            https=parts.scheme == "https",
        )

    async def aclose(self) -> None:
        """Release the throttle's connection (Redis); the pages answer no more after."""
        await self.throttle.aclose()

    def now(self) -> float:
        return self.server.clock()

    # -- audit ------------------------------------------------------------------------------

    def audit(
        self,
        event: EventName,
        outcome: Outcome,
        *,
        request: Request | None = None,
        subject: str | None = None,
        client_id: str | None = None,
        reason: str | None = None,
        scopes: tuple[str, ...] = (),
        audience: str | None = None,
        **detail: str | int | float | bool | None,
    ) -> None:
        if request is not None:
            detail["client_address"] = client_address(request)
        self.server.audit.emit(
            AuditEvent(
                event,
                outcome,
                subject=subject,
                client_id=client_id,
                reason=reason,
                scopes=scopes,
                audience=audience,
                detail=detail,
            )
        )

    def audit_request(
        self,
        event: EventName,
        outcome: Outcome,
        request: Request,
        areq: AuthorizationRequest,
        *,
        subject: str,
        scopes: tuple[str, ...] | None = None,
        **detail: bool,
    ) -> None:
        """An event about a person's answer to an authorization request: its client,
        resource and (approved) scopes."""
        self.server.audit.emit(
            AuditEvent(
                event,
                outcome,
                subject=subject,
                client_id=areq.client.client_id,
                scopes=areq.scopes if scopes is None else scopes,
                audience=areq.resource.uri,
                detail={**detail, "client_address": client_address(request)},
            )
        )

    # -- pages and links --------------------------------------------------------------------

    def authorize_url(self, query: str) -> str:
        return f"{self.base}/authorize?{query}" if query else f"{self.base}/account"

    def cancel_url(self, query: str) -> str:
        return f"{self.base}/authorize/cancel?" + urlencode({"request": query})

    def error_page(self, title: str, message: str, status: int = 400) -> Response:
        return self.renderer.page("error.html", {"title": title, "message": message}, status=status)

    def message(self, title: str, message: str) -> Response:
        return self.renderer.page("message.html", {"title": title, "message": message})

    def targets(self, areq: AuthorizationRequest | None) -> list[str]:
        if areq is None:
            return []
        target = form_target(areq.redirect_uri)
        return [target] if target else []

    # -- sessions ---------------------------------------------------------------------------

    async def load_session(self, request: Request) -> Session | None:
        """The browser's session: signed, unexpired and not ended on the server. Only a
        session that carries a person (signed in, or awaiting the second factor) is
        looked up; an anonymous one only binds CSRF tokens."""
        session = self.cookies.load(request, self.now())
        if session is None or (session.uid is None and session.pending_uid is None):
            return session
        if session.sid in self._ended or await self.sessions.is_revoked(session.sid):
            self._remember_ended(session)
            return None
        return session

    async def end_session(self, session: Session) -> None:
        """Sign out on the server: every replica refuses this session's cookie from now."""
        await self.sessions.revoke(session.sid, session.expires_at, self.now())
        self._remember_ended(session)

    def _remember_ended(self, session: Session) -> None:
        now = self.now()
        if len(self._ended) >= MAX_ENDED:
            self._ended = {k: v for k, v in self._ended.items() if v > now}
            if len(self._ended) >= MAX_ENDED:
                self._ended.clear()
        self._ended[session.sid] = session.expires_at

    async def active_user(self, session: Session | None) -> UserRecord | None:
        """The signed-in person, unless their account was disabled or offboarded since."""
        if session is None or session.uid is None:
            return None
        user = await self.users.get(session.uid)
        if user is None or user.disabled_at is not None:
            return None
        return user

    def session_for_form(self, session: Session | None) -> tuple[Session, bool]:
        """The session a form is bound to; a new anonymous one when there is none."""
        if session is not None:
            return session, False
        return Session.anonymous(self.now(), self.settings.session_lifetime), True

    def with_session(self, response: Response, session: Session, changed: bool) -> Response:
        if changed:
            self.cookies.save(response, session, self.now())
        return response

    # -- form posts -------------------------------------------------------------------------

    def form_post(self, title: str, handler: FormHandler) -> Endpoint:
        """The endpoint of a form post: ``handler`` gets the session and the form read,
        or the person an error page (``title``) when the form cannot be read."""

        async def endpoint(request: Request) -> Response:
            session = await self.load_session(request)
            try:
                form = await read_form(request)
            except BadForm:
                return self.error_page(title, "The form could not be read.")
            return await handler(request, session, form)

        return endpoint

    def form_ok(self, request: Request, session: Session, form: Form) -> bool:
        """The form was posted from our page in this session: its CSRF token, and (defence
        in depth) a browser's Origin header, must match."""
        origin = request.headers.get("origin")
        return (origin is None or origin == self.origin) and self.signer.check_csrf(
            session.sid, one(form, "csrf")
        )

    # -- the authorization request a page belongs to ---------------------------------------

    @staticmethod
    def parse_query(query: str) -> tuple[dict[str, str], list[str]]:
        if len(query) > MAX_QUERY:
            raise UnsafeRequest("The request is too large.")
        try:
            return parse_pairs(parse_qsl(query, keep_blank_values=True))
        except OAuthError:
            raise UnsafeRequest("The request is malformed (a parameter is repeated).") from None

    async def validate(self, query: str) -> tuple[AuthorizationRequest, dict[str, str]]:
        params, resources = self.parse_query(query)
        return await validate_request(self.server, params, resources), params

    async def checked_request(self, query: str) -> AuthorizationRequest | Response:
        """The authorization request, validated again in full; else what to answer (an
        error page, or the error sent to the client's registered redirect URI)."""
        try:
            areq, _ = await self.validate(query)
        except UnsafeRequest as exc:
            return self.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            return redirect(exc.redirect_to)
        return areq

    async def soft_validate(self, query: str) -> AuthorizationRequest | Response | None:
        """The authorization request a form belongs to (None for a plain sign-in)."""
        return await self.checked_request(query) if query else None
