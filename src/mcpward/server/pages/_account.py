"""The account page (remembered consents, which can be withdrawn) and signing out.

Signing out ends the session on the server, not only in this browser: a copy of the
cookie is refused afterwards by every replica."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server.pages._display import Moment, RedirectTarget, moment, redirect_target
from mcpward.server.pages._login import login_page
from mcpward.server.pages._pages import BadForm, Form, Pages, one, read_form
from mcpward.server.pages._render import redirect
from mcpward.server.pages._session import Session


@dataclass(frozen=True, slots=True)
class Approval:
    """One row of the account page: an application (client) with access to one server
    (resource) on the person's behalf."""

    client_id: str
    client_name: str
    redirects: tuple[RedirectTarget, ...]
    resource: str
    resource_name: str
    scopes: tuple[str, ...]
    approved: Moment
    last_used: Moment | None


class Account:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def account(self, request: Request) -> Response:
        pages = self.pages
        session = await pages.load_session(request)
        user = await pages.active_user(session)
        if user is None or session is None:
            return login_page(pages, session, "", None)
        return pages.renderer.page(
            "account.html",
            {
                "csrf": pages.signer.csrf_token(session.sid),
                "user": user.display_name or user.username,
                "username": user.username,
                "approvals": await self.approvals(user.id),
                "notice": request.query_params.get("notice") == "revoked",
            },
        )

    async def approvals(self, user_id: str) -> list[Approval]:
        """Every remembered consent of a person, newest first, with what tells apart
        several registrations of the same application: client id, where it sends the
        browser back to, and when it last got tokens."""
        pages = self.pages
        store = pages.server.store
        consents = sorted(
            await pages.users.consents_of(user_id), key=lambda c: (-c.granted_at, c.client_id)
        )
        clients = await store.clients.get_many({c.client_id for c in consents})
        for client_id in {c.client_id for c in consents} - clients.keys():
            # Not stored: a Client ID Metadata Document client, resolved (and cached) by
            # the registry; None when its document cannot be had any more.
            client = await pages.server.clients.get(client_id)
            if client is not None:
                clients[client_id] = client
        resources = {r.uri: r for r in pages.server.resources()}
        last_issued = await store.grants.last_issued(user_id)
        rows = []
        for consent in consents:
            client = clients.get(consent.client_id)
            resource = resources.get(consent.resource)
            last = last_issued.get((consent.client_id, consent.resource))
            redirect_uris = client.redirect_uris if client else ()
            rows.append(
                Approval(
                    client_id=consent.client_id,
                    client_name=client.name if client else consent.client_id,
                    # One entry per place shown (loopback URIs may differ only in path).
                    redirects=tuple(dict.fromkeys(redirect_target(u) for u in redirect_uris)),
                    resource=consent.resource,
                    resource_name=resource.name if resource else consent.resource,
                    scopes=tuple(consent.scope.split()),
                    approved=moment(consent.granted_at),
                    last_used=moment(last) if last is not None else None,
                )
            )
        return rows

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
