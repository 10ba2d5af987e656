"""The pages a person sees: ``/authorize`` (sign in, then consent), the second factor,
sign-in through an upstream provider, the account page (remembered consents) and sign out.

Nothing is kept on the server between steps: the authorization request travels through
the forms as its original query string and is validated again, in full, by the
code-issuing core at every step, so a tampered form can do no more than a tampered
``/authorize`` link. Every form carries a CSRF token bound to the session.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from mcpward._secrets import new_id
from mcpward.audit import AuditEvent, Outcome
from mcpward.server import _scopes
from mcpward.server._authorization import (
    AuthorizationRequest,
    RedirectableError,
    UnsafeRequest,
    error_redirect,
    issue_code,
    validate_request,
)
from mcpward.server._crypto import DataKey
from mcpward.server._forms import parse_pairs
from mcpward.server.core import AuthorizationServer
from mcpward.server.errors import AccessDenied, OAuthError
from mcpward.server.pages import _totp
from mcpward.server.pages._passwords import hash_password, needs_rehash, verify_password
from mcpward.server.pages._render import Renderer, form_target, redirect
from mcpward.server.pages._session import Session, SessionCookies, Signer, derive_key
from mcpward.server.pages._throttle import MemoryThrottle, RedisThrottle, Throttle, Verdict
from mcpward.server.pages._upstream import Pending, UpstreamClient, UpstreamError, admission
from mcpward.server.pages.settings import PagesSettings, UpstreamProvider
from mcpward.storage.records import ConsentRecord, UserRecord

log = logging.getLogger("mcpward.pages")

MAX_QUERY = 8 * 1024
MAX_FORM = 64 * 1024
UPSTREAM_FLOW_LIFETIME = 600.0


class LoginRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and nobody is signed in."""

    error: ClassVar[str] = "login_required"
    status_code: ClassVar[int] = 400


class ConsentRequired(OAuthError):
    """OpenID Connect Core §3.1.2.6: ``prompt=none`` and consent would be needed."""

    error: ClassVar[str] = "consent_required"
    status_code: ClassVar[int] = 400


class BadForm(Exception):
    pass


async def read_form(request: Request) -> list[tuple[str, str]]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise BadForm("unexpected content type")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise BadForm("form too large")
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True)
    except (UnicodeDecodeError, ValueError):
        raise BadForm("malformed form") from None


def _one(pairs: list[tuple[str, str]], name: str) -> str:
    values = [v for k, v in pairs if k == name]
    return values[0] if len(values) == 1 else ""


def _minutes(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes} minute" + ("s" if minutes != 1 else "")


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class Pages:
    def __init__(self, server: AuthorizationServer, settings: PagesSettings) -> None:
        self.server = server
        self.settings = settings
        self.users = server.store.users
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
        redis_url = settings.redis_url.get_secret_value()
        self.throttle: Throttle = (
            RedisThrottle.from_url(redis_url, settings.login_limits, server.clock)
            if redis_url
            else MemoryThrottle(settings.login_limits, server.clock)
        )
        self.upstream = {p.name: UpstreamClient(p, server.clock) for p in settings.upstream}
        self.renderer = Renderer(
            {
                "product": settings.product_name,
                "static": self.base + "/static",
                "base": self.base,
            },
            https=parts.scheme == "https",
        )

    # -- helpers ------------------------------------------------------------------------

    def now(self) -> float:
        return self.server.clock()

    def audit(
        self,
        event: str,
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
            detail["client_address"] = _address(request)
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

    def authorize_url(self, query: str) -> str:
        return f"{self.base}/authorize?{query}" if query else f"{self.base}/account"

    def error_page(self, title: str, message: str, status: int = 400) -> Response:
        return self.renderer.page("error.html", {"title": title, "message": message}, status=status)

    def origin_ok(self, request: Request) -> bool:
        """Defence in depth next to the CSRF token: a browser's Origin must be ours."""
        origin = request.headers.get("origin")
        return origin is None or origin == self.origin

    async def active_user(self, session: Session | None) -> UserRecord | None:
        if session is None or session.uid is None:
            return None
        user = await self.users.get(session.uid)
        if user is None or user.disabled_at is not None:
            return None
        return user

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

    def targets(self, areq: AuthorizationRequest | None) -> list[str]:
        if areq is None:
            return []
        target = form_target(areq.redirect_uri)
        return [target] if target else []

    def session_for_form(self, session: Session | None) -> tuple[Session, bool]:
        """The session a form is bound to; a new anonymous one when there is none."""
        if session is not None:
            return session, False
        return Session.anonymous(self.now(), self.settings.session_lifetime), True

    def with_session(self, response: Response, session: Session, changed: bool) -> Response:
        if changed:
            self.cookies.save(response, session, self.now())
        return response

    # -- the login page -----------------------------------------------------------------

    def login_page(
        self,
        session: Session | None,
        query: str,
        areq: AuthorizationRequest | None,
        *,
        error: str | None = None,
        username: str = "",
        status: int = 200,
    ) -> Response:
        session, changed = self.session_for_form(session)
        providers = [
            {
                "name": p.display_name,
                "url": f"{self.base}/oidc/start/{p.name}?" + urlencode({"request": query}),
            }
            for p in self.settings.upstream
        ]
        if not username and areq is not None:
            username = self.parse_query(query)[0].get("login_hint", "")[:200]
        response = self.renderer.page(
            "login.html",
            {
                "csrf": self.signer.csrf_token(session.sid),
                "request": query,
                "cancel": self.cancel_url(query) if areq else None,
                "client": areq.client if areq else None,
                "resource": areq.resource if areq else None,
                "error": error,
                "username": username,
                "providers": providers,
            },
            status=status,
            form_targets=self.targets(areq),
        )
        return self.with_session(response, session, changed)

    def cancel_url(self, query: str) -> str:
        return f"{self.base}/authorize/cancel?" + urlencode({"request": query})

    async def cancel(self, request: Request) -> Response:
        """The person gives up before signing in: tell the client (access_denied) so it
        stops waiting. Harmless if forged: it only sends an error to the client's own
        registered redirect URI."""
        query = request.query_params.get("request", "")
        try:
            areq, _ = await self.validate(query)
        except UnsafeRequest as exc:
            return self.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            return redirect(exc.redirect_to)
        self.audit(
            "authorize.cancelled",
            "denied",
            request=request,
            client_id=areq.client.client_id,
            audience=areq.resource.uri,
        )
        return redirect(
            error_redirect(self.server, areq, AccessDenied("the user cancelled the sign-in"))
        )

    # -- GET /authorize -----------------------------------------------------------------

    async def authorize(self, request: Request) -> Response:
        query = request.url.query
        try:
            areq, params = await self.validate(query)
        except UnsafeRequest as exc:
            self.audit("authorize.rejected", "invalid", request=request, reason="unsafe_request")
            return self.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            self.audit(
                "authorize.rejected",
                "invalid",
                request=request,
                client_id=params_client(query),
                reason=exc.error.error,
            )
            return redirect(exc.redirect_to, 302)
        now = self.now()
        prompt = set(params.get("prompt", "").split())
        session = self.cookies.load(request, now)
        user = await self.active_user(session)
        needs_login = user is None or "login" in prompt
        if user is not None and session is not None and "max_age" in params:
            try:
                max_age = int(params["max_age"])
            except ValueError:
                max_age = 0
            needs_login = needs_login or (session.auth_time or 0) + max_age < now
        if needs_login or user is None or session is None:
            if "none" in prompt:
                return redirect(error_redirect(self.server, areq, LoginRequired()), 302)
            return self.login_page(session, query, areq)
        consent = await self.users.get_consent(user.id, areq.client.client_id, areq.resource.uri)
        lifetime = self.settings.consent_lifetime
        if (
            consent is not None
            and "consent" not in prompt
            and lifetime > 0
            and consent.granted_at + lifetime > now
            and set(areq.scopes) <= set(consent.scope.split())
        ):
            location = await issue_code(
                self.server, areq, subject=user.id, auth_time=session.auth_time or now
            )
            self.audit(
                "consent.remembered",
                "ok",
                request=request,
                subject=user.id,
                client_id=areq.client.client_id,
                scopes=areq.scopes,
                audience=areq.resource.uri,
            )
            return redirect(location, 302)
        if "none" in prompt:
            return redirect(error_redirect(self.server, areq, ConsentRequired()), 302)
        return self.consent_page(session, user, query, areq)

    def consent_page(
        self, session: Session, user: UserRecord, query: str, areq: AuthorizationRequest
    ) -> Response:
        resource = areq.resource
        scopes = []
        for scope in areq.scopes:
            tools = []
            for tool in resource.tools:
                required = list(tool.get("scopes_required") or [])
                if scope in required:
                    tools.append(
                        {
                            "name": str(tool.get("name", "")),
                            "description": str(tool.get("description") or ""),
                            "also": [s for s in required if s != scope],
                        }
                    )
            scopes.append(
                {"name": scope, "description": resource.scopes.get(scope, scope), "tools": tools}
            )
        open_tools = [
            str(t.get("name", "")) for t in resource.tools if not t.get("scopes_required")
        ]
        redirect_parts = urlsplit(areq.redirect_uri)
        client = areq.client
        return self.renderer.page(
            "consent.html",
            {
                "csrf": self.signer.csrf_token(session.sid),
                "request": query,
                "user": user.display_name or user.username,
                "client": client,
                "client_host": urlsplit(client.client_id).hostname
                if client.source == "cimd"
                else None,
                "verified": client.source == "preregistered",
                "redirect_host": redirect_parts.netloc.rpartition("@")[2]
                or redirect_parts.scheme + ":",
                "redirect_scheme": redirect_parts.scheme,
                "resource": resource,
                "scopes": scopes,
                "open_tools": open_tools,
                "remember": self.settings.consent_lifetime > 0,
            },
            form_targets=self.targets(areq),
        )

    # -- POST /login --------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        """GET /login: a sign-in page not tied to an authorization (the account page)."""
        session = self.cookies.load(request, self.now())
        if await self.active_user(session):
            return redirect(self.base + "/account")
        return self.login_page(session, "", None)

    async def login(self, request: Request) -> Response:
        now = self.now()
        session = self.cookies.load(request, now)
        try:
            form = await read_form(request)
        except BadForm:
            return self.error_page("Sign-in failed", "The form could not be read.")
        query = _one(form, "request")
        areq = await self._soft_validate(query)
        if isinstance(areq, Response):
            return areq
        username = _one(form, "username").strip()[:200]
        password = _one(form, "password")
        if (
            session is None
            or not self.origin_ok(request)
            or not self.signer.check_csrf(session.sid, _one(form, "csrf"))
        ):
            self.audit("login.failed", "invalid", request=request, reason="csrf")
            return self.login_page(
                None,
                query,
                areq,
                error="This sign-in form expired. Please sign in again.",
                username=username,
                status=400,
            )
        address = _address(request)
        verdict = await self.throttle.check(username, address)
        if not verdict.allowed:
            self.audit("login.failed", "rate_limited", request=request, reason=verdict.scope)
            return self.locked_page(session, query, areq, verdict, username)
        user = await self.users.by_username(username) if username else None
        ok = await verify_password(user.password_hash if user else None, password)
        if not ok or user is None or user.disabled_at is not None:
            reason = "disabled" if ok and user is not None else "bad_credentials"
            verdict = await self.throttle.failed(username, address)
            self.audit(
                "login.failed",
                "unauthorized",
                request=request,
                subject=user.id if user else None,
                reason=reason,
            )
            if not verdict.allowed:
                self.audit(
                    "login.locked",
                    "rate_limited",
                    request=request,
                    subject=user.id if user else None,
                    reason=verdict.scope,
                )
                return self.locked_page(session, query, areq, verdict, username)
            return self.login_page(
                session,
                query,
                areq,
                error="The username or password is incorrect.",
                username=username,
                status=401,
            )
        await self.throttle.succeeded(username)
        if user.password_hash and needs_rehash(user.password_hash):
            await self.users.set_password_hash(user.id, hash_password(password))
        if user.totp_secret_enc is not None:
            pending = session.awaiting_second_factor(
                user.id, now, self.settings.second_factor_timeout
            )
            self.audit("login.password_ok", "ok", request=request, subject=user.id)
            response = redirect(f"{self.base}/login/totp?" + urlencode({"request": query}))
            self.cookies.save(response, pending, now)
            return response
        return self.signed_in(request, session, user, query, ["pwd"])

    def signed_in(
        self, request: Request, session: Session, user: UserRecord, query: str, amr: list[str]
    ) -> Response:
        now = self.now()
        fresh = session.signed_in(user.id, now, self.settings.session_lifetime, amr)
        self.audit("login.succeeded", "ok", request=request, subject=user.id, amr=" ".join(amr))
        response = redirect(self.authorize_url(_without_prompt_login(query)))
        self.cookies.save(response, fresh, now)
        return response

    def locked_page(
        self,
        session: Session,
        query: str,
        areq: AuthorizationRequest | None,
        verdict: Verdict,
        username: str,
    ) -> Response:
        what = "this account" if verdict.scope == "account" else "your network address"
        response = self.login_page(
            session,
            query,
            areq,
            error=(
                f"Too many failed sign-in attempts for {what}. "
                f"Try again in {_minutes(verdict.retry_after)}."
            ),
            username=username,
            status=429,
        )
        response.headers["Retry-After"] = str(math.ceil(verdict.retry_after))
        return response

    async def _soft_validate(self, query: str) -> AuthorizationRequest | Response | None:
        """The authorization request a form belongs to (None for a plain sign-in)."""
        if not query:
            return None
        try:
            areq, _ = await self.validate(query)
        except UnsafeRequest as exc:
            return self.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            return redirect(exc.redirect_to)
        return areq

    # -- the second factor --------------------------------------------------------------

    def pending(self, session: Session | None) -> str | None:
        if session is None or session.pending_uid is None:
            return None
        if (session.pending_until or 0) <= self.now():
            return None
        return session.pending_uid

    async def totp_form(self, request: Request) -> Response:
        query = request.query_params.get("request", "")
        session = self.cookies.load(request, self.now())
        if self.pending(session) is None or session is None:
            return redirect(self.authorize_url(query) if query else self.base + "/login")
        areq = await self._soft_validate(query)
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
        return self.renderer.page(
            "totp.html",
            {"csrf": self.signer.csrf_token(session.sid), "request": query, "error": error},
            status=status,
            form_targets=self.targets(areq),
        )

    async def totp_submit(self, request: Request) -> Response:
        now = self.now()
        session = self.cookies.load(request, now)
        try:
            form = await read_form(request)
        except BadForm:
            return self.error_page("Sign-in failed", "The form could not be read.")
        query = _one(form, "request")
        uid = self.pending(session)
        if session is None or uid is None:
            return redirect(self.authorize_url(query) if query else self.base + "/login")
        if not self.origin_ok(request) or not self.signer.check_csrf(
            session.sid, _one(form, "csrf")
        ):
            self.audit("login.failed", "invalid", request=request, subject=uid, reason="csrf")
            return self.error_page("Sign-in failed", "This form expired. Please sign in again.")
        areq = await self._soft_validate(query)
        if isinstance(areq, Response):
            return areq
        user = await self.users.get(uid)
        if user is None or user.disabled_at is not None or user.totp_secret_enc is None:
            return redirect(self.authorize_url(query) if query else self.base + "/login")
        address = _address(request)
        verdict = await self.throttle.check(user.username, address)
        if not verdict.allowed:
            self.audit("login.failed", "rate_limited", request=request, subject=uid, reason="totp")
            return self.totp_page(
                session,
                query,
                areq,
                error=f"Too many attempts. Try again in {_minutes(verdict.retry_after)}.",
                status=429,
            )
        secret = _totp.decrypt_secret(self.data_key, uid, user.totp_secret_enc)
        if not await _totp.verify(self.throttle, uid, secret, _one(form, "code"), now):
            await self.throttle.failed(user.username, address)
            self.audit(
                "login.failed", "unauthorized", request=request, subject=uid, reason="totp_invalid"
            )
            return self.totp_page(
                session,
                query,
                areq,
                error="That code is not valid. Try the current one.",
                status=401,
            )
        await self.throttle.succeeded(user.username)
        return self.signed_in(request, session, user, query, ["pwd", "otp"])

    # -- POST /consent ------------------------------------------------------------------

    async def consent(self, request: Request) -> Response:
        now = self.now()
        session = self.cookies.load(request, now)
        try:
            form = await read_form(request)
        except BadForm:
            return self.error_page("Request failed", "The form could not be read.")
        query = _one(form, "request")
        user = await self.active_user(session)
        if user is None or session is None:
            # Signed out (or the session expired) meanwhile: start again at /authorize.
            return redirect(self.authorize_url(query))
        if not self.origin_ok(request) or not self.signer.check_csrf(
            session.sid, _one(form, "csrf")
        ):
            self.audit("consent.failed", "invalid", request=request, subject=user.id, reason="csrf")
            return self.error_page(
                "Request refused",
                "This approval did not come from the page we showed you. Nothing was approved.",
                status=403,
            )
        try:
            areq, _ = await self.validate(query)
        except UnsafeRequest as exc:
            return self.error_page("This sign-in link is not valid", exc.message)
        except RedirectableError as exc:
            return redirect(exc.redirect_to)
        decision = _one(form, "decision")
        if decision != "approve":
            self.audit(
                "consent.denied",
                "denied",
                request=request,
                subject=user.id,
                client_id=areq.client.client_id,
                scopes=areq.scopes,
                audience=areq.resource.uri,
            )
            location = error_redirect(
                self.server, areq, AccessDenied("the user denied the request")
            )
            return redirect(location)
        chosen = {v for k, v in form if k == "scope"}
        approved = tuple(s for s in areq.scopes if s in chosen)
        if _one(form, "remember") == "yes" and self.settings.consent_lifetime > 0:
            await self.users.put_consent(
                ConsentRecord(
                    user_id=user.id,
                    client_id=areq.client.client_id,
                    resource=areq.resource.uri,
                    scope=_scopes.render(approved),
                    granted_at=now,
                )
            )
        self.audit(
            "consent.granted",
            "ok",
            request=request,
            subject=user.id,
            client_id=areq.client.client_id,
            scopes=approved,
            audience=areq.resource.uri,
            remembered=_one(form, "remember") == "yes",
        )
        location = await issue_code(
            self.server, areq, subject=user.id, auth_time=session.auth_time or now, scopes=approved
        )
        return redirect(location)

    # -- the account page: remembered consents -------------------------------------------

    async def account(self, request: Request) -> Response:
        session = self.cookies.load(request, self.now())
        user = await self.active_user(session)
        if user is None or session is None:
            return self.login_page(session, "", None)
        rows = []
        for consent in await self.users.consents_of(user.id):
            client = await self.server.clients.get(consent.client_id)
            resource = next((r for r in self.server.resources() if r.uri == consent.resource), None)
            rows.append(
                {
                    "client_id": consent.client_id,
                    "client_name": client.name if client else consent.client_id,
                    "resource": consent.resource,
                    "resource_name": resource.name if resource else consent.resource,
                    "scopes": consent.scope.split(),
                    "granted": datetime.fromtimestamp(consent.granted_at, tz=UTC).strftime(
                        "%Y-%m-%d %H:%M UTC"
                    ),
                }
            )
        return self.renderer.page(
            "account.html",
            {
                "csrf": self.signer.csrf_token(session.sid),
                "user": user.display_name or user.username,
                "username": user.username,
                "consents": rows,
                "notice": request.query_params.get("notice") == "revoked",
            },
        )

    async def revoke(self, request: Request) -> Response:
        now = self.now()
        session = self.cookies.load(request, now)
        user = await self.active_user(session)
        try:
            form = await read_form(request)
        except BadForm:
            return self.error_page("Request failed", "The form could not be read.")
        if user is None or session is None:
            return redirect(self.base + "/login")
        if not self.origin_ok(request) or not self.signer.check_csrf(
            session.sid, _one(form, "csrf")
        ):
            return self.error_page("Request refused", "This form expired.", status=403)
        client_id, resource = _one(form, "client_id"), _one(form, "resource")
        if await self.users.revoke_consent(user.id, client_id, resource):
            # Withdrawing consent also ends what the client holds for that resource.
            grants = self.server.store.grants
            revocations = []
            for family in await grants.families_of(subject=user.id, client_id=client_id):
                if family.resource == resource and family.revoked_at is None:
                    revocations.append(
                        await grants.revoke_family(
                            family.id, now, "consent_revoked", now + self.server.revocation_ttl
                        )
                    )
            await self.server.publish(revocations)
            self.audit(
                "consent.revoked",
                "ok",
                request=request,
                subject=user.id,
                client_id=client_id,
                audience=resource,
                families=len(revocations),
            )
        return redirect(self.base + "/account?notice=revoked")

    # -- sign out ---------------------------------------------------------------------------

    async def logout_form(self, request: Request) -> Response:
        session = self.cookies.load(request, self.now())
        user = await self.active_user(session)
        if user is None or session is None:
            return self.message("Signed out", "You are signed out.")
        return self.renderer.page(
            "logout.html",
            {
                "csrf": self.signer.csrf_token(session.sid),
                "user": user.display_name or user.username,
            },
        )

    async def logout(self, request: Request) -> Response:
        session = self.cookies.load(request, self.now())
        try:
            form = await read_form(request)
        except BadForm:
            form = []
        if session is not None and not (
            self.origin_ok(request) and self.signer.check_csrf(session.sid, _one(form, "csrf"))
        ):
            return self.error_page("Request refused", "This form expired.", status=403)
        if session is not None and session.uid is not None:
            self.audit("logout", "ok", request=request, subject=session.uid)
        response = self.message("Signed out", "You are signed out. You can close this window.")
        self.cookies.clear(response)
        return response

    def message(self, title: str, message: str) -> Response:
        return self.renderer.page("message.html", {"title": title, "message": message})

    # -- upstream OpenID Connect providers -------------------------------------------------

    @property
    def callback_uri(self) -> str:
        return self.server.settings.issuer + "/oidc/callback"

    async def upstream_start(self, request: Request) -> Response:
        provider = self.upstream.get(request.path_params["name"])
        if provider is None:
            return self.error_page("Unknown sign-in provider", "This provider is not set up.", 404)
        query = request.query_params.get("request", "")
        areq = await self._soft_validate(query)
        if isinstance(areq, Response):
            return areq
        pending = Pending.new()
        try:
            url = await provider.authorization_url(self.callback_uri, pending)
        except UpstreamError as exc:
            return self.error_page("Sign-in is unavailable", str(exc), 502)
        response = redirect(url, 302)
        self.cookies.save_flow(
            response,
            {
                "provider": provider.provider.name,
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.verifier,
                "request": query,
                "exp": self.now() + UPSTREAM_FLOW_LIFETIME,
            },
            UPSTREAM_FLOW_LIFETIME,
        )
        return response

    async def upstream_callback(self, request: Request) -> Response:
        now = self.now()
        flow = self.cookies.load_flow(request)
        params = request.query_params
        state = params.get("state", "")
        if (
            flow is None
            or float(flow.get("exp", 0)) <= now
            or not isinstance(flow.get("state"), str)
            or not _const_eq(flow["state"], state)
        ):
            self.audit("login.failed", "invalid", request=request, reason="upstream_state")
            return self.error_page(
                "Sign-in failed",
                "This sign-in response does not belong to a sign-in started here. "
                "Start again from your application.",
            )
        client = self.upstream.get(str(flow.get("provider")))
        query = str(flow.get("request", ""))
        if client is None:
            return self.error_page("Unknown sign-in provider", "This provider is not set up.", 404)
        provider = client.provider
        if "error" in params or "code" not in params:
            self.audit(
                "login.failed",
                "denied",
                request=request,
                reason="upstream_error",
                upstream=provider.name,
            )
            return self._upstream_failed(query, "The identity provider did not sign you in.")
        pending = Pending(flow["state"], str(flow.get("nonce")), str(flow.get("verifier")))
        try:
            claims = await client.exchange(params["code"], self.callback_uri, pending)
        except UpstreamError as exc:
            self.audit(
                "login.failed",
                "unauthorized",
                request=request,
                reason="upstream_token",
                upstream=provider.name,
            )
            return self._upstream_failed(query, str(exc))
        refused = admission(provider, claims)
        user = None if refused else await self._local_user(provider, claims)
        if user is None or user.disabled_at is not None:
            self.audit(
                "login.failed",
                "forbidden",
                request=request,
                subject=user.id if user else None,
                reason=refused or ("disabled" if user else "not_provisioned"),
                upstream=provider.name,
            )
            return self._upstream_failed(
                query, "Your account is not allowed to sign in here. Ask your administrator."
            )
        session = self.cookies.load(request, now) or Session.anonymous(
            now, self.settings.session_lifetime
        )
        response = self.signed_in(request, session, user, query, ["fed"])
        self.cookies.clear_flow(response)
        return response

    def _upstream_failed(self, query: str, message: str) -> Response:
        response = self.renderer.page(
            "error.html",
            {
                "title": "Sign-in failed",
                "message": message,
                "cancel": self.cancel_url(query) if query else None,
            },
            status=403,
        )
        self.cookies.clear_flow(response)
        return response

    async def _local_user(
        self, provider: UpstreamProvider, claims: dict[str, Any]
    ) -> UserRecord | None:
        issuer, subject = provider.issuer, str(claims["sub"])
        user = await self.users.by_upstream(issuer, subject)
        if user is not None:
            return user
        email = claims.get("email") if claims.get("email_verified") is True else None
        if provider.link_by_email and isinstance(email, str):
            matches = [u for u in await self.users.by_email(email) if u.upstream_issuer is None]
            if len(matches) == 1 and await self.users.link_upstream(matches[0].id, issuer, subject):
                return replace(matches[0], upstream_issuer=issuer, upstream_subject=subject)
        if not provider.create_users:
            return None
        username = email if isinstance(email, str) else f"{provider.name}:{subject}"
        if await self.users.by_username(username) is not None:
            username = f"{provider.name}:{subject}"
        name = claims.get("name")
        record = UserRecord(
            id=new_id(),
            username=username[:200],
            email=email if isinstance(email, str) else None,
            display_name=name[:200] if isinstance(name, str) else None,
            password_hash=None,
            created_at=self.now(),
            upstream_issuer=issuer,
            upstream_subject=subject,
        )
        await self.users.create(record)
        self.audit("user.created", "ok", subject=record.id, upstream=provider.name)
        return record


def _const_eq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode(), b.encode())


def params_client(query: str) -> str | None:
    for name, value in parse_qsl(query[:MAX_QUERY]):
        if name == "client_id":
            return value[:200]
    return None


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


def build_routes(server: AuthorizationServer, settings: PagesSettings) -> list[BaseRoute]:
    pages = Pages(server, settings)
    base = pages.base
    from pathlib import Path

    static = StaticFiles(directory=Path(__file__).parent / "static")
    return [
        Route(base + "/authorize", pages.authorize, methods=["GET"]),
        Route(base + "/authorize/cancel", pages.cancel, methods=["GET"]),
        Route(base + "/login", pages.login_form, methods=["GET"]),
        Route(base + "/login", pages.login, methods=["POST"]),
        Route(base + "/login/totp", pages.totp_form, methods=["GET"]),
        Route(base + "/login/totp", pages.totp_submit, methods=["POST"]),
        Route(base + "/consent", pages.consent, methods=["POST"]),
        Route(base + "/account", pages.account, methods=["GET"]),
        Route(base + "/account/revoke", pages.revoke, methods=["POST"]),
        Route(base + "/logout", pages.logout_form, methods=["GET"]),
        Route(base + "/logout", pages.logout, methods=["POST"]),
        Route(base + "/oidc/start/{name}", pages.upstream_start, methods=["GET"]),
        Route(base + "/oidc/callback", pages.upstream_callback, methods=["GET"]),
        Mount(base + "/static", app=static, name="pages-static"),
    ]
