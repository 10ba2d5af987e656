"""Signing in to the console (password and TOTP, both required), signing out, and the
step-up page: the re-authentication destructive actions need when the last one is more
than ``console.step_up_window`` (5 minutes) old."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from mcpward.console._core import Console, safe_next
from mcpward.console._session import OperatorSession
from mcpward.operations import Actor
from mcpward.server.pages._pages import BadForm, Form, minutes, one, read_form
from mcpward.server.pages._render import redirect

FAILED = "The username, password or code is not right, or this account may not use the console."
LOCKED = "Too many failed attempts. Wait a few minutes, then try again."
EXPIRED = "This form expired. Please try again."


class SignIn:
    def __init__(self, console: Console) -> None:
        self.console = console

    async def form(self, request: Request) -> Response:
        console = self.console
        if await console.operator(request) is not None:
            return redirect(safe_next(request.query_params.get("next")))
        return self._page(None, safe_next(request.query_params.get("next")), None, 200)

    def _page(
        self, session: OperatorSession | None, next_: str, error: str | None, status: int
    ) -> Response:
        console = self.console
        now = console.now()
        # An anonymous session binds the form's CSRF token; a signed-in one that brought
        # us here is no longer valid (role or account gone) and is not reused.
        bound = (
            session
            if session is not None and session.uid is None
            else OperatorSession.anonymous(now, console.settings.session_lifetime)
        )
        response = console.page(
            "sign_in.html", {"next": next_, "error": error}, session=bound, status=status
        )
        if bound is not session:
            console.cookies.save(response, bound, now)
        return response

    async def submit(self, request: Request) -> Response:
        console = self.console
        session = console.cookies.load(request, console.now())
        form = await _form(request)
        next_ = safe_next(one(form, "next"))
        username = one(form, "username").strip()[:200]
        if not console.form_ok(request, session, form):
            console.audit("console.sign_in_failed", "invalid", request, reason="csrf")
            return self._page(None, next_, EXPIRED, 400)
        user, why = await console.credentials_ok(
            request, username, one(form, "password"), one(form, "code")
        )
        if why is not None or user is None:
            console.audit(
                "console.sign_in_failed",
                "rate_limited" if why == "locked" else "unauthorized",
                request,
                subject=user.id if user else None,
                reason=why,
            )
            return self._page(session, next_, LOCKED if why == "locked" else FAILED, 401)
        assert session is not None
        now = console.now()
        signed = session.signed_in(user.id, user.username, now, console.settings.session_lifetime)
        actor = Actor("console", user.username, user.id)
        console.audit("console.signed_in", "ok", request, subject=user.id, actor=actor)
        response = redirect(next_)
        console.cookies.save(response, signed, now)
        return response

    async def sign_out(self, request: Request) -> Response:
        console = self.console
        operator = await console.operator(request)
        form = await _form(request)
        if operator is None:
            return redirect("/sign-in")
        if not console.form_ok(request, operator.session, form):
            return console.error("Request refused", EXPIRED, 403, operator)
        await console.end(operator.session)
        console.audit(
            "console.signed_out", "ok", request, subject=operator.user.id, actor=operator.actor
        )
        response = redirect("/sign-in")
        console.cookies.clear(response)
        return response

    # -- step-up -------------------------------------------------------------------------

    async def step_up_form(self, request: Request) -> Response:
        console = self.console
        operator = await console.operator(request)
        if operator is None:
            return console.to_sign_in(request)
        next_ = safe_next(request.query_params.get("next"))
        return console.page("step_up.html", {"next": next_, "error": None}, operator=operator)

    async def step_up(self, request: Request) -> Response:
        console = self.console
        operator = await console.operator(request)
        form = await _form(request)
        if operator is None:
            return redirect("/sign-in")
        next_ = safe_next(one(form, "next"))
        if not console.form_ok(request, operator.session, form):
            return console.error("Request refused", EXPIRED, 403, operator)
        _, why = await console.credentials_ok(
            request, operator.user.username, one(form, "password"), one(form, "code")
        )
        if why is not None:
            console.audit(
                "console.step_up_failed",
                "rate_limited" if why == "locked" else "unauthorized",
                request,
                subject=operator.user.id,
                actor=operator.actor,
                reason=why,
            )
            return console.page(
                "step_up.html",
                {
                    "next": next_,
                    "error": LOCKED if why == "locked" else FAILED,
                    "window": minutes(console.settings.step_up_window),
                },
                operator=operator,
                status=401,
            )
        now = console.now()
        console.audit(
            "console.stepped_up", "ok", request, subject=operator.user.id, actor=operator.actor
        )
        response = redirect(next_)
        console.cookies.save(response, operator.session.stepped_up(now), now)
        return response


async def _form(request: Request) -> Form:
    try:
        return await read_form(request)
    except BadForm:
        return []
