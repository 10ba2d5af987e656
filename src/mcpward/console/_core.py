"""What every console page shares: the operations layer, operator sessions and who is
signed in, re-authentication, CSRF and Origin checks, rendering, and audit.

An operator is a user with the operator role, enabled, with a password and a TOTP
second factor; the role and the account are read again on every request, so taking
the role away (``mcpward users revoke-operator``) or disabling the account ends the
operator's console access at their next click, on every replica.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from mcpward.audit import AuditEvent, EventName, Outcome
from mcpward.config import ConsoleSettings
from mcpward.console._session import OperatorCookies, OperatorSession
from mcpward.operations import Actor, Operations
from mcpward.server import AuthorizationServer
from mcpward.server._crypto import DataKey
from mcpward.server.pages import _totp
from mcpward.server.pages._pages import Form, client_address, one
from mcpward.server.pages._passwords import verify_password
from mcpward.server.pages._render import Renderer, redirect
from mcpward.server.pages._session import Signer, derive_key
from mcpward.server.pages._throttle import MemoryThrottle, RedisThrottle, Throttle
from mcpward.storage.records import UserRecord

log = logging.getLogger("mcpward.console")

Handler = Callable[[Request], Awaitable[Response]]
MAX_NEXT = 2048
MAX_ENDED = 10_000


@dataclass(frozen=True, slots=True)
class Operator:
    """The operator signed in for this request."""

    session: OperatorSession
    user: UserRecord
    actor: Actor


def safe_next(value: str | None, default: str = "/") -> str:
    """A path on this console to go on to; anything else (another site, a scheme, a
    protocol-relative or backslash trick) becomes ``default``."""
    if not value or len(value) > MAX_NEXT or not value.startswith("/"):
        return default
    if value.startswith("//") or "\\" in value or any(ord(c) < 0x20 for c in value):
        return default
    return value


def is_operator(user: UserRecord | None) -> bool:
    return (
        user is not None
        and user.operator_since is not None
        and user.disabled_at is None
        and user.password_hash is not None
        and user.totp_secret_enc is not None
    )


class Console:
    def __init__(self, server: AuthorizationServer, settings: ConsoleSettings) -> None:
        self.server = server
        self.settings = settings
        self.ops = Operations(server)
        self.origin = server.settings.console_origin()
        data_key = server.settings.resolved_data_key()
        self.data_key = DataKey(data_key)
        self.signer = Signer(derive_key(data_key, "console session"))
        self.cookies = OperatorCookies(self.signer)
        pages = server.settings.pages
        redis_url = pages.redis_url.get_secret_value() or server.settings.resolved_redis_url()
        # Failed attempts and used TOTP steps shared with the sign-in pages' throttle when
        # there is Redis: one account, one lock, one code used once.
        self.throttle: Throttle = (
            RedisThrottle.from_url(redis_url, pages.login_limits, server.clock)
            if redis_url
            else MemoryThrottle(pages.login_limits, server.clock)
        )
        self.renderer = Renderer(
            {"product": pages.product_name, "static": "/static"},
            https=urlsplit(self.origin).scheme == "https",
            package="mcpward.console",
        )
        self._ended: dict[str, float] = {}

    async def aclose(self) -> None:
        await self.throttle.aclose()

    def now(self) -> float:
        return self.server.clock()

    # -- sessions and operators ----------------------------------------------------------

    async def session(self, request: Request) -> OperatorSession | None:
        """The browser's console session, signed-in or anonymous, unless it was ended."""
        session = self.cookies.load(request, self.now())
        if session is None or session.uid is None:
            return session
        if session.sid in self._ended or await self.server.store.sessions.is_revoked(session.sid):
            return None
        return session

    async def operator(self, request: Request) -> Operator | None:
        session = await self.session(request)
        if session is None or session.uid is None:
            return None
        user = await self.server.store.users.get(session.uid)
        if user is None or not is_operator(user):
            return None
        actor = Actor("console", user.username, user.id)
        return Operator(session, user, actor)

    def fresh(self, operator: Operator) -> bool:
        return operator.session.fresh(self.now(), self.settings.step_up_window)

    async def end(self, session: OperatorSession) -> None:
        """Sign out on the server: a copy of the cookie is refused by every replica."""
        await self.server.store.sessions.revoke(session.sid, session.expires_at, self.now())
        if len(self._ended) >= MAX_ENDED:
            self._ended.clear()
        self._ended[session.sid] = session.expires_at

    def form_ok(self, request: Request, session: OperatorSession | None, form: Form) -> bool:
        """Posted from a console page in this session: the CSRF token bound to it and (as
        defence in depth) a browser's Origin header must match."""
        origin = request.headers.get("origin")
        return (
            session is not None
            and (origin is None or origin == self.origin)
            and self.signer.check_csrf(session.sid, one(form, "csrf"))
        )

    async def credentials_ok(
        self, request: Request, username: str, password: str, code: str
    ) -> tuple[UserRecord | None, str | None]:
        """Password and TOTP code of an operator, throttled per account and address as
        the sign-in pages are: (the user, None) or (the user if known, why not)."""
        address = client_address(request)
        verdict = await self.throttle.check(username, address)
        if not verdict.allowed:
            return None, "locked"
        user = await self.server.store.users.by_username(username) if username else None
        ok = await verify_password(user.password_hash if user else None, password)
        reason = None
        if not ok or user is None:
            reason = "bad_credentials"
        elif not is_operator(user):
            reason = "not_operator"
        else:
            assert user.totp_secret_enc is not None
            secret = _totp.decrypt_secret(self.data_key, user.id, user.totp_secret_enc)
            if not await _totp.verify(self.throttle, user.id, secret, code, self.now()):
                reason = "totp_invalid"
        if reason is not None:
            await self.throttle.failed(username, address)
            return user, reason
        await self.throttle.succeeded(username)
        return user, None

    # -- responses -----------------------------------------------------------------------

    def page(
        self,
        template: str,
        context: dict[str, Any],
        *,
        operator: Operator | None = None,
        session: OperatorSession | None = None,
        status: int = 200,
        section: str = "",
    ) -> HTMLResponse:
        """A console page; every form on it carries the session's CSRF token."""
        bound = operator.session if operator else session
        return self.renderer.page(
            template,
            {
                "csrf": self.signer.csrf_token(bound.sid) if bound else "",
                "operator": operator.user if operator else None,
                "section": section,
                **context,
            },
            status=status,
        )

    def error(self, title: str, message: str, status: int, operator: Operator | None) -> Response:
        return self.page(
            "error.html", {"title": title, "message": message}, operator=operator, status=status
        )

    def to_sign_in(self, request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return redirect("/sign-in?next=" + quote(safe_next(target), safe=""))

    def to_step_up(self, back: str) -> Response:
        return redirect("/step-up?next=" + quote(safe_next(back), safe=""))

    # -- audit ---------------------------------------------------------------------------

    def audit(
        self,
        event: EventName,
        outcome: Outcome,
        request: Request,
        *,
        actor: Actor | None = None,
        subject: str | None = None,
        reason: str | None = None,
        **detail: str | int | float | bool | None,
    ) -> None:
        self.server.audit.emit(
            AuditEvent(
                event,
                outcome,
                subject=subject,
                reason=reason,
                actor=str(actor) if actor else None,
                detail={**detail, "client_address": client_address(request)},
            )
        )


def hidden(pairs: Iterable[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"name": k, "value": v} for k, v in pairs]
