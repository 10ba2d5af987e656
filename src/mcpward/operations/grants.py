"""Operator actions on grants: token families per user and client a page at a time,
and revocation of one family, one access token, or everything of a user or a client.

Every revocation goes through the authorization server's ``revoke_*`` methods, which
log it durably and publish it to the guards (Redis, or the polled table), so it takes
effect at every replica exactly as the CLI's and the revocation endpoint's do."""

from __future__ import annotations

from mcpward.audit import AuditEvent
from mcpward.operations._base import Actor, NotFound, Page, encode_cursor, time_cursor
from mcpward.revocation import Revocation
from mcpward.server import AuthorizationServer
from mcpward.storage.records import FamilyRecord, FamilySummary


class GrantOperations:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.store = server.store.grants

    async def families(
        self,
        cursor: str | None = None,
        *,
        subject: str | None = None,
        client_id: str | None = None,
        live_only: bool = False,
        limit: int = 50,
    ) -> Page[FamilySummary]:
        rows = await self.store.family_page(
            subject=subject,
            client_id=client_id,
            live_only=live_only,
            before=time_cursor(cursor),
            limit=limit + 1,
        )
        more, rows = len(rows) > limit, rows[:limit]
        last = rows[-1].family if more else None
        return Page(rows, encode_cursor(last.created_at, last.id) if last else None)

    async def family(self, family_id: str) -> FamilyRecord:
        family = await self.store.family(family_id)
        if family is None:
            raise NotFound(f"no grant {family_id}")
        return family

    async def revoke_family(self, family_id: str, actor: Actor) -> Revocation | None:
        """One grant: its refresh tokens and every access token issued from it. None when
        it was revoked already (nothing new for the guards)."""
        family = await self.family(family_id)
        return await self.server.revoke_family(
            family, reason="operator_revoked", event="grant.revoked", outcome="ok", actor=str(actor)
        )

    async def revoke_subject(
        self, subject: str, actor: Actor, reason: str = "offboarded"
    ) -> Revocation:
        """Every grant and access token of a user."""
        return await self.server.revoke_subject(subject, reason, actor=str(actor))

    async def revoke_client(
        self, client_id: str, actor: Actor, reason: str = "client_revoked"
    ) -> Revocation:
        """Every grant and access token of a client."""
        return await self.server.revoke_client(client_id, reason, actor=str(actor))

    async def revoke_jti(self, jti: str, actor: Actor) -> Revocation:
        """One access token by its ``jti``, until it would have expired anyway."""
        server = self.server
        lifetime = server.settings.lifetimes.access_token
        revocation = await server.revoke_jti(jti, server.clock() + lifetime)
        server.audit.emit(
            AuditEvent(
                "token.revoked",
                "ok",
                jti=jti,
                reason="operator_revoked",
                actor=str(actor),
            )
        )
        return revocation
