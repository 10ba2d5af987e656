"""Signing in with a built-in account: the sign-in page, the password (``/login``) and the
TOTP second factor (``/login/totp``), throttled per account and per client address. A
successful sign-in always starts a new session (a new id: no fixation)."""

from __future__ import annotations

import math
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server._authorization import AuthorizationRequest
from mcpward.server.pages import _totp
from mcpward.server.pages._pages import Form, Pages, client_address, minutes, one
from mcpward.server.pages._passwords import hash_password, needs_rehash, verify_password
from mcpward.server.pages._render import redirect
from mcpward.server.pages._session import Session
from mcpward.server.pages._throttle import Verdict
from mcpward.storage.records import UserRecord


def login_page(
    pages: Pages,
    session: Session | None,
    query: str,
    areq: AuthorizationRequest | None,
    *,
    error: str | None = None,
    username: str = "",
    status: int = 200,
) -> Response:
    session, changed = pages.session_for_form(session)
    providers = [
        {
            "name": p.display_name,
            "url": f"{pages.base}/oidc/start/{p.name}?" + urlencode({"request": query}),
        }
        for p in pages.settings.upstream
    ]
    if not username and areq is not None:
        username = pages.parse_query(query)[0].get("login_hint", "")[:200]
    response = pages.renderer.page(
        "login.html",
        {
            "csrf": pages.signer.csrf_token(session.sid),
            "request": query,
            "cancel": pages.cancel_url(query) if areq else None,
            "client": areq.client if areq else None,
            "resource": areq.resource if areq else None,
            "error": error,
            "username": username,
            "providers": providers,
        },
        status=status,
        form_targets=pages.targets(areq),
    )
    return pages.with_session(response, session, changed)


def signed_in(
    pages: Pages, request: Request, session: Session, user: UserRecord, query: str, amr: list[str]
) -> Response:
    """Start ``user``'s session (a new id) and go back to the authorization request."""
    now = pages.now()
    fresh = session.signed_in(user.id, now, pages.settings.session_lifetime, amr)
    pages.audit("login.succeeded", "ok", request=request, subject=user.id, amr=" ".join(amr))
    response = redirect(pages.authorize_url(_without_prompt_login(query)))
    pages.cookies.save(response, fresh, now)
    return response


def _without_prompt_login(query: str) -> str:
    """After a fresh sign-in, ``prompt=login`` has been honoured: drop it, or the
    authorization endpoint would ask again forever."""
    pairs = parse_qsl(query, keep_blank_values=True)
    out = []
    for name, value in pairs:
        if name == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        out.append((name, value))
    return urlencode(out)


class Login:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    # -- the password -------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /login: a sign-in page not tied to an authorization (the account page)."""
        pages = self.pages
        session = await pages.load_session(request)
        if await pages.active_user(session):
            return redirect(pages.base + "/account")
        return login_page(pages, session, "", None)

    async def login(self, request: Request, session: Session | None, form: Form) -> Response:
        pages = self.pages
        now = pages.now()
        query = one(form, "request")
        areq = await pages.soft_validate(query)
        if isinstance(areq, Response):
            return areq
        username = one(form, "username").strip()[:200]
        password = one(form, "password")
        if session is None or not pages.form_ok(request, session, form):
            pages.audit("login.failed", "invalid", request=request, reason="csrf")
            return login_page(
                pages,
                None,
                query,
                areq,
                error="This sign-in form expired. Please sign in again.",
                username=username,
                status=400,
            )
        address = client_address(request)
        verdict = await pages.throttle.check(username, address)
        if not verdict.allowed:
            pages.audit("login.failed", "rate_limited", request=request, reason=verdict.scope)
            return self.locked_page(session, query, areq, verdict, username)
        user = await pages.users.by_username(username) if username else None
        ok = await verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled_at is not None:
            reason = "disabled" if ok and user is not None else "bad_credentials"
            verdict = await pages.throttle.failed(username, address)
            subject = user.id if user else None
            pages.audit(
                "login.failed", "unauthorized", request=request, subject=subject, reason=reason
            )
            if not verdict.allowed:
                pages.audit(
                    "login.locked",
                    "rate_limited",
                    request=request,
                    subject=subject,
                    reason=verdict.scope,
                )
                return self.locked_page(session, query, areq, verdict, username)
            return login_page(
                pages,
                session,
                query,
                areq,
                error="The username or password is incorrect.",
                username=username,
                status=401,
            )
        await pages.throttle.succeeded(username)
        if user.password_hash and needs_rehash(user.password_hash):
            await pages.users.set_password_hash(user.id, hash_password(password))
        if user.totp_secret_enc is not None:
            pending = session.awaiting_second_factor(
                user.id, now, pages.settings.second_factor_timeout
            )
            pages.audit("login.password_ok", "ok", request=request, subject=user.id)
            response = redirect(f"{pages.base}/login/totp?" + urlencode({"request": query}))
            pages.cookies.save(response, pending, now)
            return response
        return signed_in(pages, request, session, user, query, ["pwd"])

    def locked_page(
        self,
        session: Session,
        query: str,
        areq: AuthorizationRequest | None,
        verdict: Verdict,
        username: str,
    ) -> Response:
        what = "this account" if verdict.scope == "account" else "your network address"
        response = login_page(
            self.pages,
            session,
            query,
            areq,
            error=(
                f"Too many failed sign-in attempts for {what}. "
                f"Try again in {minutes(verdict.retry_after)}."
            ),
            username=username,
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(verdict.retry_after))
        return response

    # -- the second factor --------------------------------------------------------------

    def pending(self, session: Session | None) -> str | None:
        """The user whose password was accepted and whose second factor is awaited."""
        if session is None or session.pending_uid is None:
            return None
        if (session.pending_until or 0) <= self.pages.now():
            return None
        return session.pending_uid

    def start_again(self, query: str) -> Response:
        pages = self.pages
        return redirect(pages.authorize_url(query) if query else pages.base + "/login")

    async def totp_form(self, request: Request) -> Response:
        query = request.query_params.get("request", "")
        session = await self.pages.load_session(request)
        if self.pending(session) is None or session is None:
            return self.start_again(query)
        areq = await self.pages.soft_validate(query)
        if isinstance(areq, Response):
            return areq
        return self.totp_page(session, query, areq)

    def totp_page(
        self,
        session: Session,
        query: str,
        areq: AuthorizationRequest | None,
        error: str | None = None,
        status: int = 200,
    ) -> Response:
        pages = self.pages
        return pages.renderer.page(
            "totp.html",
            {"csrf": pages.signer.csrf_token(session.sid), "request": query, "error": error},
            status=status,
            form_targets=pages.targets(areq),
        )

    async def totp_submit(self, request: Request, session: Session | None, form: Form) -> Response:
        pages = self.pages
        now = pages.now()
        query = one(form, "request")
        uid = self.pending(session)
        if session is None or uid is None:
            return self.start_again(query)
        if not pages.form_ok(request, session, form):
            pages.audit("login.failed", "invalid", request=request, subject=uid, reason="csrf")
            return pages.error_page("Sign-in failed", "This form expired. Please sign in again.")
        areq = await pages.soft_validate(query)
        if isinstance(areq, Response):
            return areq
        user = await pages.users.get(uid)
        if user is None or user.disabled_at is not None or user.totp_secret_enc is None:
            return self.start_again(query)
        address = client_address(request)
        verdict = await pages.throttle.check(user.username, address)
        if not verdict.allowed:
            pages.audit("login.failed", "rate_limited", request=request, subject=uid, reason="totp")
            return self.totp_page(
                session,
                query,
                areq,
                error=f"Too many attempts. Try again in {minutes(verdict.retry_after)}.",
                status=429,
            )
        secret = _totp.decrypt_secret(pages.data_key, uid, user.totp_secret_enc)
        if not await _totp.verify(pages.throttle, uid, secret, one(form, "code"), now):
            await pages.throttle.failed(user.username, address)
            pages.audit(
                "login.failed", "unauthorized", request=request, subject=uid, reason="totp_invalid"
            )
            return self.totp_page(
                session,
                query,
                areq,
                error="That code is not valid. Try the current one.",
                status=401,
            )
        await pages.throttle.succeeded(user.username)
        return signed_in(pages, request, session, user, query, ["pwd", "otp"])
