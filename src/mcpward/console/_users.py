"""The people pages: the users list, one user with their grants (token families) and
consents, and the actions: revoke one grant, revoke everything of a user, withdraw a
consent, offboard."""

from __future__ import annotations

from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mcpward.console._actions import Action, Confirm, Params
from mcpward.console._core import Console, Operator, safe_next
from mcpward.console._display import (
    REVOKED,
    SOURCES,
    client_link,
    short_id,
    stamp,
    user_link,
    with_done,
)
from mcpward.server.pages._render import redirect


class Users:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.ops

    async def index(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        search = q.get("q", "").strip()[:200]
        operators = q.get("operators") == "1"
        page = await self.ops.users.page(
            q.get("cursor"),
            limit=self.console.settings.page_size,
            search=search,
            operators_only=operators,
        )
        filters = {"q": search, "operators": "1" if operators else ""}
        more = "/users?" + urlencode({**filters, "cursor": page.next}) if page.next else None
        return self.console.page(
            "users.html",
            {
                "page": page,
                "filters": filters,
                "next_url": more,
                "first_url": "/users?" + urlencode(filters) if q.get("cursor") else None,
                "total": await self.ops.users.count(),
                "stamp": stamp,
                "link": user_link,
            },
            operator=operator,
            section="users",
        )

    async def show(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        user = await self.ops.users.get(q.get("id", ""))
        families = await self.ops.grants.families(
            q.get("cursor"), subject=user.id, limit=self.console.settings.page_size
        )
        consents = await self.ops.users.consents(user)
        clients = await self.console.server.store.clients.get_many(
            {c.client_id for c in consents} | {f.family.client_id for f in families.items}
        )
        here = user_link(user.id)
        return self.console.page(
            "user.html",
            {
                "user": user,
                "families": families,
                "consents": consents,
                "clients": clients,
                "client_names": {cid: c.name for cid, c in clients.items()},
                "here": here,
                "next_url": f"{here}&{urlencode({'cursor': families.next})}"
                if families.next
                else None,
                "done": q.get("done"),
                "stamp": stamp,
                "short_id": short_id,
                "revoked": REVOKED,
                "client_link": client_link,
                "sources": SOURCES,
            },
            operator=operator,
            section="users",
        )

    # -- actions -------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        return [
            Action(
                "/grants/revoke",
                ("id", "back"),
                ("grant.revoked",),
                self._confirm_family,
                self._revoke_family,
            ),
            Action(
                "/users/revoke",
                ("id",),
                ("tokens.revoked",),
                self._confirm_revoke,
                self._revoke,
            ),
            Action(
                "/users/offboard",
                ("id",),
                ("user.offboarded", "tokens.revoked"),
                self._confirm_offboard,
                self._offboard,
            ),
            Action(
                "/consents/withdraw",
                ("user", "client", "resource"),
                ("consent.revoked",),
                self._confirm_withdraw,
                self._withdraw,
            ),
        ]

    async def _confirm_family(self, operator: Operator, p: Params) -> Confirm:
        family = await self.ops.grants.family(p["id"])
        user = await self.ops.users.resolve(family.subject)
        return Confirm(
            title="Revoke this grant?",
            lede=(
                "Its refresh token and every access token issued from it stop working at "
                "every guard. The user's other grants are not touched."
            ),
            button="Revoke grant",
            back=safe_next(p["back"], user_link(family.subject)),
            facts=[
                ("Grant", family.id),
                ("User", user.username if user else family.subject),
                ("Client", family.client_id),
                ("Server", family.resource),
                ("Scopes", family.scope or "—"),
                ("Status", "revoked already" if family.revoked_at else "live"),
            ],
            enabled=family.revoked_at is None,
        )

    async def _revoke_family(self, request: Request, operator: Operator, p: Params) -> Response:
        family = await self.ops.grants.family(p["id"])
        await self.ops.grants.revoke_family(family.id, operator.actor)
        return redirect(with_done(safe_next(p["back"], user_link(family.subject)), "grant"))

    async def _user_facts(self, user_id: str) -> tuple[str, list[tuple[str, str]], int]:
        user = await self.ops.users.get(user_id)
        live = (await self.console.server.store.grants.live_families(subjects=[user.id])).get(
            user.id, 0
        )
        name = user.display_name or user.username
        facts = [("Username", user.username), ("User ID", user.id), ("Live grants", str(live))]
        return name, facts, live

    async def _confirm_revoke(self, operator: Operator, p: Params) -> Confirm:
        name, facts, live = await self._user_facts(p["id"])
        return Confirm(
            title=f"Revoke every token of {name}?",
            lede=(
                f"Their {live} live grant(s) and every access token issued to them so far "
                "stop working at every guard. The account stays enabled: they can sign in "
                "and approve applications again."
            ),
            button="Revoke all tokens",
            back=user_link(p["id"]),
            facts=facts,
        )

    async def _revoke(self, request: Request, operator: Operator, p: Params) -> Response:
        user = await self.ops.users.get(p["id"])
        await self.ops.grants.revoke_subject(user.id, operator.actor, reason="operator_revoked")
        return redirect(with_done(user_link(user.id), "revoked"))

    async def _confirm_offboard(self, operator: Operator, p: Params) -> Confirm:
        name, facts, live = await self._user_facts(p["id"])
        return Confirm(
            title=f"Offboard {name}?",
            lede=(
                f"The account is disabled, its {live} live grant(s) and every access token "
                "are revoked at every guard, and every consent is forgotten, at once, as "
                "mcpward users offboard does."
            ),
            button="Offboard user",
            back=user_link(p["id"]),
            facts=facts,
        )

    async def _offboard(self, request: Request, operator: Operator, p: Params) -> Response:
        user = await self.ops.users.get(p["id"])
        await self.ops.users.offboard(user, operator.actor)
        return redirect(with_done(user_link(user.id), "offboarded"))

    async def _confirm_withdraw(self, operator: Operator, p: Params) -> Confirm:
        user = await self.ops.users.get(p["user"])
        return Confirm(
            title=f"Withdraw {p['client']}'s access for {user.username}?",
            lede=(
                "The remembered approval is forgotten and the client's grants for this "
                "server are revoked; the person is asked again next time."
            ),
            button="Withdraw consent",
            back=user_link(user.id),
            facts=[("User", user.username), ("Client", p["client"]), ("Server", p["resource"])],
        )

    async def _withdraw(self, request: Request, operator: Operator, p: Params) -> Response:
        user = await self.ops.users.get(p["user"])
        await self.ops.users.withdraw_consent(user, p["client"], p["resource"], operator.actor)
        return redirect(with_done(user_link(user.id), "withdrawn"))
