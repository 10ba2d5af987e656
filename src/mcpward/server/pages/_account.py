"""The account page (remembered consents, which can be withdrawn) and signing out.

Signing out ends the session on the server, not only in this browser: a copy of the
cookie is refused afterwards by every replica."""

from __future__ import annotations

from datetime import UTC, datetime

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server.pages._login import login_page
from mcpward.server.pages._pages import BadForm, Form, Pages, one, read_form
from mcpward.server.pages._render import redirect
from mcpward.server.pages._session import Session


class Account:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def account(self, request: Request) -> Response:
        pages = self.pages
        session = await pages.load_session(request)
        user = await pages.active_user(session)
        if user is None or session is None:
            return login_page(pages, session, "", None)
        rows = []
        resources = {r.uri: r for r in pages.server.resources()}
        for consent in await pages.users.consents_of(user.id):
            client = await pages.server.clients.get(consent.client_id)
            resource = resources.get(consent.resource)
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
        return pages.renderer.page(
            "account.html",
            {
                "csrf": pages.signer.csrf_token(session.sid),
                "user": user.display_name or user.username,
                "username": user.username,
                "consents": rows,
                "notice": request.query_params.get("notice") == "revoked",
            },
        )

    async def revoke(self, request: Request, session: Session | None, form: Form) -> Response:
        """Withdraw a remembered consent; it also ends what the client holds for that
        resource (every token family of the user, client and resource)."""
        pages = self.pages
        now = pages.now()
        user = await pages.active_user(session)
        if user is None or session is None:
            return redirect(pages.base + "/login")
        if not pages.form_ok(request, session, form):
            return pages.error_page("Request refused", "This form expired.", status=403)
        client_id, resource = one(form, "client_id"), one(form, "resource")
        if await pages.users.revoke_consent(user.id, client_id, resource):
            grants = pages.server.store.grants
            revocations = []
            for family in await grants.families_of(subject=user.id, client_id=client_id):
                if family.resource == resource and family.revoked_at is None:
                    revocations.append(
                        await grants.revoke_family(
                            family.id, now, "consent_revoked", now + pages.server.revocation_ttl
                        )
                    )
            await pages.server.publish(revocations)
            pages.audit(
                "consent.revoked",
                "ok",
                request=request,
                subject=user.id,
                client_id=client_id,
                audience=resource,
                families=len(revocations),
            )
        return redirect(pages.base + "/account?notice=revoked")

    # -- sign out ---------------------------------------------------------------------------

    async def logout_form(self, request: Request) -> Response:
        pages = self.pages
        session = await pages.load_session(request)
        user = await pages.active_user(session)
        if user is None or session is None:
            return pages.message("Signed out", "You are signed out.")
        return pages.renderer.page(
            "logout.html",
            {
                "csrf": pages.signer.csrf_token(session.sid),
                "user": user.display_name or user.username,
            },
        )

    async def logout(self, request: Request) -> Response:
        pages = self.pages
        session = await pages.load_session(request)
        try:
            form = await read_form(request)
        except BadForm:
            form = []
        if session is not None and not pages.form_ok(request, session, form):
            return pages.error_page("Request refused", "This form expired.", status=403)
        if session is not None and (session.uid is not None or session.pending_uid is not None):
            await pages.end_session(session)
            if session.uid is not None:
                pages.audit("logout", "ok", request=request, subject=session.uid)
        response = pages.message("Signed out", "You are signed out. You can close this window.")
        pages.cookies.clear(response)
        return response
