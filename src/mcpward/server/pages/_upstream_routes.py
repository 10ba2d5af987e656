"""Signing in through an upstream OpenID Connect provider: ``/oidc/start/{name}`` sends
the browser there (state, nonce and PKCE verifier sealed in a short-lived cookie) and
``/oidc/callback`` maps the verified identity to a local user (found by issuer and
subject, linked by verified email, or created, as the provider's settings allow)."""

from __future__ import annotations

import hmac
from dataclasses import replace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from mcpward._secrets import new_id
from mcpward.server.pages._login import signed_in
from mcpward.server.pages._pages import Pages
from mcpward.server.pages._render import redirect
from mcpward.server.pages._session import Session
from mcpward.server.pages._upstream import Pending, UpstreamError, admission
from mcpward.server.pages.settings import UpstreamProvider
from mcpward.storage.records import UserRecord

UPSTREAM_FLOW_LIFETIME = 600.0


def _const_eq(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Upstream:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    @property
    def callback_uri(self) -> str:
        return self.pages.server.settings.issuer + "/oidc/callback"

    async def start(self, request: Request) -> Response:
        pages = self.pages
        provider = pages.upstream.get(request.path_params["name"])
        if provider is None:
            return pages.error_page("Unknown sign-in provider", "This provider is not set up.", 404)
        query = request.query_params.get("request", "")
        areq = await pages.soft_validate(query)
        if isinstance(areq, Response):
            return areq
        pending = Pending.new()
        try:
            url = await provider.authorization_url(self.callback_uri, pending)
        except UpstreamError as exc:
            return pages.error_page("Sign-in is unavailable", str(exc), 502)
        response = redirect(url, 302)
        pages.cookies.save_flow(
            response,
            {
                "provider": provider.provider.name,
                "state": pending.state,
                "nonce": pending.nonce,
                "verifier": pending.verifier,
                "request": query,
                "exp": pages.now() + UPSTREAM_FLOW_LIFETIME,
            },
            UPSTREAM_FLOW_LIFETIME,
        )
        return response

    async def callback(self, request: Request) -> Response:
        pages = self.pages
        now = pages.now()
        flow = pages.cookies.load_flow(request)
        params = request.query_params
        state = params.get("state", "")
        if (
            flow is None
            or float(flow.get("exp", 0)) <= now
            or not isinstance(flow.get("state"), str)
            or not _const_eq(flow["state"], state)
        ):
            pages.audit("login.failed", "invalid", request=request, reason="upstream_state")
            return pages.error_page(
                "Sign-in failed",
                "This sign-in response does not belong to a sign-in started here. "
                "Start again from your application.",
            )
        client = pages.upstream.get(str(flow.get("provider")))
        query = str(flow.get("request", ""))
        if client is None:
            return pages.error_page("Unknown sign-in provider", "This provider is not set up.", 404)
        provider = client.provider
        if "error" in params or "code" not in params:
            pages.audit(
                "login.failed",
                "denied",
                request=request,
                reason="upstream_error",
                upstream=provider.name,
            )
            return self.failed(query, "The identity provider did not sign you in.")
        pending = Pending(flow["state"], str(flow.get("nonce")), str(flow.get("verifier")))
        try:
            claims = await client.exchange(params["code"], self.callback_uri, pending)
        except UpstreamError as exc:
            pages.audit(
                "login.failed",
                "unauthorized",
                request=request,
                reason="upstream_token",
                upstream=provider.name,
            )
            return self.failed(query, str(exc))
        refused = admission(provider, claims)
        user = None if refused else await self.local_user(provider, claims)
        if user is None or user.disabled_at is not None:
            pages.audit(
                "login.failed",
                "forbidden",
                request=request,
                subject=user.id if user else None,
                reason=refused or ("disabled" if user else "not_provisioned"),
                upstream=provider.name,
            )
            return self.failed(
                query, "Your account is not allowed to sign in here. Ask your administrator."
            )
        session = await pages.load_session(request) or Session.anonymous(
            now, pages.settings.session_lifetime
        )
        response = signed_in(pages, request, session, user, query, ["fed"])
        pages.cookies.clear_flow(response)
        return response

    def failed(self, query: str, message: str) -> Response:
        pages = self.pages
        response = pages.renderer.page(
            "error.html",
            {
                "title": "Sign-in failed",
                "message": message,
                "cancel": pages.cancel_url(query) if query else None,
            },
            status=403,
        )
        pages.cookies.clear_flow(response)
        return response

    async def local_user(
        self, provider: UpstreamProvider, claims: dict[str, Any]
    ) -> UserRecord | None:
        pages = self.pages
        users = pages.users
        issuer, subject = provider.issuer, str(claims["sub"])
        user = await users.by_upstream(issuer, subject)
        if user is not None:
            return user
        email = claims.get("email") if claims.get("email_verified") is True else None
        if provider.link_by_email and isinstance(email, str):
            matches = [u for u in await users.by_email(email) if u.upstream_issuer is None]
            if len(matches) == 1 and await users.link_upstream(matches[0].id, issuer, subject):
                return replace(matches[0], upstream_issuer=issuer, upstream_subject=subject)
        if not provider.create_users:
            return None
        username = email if isinstance(email, str) else f"{provider.name}:{subject}"
        if await users.by_username(username) is not None:
            username = f"{provider.name}:{subject}"
        name = claims.get("name")
        record = UserRecord(
            id=new_id(),
            username=username[:200],
            email=email if isinstance(email, str) else None,
            display_name=name[:200] if isinstance(name, str) else None,
            password_hash=None,
            created_at=pages.now(),
            upstream_issuer=issuer,
            upstream_subject=subject,
        )
        await users.create(record)
        pages.audit("user.created", "ok", subject=record.id, upstream=provider.name)
        return record
