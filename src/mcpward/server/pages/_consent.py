"""The consent page (who asks, where the answer goes, each scope with the tools it
unlocks) and ``POST /consent``: approve (some of) the scopes, or deny."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from mcpward.server import _scopes
from mcpward.server._authorization import AuthorizationRequest, error_redirect, issue_code
from mcpward.server.errors import AccessDenied
from mcpward.server.pages._display import redirect_target
from mcpward.server.pages._pages import Form, Pages, one
from mcpward.server.pages._render import redirect
from mcpward.server.pages._session import Session
from mcpward.storage.records import ConsentRecord, UserRecord


def consent_page(
    pages: Pages, session: Session, user: UserRecord, query: str, areq: AuthorizationRequest
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
    open_tools = [str(t.get("name", "")) for t in resource.tools if not t.get("scopes_required")]
    client = areq.client
    return pages.renderer.page(
        "consent.html",
        {
            "csrf": pages.signer.csrf_token(session.sid),
            "request": query,
            "user": user.display_name or user.username,
            "client": client,
            "client_host": urlsplit(client.client_id).hostname if client.source == "cimd" else None,
            "verified": client.source == "preregistered",
            "redirect": redirect_target(areq.redirect_uri),
            "resource": resource,
            "scopes": scopes,
            "open_tools": open_tools,
            "remember": pages.settings.consent_lifetime > 0,
        },
        form_targets=pages.targets(areq),
    )


class Consent:
    def __init__(self, pages: Pages) -> None:
        self.pages = pages

    async def consent(self, request: Request, session: Session | None, form: Form) -> Response:
        pages = self.pages
        now = pages.now()
        query = one(form, "request")
        user = await pages.active_user(session)
        if user is None or session is None:
            # Signed out (or the session expired) meanwhile: start again at /authorize.
            return redirect(pages.authorize_url(query))
        if not pages.form_ok(request, session, form):
            pages.audit(
                "consent.failed", "invalid", request=request, subject=user.id, reason="csrf"
            )
            return pages.error_page(
                "Request refused",
                "This approval did not come from the page we showed you. Nothing was approved.",
                status=403,
            )
        areq = await pages.checked_request(query)
        if isinstance(areq, Response):
            return areq
        if one(form, "decision") != "approve":
            pages.audit_request("consent.denied", "denied", request, areq, subject=user.id)
            return redirect(
                error_redirect(pages.server, areq, AccessDenied("the user denied the request"))
            )
        chosen = {v for k, v in form if k == "scope"}
        approved = tuple(s for s in areq.scopes if s in chosen)
        remember = one(form, "remember") == "yes"
        if remember and pages.settings.consent_lifetime > 0:
            await pages.users.put_consent(
                ConsentRecord(
                    user_id=user.id,
                    client_id=areq.client.client_id,
                    resource=areq.resource.uri,
                    scope=_scopes.render(approved),
                    granted_at=now,
                )
            )
        pages.audit_request(
            "consent.granted",
            "ok",
            request,
            areq,
            subject=user.id,
            scopes=approved,
            remembered=remember,
        )
        location = await issue_code(
            pages.server, areq, subject=user.id, auth_time=session.auth_time or now, scopes=approved
        )
        return redirect(location)
