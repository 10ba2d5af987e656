"""Operator actions on clients: list a page at a time, show, create, disable, revoke
everything, rotate a secret, and prune dynamically registered clients never used."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from mcpward.audit import AuditEvent, EventName
from mcpward.operations._base import (
    Actor,
    Conflict,
    NotFound,
    Page,
    Refused,
    encode_cursor,
    time_cursor,
)
from mcpward.revocation import Revocation
from mcpward.server import AuthorizationServer, secret_rotation
from mcpward.server.clients import NewSecret
from mcpward.server.secret_sinks import SecretSink
from mcpward.storage.records import ClientRecord, ClientSource, ClientStatus, SecretRecord

SECRET_METHODS = ("client_secret_basic", "client_secret_post")
DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class ClientSummary:
    """One row of the clients list."""

    client: ClientRecord
    redirect_hosts: tuple[str, ...]
    secret_expires_at: float | None
    live_grants: int


@dataclass(frozen=True, slots=True)
class ClientDetail:
    summary: ClientSummary
    secrets: list[SecretRecord]


@dataclass(frozen=True, slots=True)
class PruneResult:
    candidates: list[ClientRecord]
    pruned: list[str]
    dry_run: bool


def redirect_hosts(client: ClientRecord) -> tuple[str, ...]:
    """Where a client sends the browser back to, by host (a custom scheme as itself)."""
    hosts = []
    for uri in client.redirect_uris:
        parts = urlsplit(uri)
        hosts.append(parts.netloc or f"{parts.scheme}:")
    return tuple(dict.fromkeys(hosts))


class ClientOperations:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.store = server.store.clients

    # -- reading ---------------------------------------------------------------------------

    async def all(self) -> list[ClientRecord]:
        return await self.store.all()

    async def get(self, client_id: str) -> ClientRecord | None:
        return await self.store.get(client_id)

    async def page(
        self,
        cursor: str | None = None,
        *,
        limit: int = 50,
        source: ClientSource | None = None,
        status: ClientStatus | None = None,
        search: str | None = None,
    ) -> Page[ClientSummary]:
        """Newest first; two more indexed queries for the page's secrets and grants."""
        rows = await self.store.page(
            before=time_cursor(cursor),
            limit=limit + 1,
            source=source,
            status=status,
            search=search or None,
        )
        more, rows = len(rows) > limit, rows[:limit]
        summaries = await self._summaries(rows)
        last = rows[-1] if more else None
        return Page(summaries, encode_cursor(last.created_at, last.client_id) if last else None)

    async def _summaries(self, rows: list[ClientRecord]) -> list[ClientSummary]:
        ids = [c.client_id for c in rows]
        expiries = await self.store.secret_expiries(ids)
        grants = await self.server.store.grants.live_families(client_ids=ids)
        return [
            ClientSummary(
                c, redirect_hosts(c), expiries.get(c.client_id), grants.get(c.client_id, 0)
            )
            for c in rows
        ]

    async def detail(self, client_id: str) -> ClientDetail:
        client = await self.store.get(client_id)
        if client is None:
            raise NotFound(f"no client {client_id}")
        (summary,) = await self._summaries([client])
        return ClientDetail(summary, await self.store.secrets(client_id))

    async def counts(self) -> dict[tuple[str, bool], int]:
        return await self.store.counts()

    # -- changes ---------------------------------------------------------------------------

    async def create(
        self, record: ClientRecord, actor: Actor
    ) -> tuple[ClientRecord, NewSecret | None]:
        """Pre-register a client; its secret (if it uses one) is returned once."""
        if await self.store.get(record.client_id) is not None:
            raise Conflict(f"client {record.client_id} already exists")
        secret = await self.server.clients.create(record)
        # What was stored (with its creation time), not the draft handed in.
        stored = await self.store.get(record.client_id)
        assert stored is not None
        self._audit("client.created", stored.client_id, actor)
        return stored, secret

    async def disable(self, client_id: str, actor: Actor) -> bool:
        """Disable the client and revoke every token it holds, at every guard."""
        return await self.server.disable_client(client_id, actor=str(actor))

    async def revoke_tokens(
        self, client_id: str, actor: Actor, reason: str = "client_revoked"
    ) -> Revocation:
        """Every grant and access token of the client (it stays enabled)."""
        return await self.server.revoke_client(client_id, reason, actor=str(actor))

    async def rotate_secret(
        self,
        client_id: str,
        actor: Actor,
        overlap: float | None = None,
        *,
        sink: SecretSink | None = None,
    ) -> NewSecret:
        """A new secret; the old one works for the overlap window. With a ``sink`` (a
        secret store) the new one is delivered there in the order that never loses it
        (``server.secret_rotation``); without, it is returned to be shown once."""
        client = await self.store.get(client_id)
        if client is None or client.token_endpoint_auth_method not in SECRET_METHODS:
            raise Refused(f"{client_id} is not a client with a secret")
        if sink is not None:
            return await secret_rotation.rotate(
                self.server, sink, client_id, overlap, actor=str(actor)
            )
        secret = await self.server.clients.rotate_secret(client_id, overlap)
        self._audit("client.secret_rotated", client_id, actor)
        return secret

    async def rotate_due(
        self, actor: Actor, sink: SecretSink, within: float | None = None
    ) -> secret_rotation.RotationReport:
        """Settle every client against the secret store, then rotate every secret that
        expires within ``within`` seconds (default: the overlap window) into it."""
        lifetimes = self.server.settings.lifetimes
        horizon = lifetimes.client_secret_overlap if within is None else within
        return await secret_rotation.rotate_due(self.server, sink, horizon, actor=str(actor))

    async def prune(
        self, actor: Actor, *, older_than: float = 30 * DAY, dry_run: bool = False
    ) -> PruneResult:
        """Delete dynamically registered clients that never got a token and were
        registered more than ``older_than`` seconds ago (abandoned DCR registrations).
        Pre-registered and metadata-document clients are never pruned."""
        cutoff = self.server.clock() - older_than
        candidates = await self.store.never_used("dcr", cutoff)
        if dry_run or not candidates:
            return PruneResult(candidates, [], dry_run)
        pruned = await self.store.delete_never_used([c.client_id for c in candidates], cutoff)
        for client_id in pruned:
            self.server.clients.invalidate(client_id)
            self._audit("client.pruned", client_id, actor, older_than=older_than)
        return PruneResult(candidates, pruned, dry_run)

    def _audit(
        self,
        event: EventName,
        client_id: str,
        actor: Actor,
        **detail: str | int | float | bool | None,
    ) -> None:
        self.server.audit.emit(
            AuditEvent(event, "ok", client_id=client_id, actor=str(actor), detail=detail)
        )
