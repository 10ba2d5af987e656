"""The clients pages: the list (filters, a page at a time), one client with its secrets
and grants, and its actions: disable, revoke every token, rotate the secret (shown once,
on the response to the rotation only), and prune never-used registrations."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response

from mcpward.console._actions import Action, Confirm, Params
from mcpward.console._core import Console, Operator
from mcpward.console._display import REVOKED, SOURCES, client_link, stamp, user_link, with_done
from mcpward.operations import NotFound
from mcpward.server.pages._render import redirect
from mcpward.storage.records import ClientSource, ClientStatus

DAY = 86_400.0
PRUNE_SHOWN = 50


def _days(value: str, default: int = 30) -> int:
    try:
        days = int(value)
    except ValueError:
        return default
    return min(max(days, 1), 3650)


class Clients:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.ops = console.ops

    async def index(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        source = q.get("source") if q.get("source") in SOURCES else None
        status = q.get("status") if q.get("status") in ("active", "disabled") else None
        search = q.get("q", "").strip()[:200]
        page = await self.ops.clients.page(
            q.get("cursor"),
            limit=self.console.settings.page_size,
            source=cast(ClientSource | None, source),
            status=cast(ClientStatus | None, status),
            search=search,
        )
        filters = {"source": source or "", "status": status or "", "q": search}
        more = "/clients?" + urlencode({**filters, "cursor": page.next}) if page.next else None
        counts = await self.ops.clients.counts()
        return self.console.page(
            "clients.html",
            {
                "page": page,
                "filters": filters,
                "sources": SOURCES,
                "next_url": more,
                "first_url": "/clients?" + urlencode(filters) if q.get("cursor") else None,
                "total": sum(counts.values()),
                "pruned": int(pruned) if (pruned := q.get("pruned", "")[:9]).isdigit() else None,
                "stamp": stamp,
                "link": client_link,
            },
            operator=operator,
            section="clients",
        )

    async def show(self, request: Request, operator: Operator) -> Response:
        q = request.query_params
        client_id = q.get("id", "")
        detail = await self.ops.clients.detail(client_id)
        families = await self.ops.grants.families(
            q.get("cursor"), client_id=client_id, limit=self.console.settings.page_size
        )
        here = client_link(client_id)
        users = await self.console.server.store.users.get_many(
            {f.family.subject for f in families.items}
        )
        return self.console.page(
            "client.html",
            {
                "detail": detail,
                "client": detail.summary.client,
                "families": families,
                "next_url": f"{here}&{urlencode({'cursor': families.next})}"
                if families.next
                else None,
                "here": here,
                "done": q.get("done"),
                "sources": SOURCES,
                "stamp": stamp,
                "revoked": REVOKED,
                "user_link": user_link,
                "usernames": {uid: u.username for uid, u in users.items()},
                "has_secret": detail.summary.client.token_endpoint_auth_method
                in ("client_secret_basic", "client_secret_post"),
            },
            operator=operator,
            section="clients",
        )

    # -- actions -------------------------------------------------------------------------

    def actions(self) -> list[Action]:
        return [
            Action(
                "/clients/disable",
                ("id",),
                ("client.disabled", "tokens.revoked"),
                self._confirm_disable,
                self._disable,
            ),
            Action(
                "/clients/revoke",
                ("id",),
                ("tokens.revoked",),
                self._confirm_revoke,
                self._revoke,
            ),
            Action(
                "/clients/rotate-secret",
                ("id",),
                ("client.secret_rotated",),
                self._confirm_rotate,
                self._rotate,
            ),
            Action(
                "/clients/prune",
                ("days",),
                ("client.pruned",),
                self._confirm_prune,
                self._prune,
            ),
        ]

    async def _facts(self, client_id: str) -> tuple[str, list[tuple[str, str]], int]:
        detail = await self.ops.clients.detail(client_id)
        c = detail.summary.client
        facts = [
            ("Client ID", c.client_id),
            ("Source", SOURCES.get(c.source, c.source)),
            ("Live grants", str(detail.summary.live_grants)),
        ]
        return c.name, facts, detail.summary.live_grants

    async def _confirm_disable(self, operator: Operator, p: Params) -> Confirm:
        name, facts, live = await self._facts(p["id"])
        return Confirm(
            title=f"Disable {name}?",
            lede=(
                f"The client can no longer get tokens. Its {live} live grant(s) and every "
                "access token it holds are revoked at every guard."
            ),
            button="Disable client",
            back=client_link(p["id"]),
            facts=facts,
        )

    async def _disable(self, request: Request, operator: Operator, p: Params) -> Response:
        if not await self.ops.clients.disable(p["id"], operator.actor):
            raise NotFound(f"no enabled client {p['id']}")
        return redirect(with_done(client_link(p["id"]), "disabled"))

    async def _confirm_revoke(self, operator: Operator, p: Params) -> Confirm:
        name, facts, live = await self._facts(p["id"])
        return Confirm(
            title=f"Revoke every token of {name}?",
            lede=(
                f"Its {live} live grant(s) and every access token issued to it so far stop "
                "working at every guard. The client stays enabled and can get new tokens."
            ),
            button="Revoke all tokens",
            back=client_link(p["id"]),
            facts=facts,
        )

    async def _revoke(self, request: Request, operator: Operator, p: Params) -> Response:
        await self.ops.clients.detail(p["id"])  # NotFound for an unknown client
        await self.ops.clients.revoke_tokens(p["id"], operator.actor, reason="operator_revoked")
        return redirect(with_done(client_link(p["id"]), "revoked"))

    async def _confirm_rotate(self, operator: Operator, p: Params) -> Confirm:
        name, facts, _ = await self._facts(p["id"])
        overlap = self.console.server.settings.lifetimes.client_secret_overlap / DAY
        return Confirm(
            title=f"Rotate the secret of {name}?",
            lede=(
                f"A new secret is shown once, on the next page. The current one keeps "
                f"working for {overlap:g} more day(s), so deployments can switch over."
            ),
            button="Rotate secret",
            back=client_link(p["id"]),
            facts=facts,
        )

    async def _rotate(self, request: Request, operator: Operator, p: Params) -> Response:
        secret = await self.ops.clients.rotate_secret(p["id"], operator.actor)
        # The only response that ever carries it; no-store, and nothing else keeps it.
        return self.console.page(
            "secret.html",
            {"secret": secret, "stamp": stamp, "back": client_link(p["id"])},
            operator=operator,
            section="clients",
        )

    async def _confirm_prune(self, operator: Operator, p: Params) -> Confirm:
        days = _days(p["days"])
        result = await self.ops.clients.prune(operator.actor, older_than=days * DAY, dry_run=True)
        ids = [c.client_id for c in result.candidates]
        shown = ids[:PRUNE_SHOWN]
        more = [f"… and {len(ids) - len(shown)} more"] if len(ids) > len(shown) else []
        return Confirm(
            title=f"Delete {len(ids)} never-used registration(s)?",
            lede=(
                f"Dynamically registered clients that never got a token, registered more "
                f"than {days} day(s) ago. Pre-registered and metadata-document clients are "
                "never pruned. This is what mcpward clients prune does."
            ),
            button="Delete them",
            back="/clients?source=dcr",
            items=shown + more,
            enabled=bool(ids),
            adjust=("days", "Registered more than this many days ago", str(days)),
        )

    async def _prune(self, request: Request, operator: Operator, p: Params) -> Response:
        days = _days(p["days"])
        result = await self.ops.clients.prune(operator.actor, older_than=days * DAY)
        return redirect("/clients?" + urlencode({"source": "dcr", "pruned": len(result.pruned)}))
