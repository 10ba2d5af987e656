"""The authorization server as one object: configuration, storage, keys, audit and the
revocation publisher, wired together. Endpoints (``app.py``), the operator CLI and the
login pages all work through it."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from mcpward._clock import Clock, system_clock
from mcpward.audit import AuditEvent, AuditLog, Outcome, sink_from_spec
from mcpward.config import Settings
from mcpward.revocation import NullPublisher, Revocation, RevocationPublisher
from mcpward.server._client_auth import ClientAuthenticator
from mcpward.server._crypto import DataKey
from mcpward.server._rfc9068 import IssuedAccessToken, mint_access_token
from mcpward.server.clients import ClientRegistry
from mcpward.server.errors import InvalidTarget
from mcpward.server.keys import KeyRing
from mcpward.storage.records import FamilyRecord, ResourceRecord
from mcpward.storage.sql import SqlStore

log = logging.getLogger("mcpward.server")


@dataclass(frozen=True, slots=True)
class Endpoints:
    issuer: str

    @property
    def authorization(self) -> str:
        return self.issuer + "/authorize"

    @property
    def token(self) -> str:
        return self.issuer + "/token"

    @property
    def jwks(self) -> str:
        return self.issuer + "/jwks.json"

    @property
    def registration(self) -> str:
        return self.issuer + "/register"

    @property
    def revocation(self) -> str:
        return self.issuer + "/revoke"

    @property
    def introspection(self) -> str:
        return self.issuer + "/introspect"


class AuthorizationServer:
    def __init__(
        self,
        settings: Settings,
        store: SqlStore,
        *,
        keys: KeyRing,
        audit: AuditLog,
        publisher: RevocationPublisher | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.audit = audit
        self.publisher: RevocationPublisher = NullPublisher() if publisher is None else publisher
        self.clock = clock
        self.endpoints = Endpoints(settings.issuer)
        lifetimes = settings.lifetimes
        self.clients = ClientRegistry(
            store.clients,
            clock,
            secret_lifetime=lifetimes.client_secret,
            secret_overlap=lifetimes.client_secret_overlap,
        )
        self.client_auth = ClientAuthenticator(
            self.clients,
            clock,
            audiences=(settings.issuer, self.endpoints.token),
            remember_jti=store.grants.remember_assertion,
            leeway=lifetimes.leeway,
        )
        self._resources: dict[str, ResourceRecord] = {}

        # Client ID Metadata Documents and private_key_jwt jwks_uri share one SSRF-safe
        # fetcher; documents resolve only when enabled.
        from mcpward.server._cimd import MetadataDocumentResolver

        self.metadata_documents = MetadataDocumentResolver(self)
        self.client_auth.fetch_jwks = self.metadata_documents.fetch_jwks
        if settings.client_metadata_documents.enabled:
            self.clients.metadata_resolver = self.metadata_documents

    @classmethod
    async def open(
        cls,
        settings: Settings,
        *,
        audit: AuditLog | None = None,
        publisher: RevocationPublisher | None = None,
        clock: Clock = system_clock,
        migrate: bool = True,
    ) -> AuthorizationServer:
        store = await SqlStore.open(settings.resolved_database_url(), migrate=migrate)
        lifetimes = settings.lifetimes
        keys = KeyRing(
            store.keys,
            DataKey(settings.resolved_data_key()),
            clock,
            alg=settings.signing_alg,
            publish_lead=lifetimes.signing_key_publish_lead,
            token_lifetime=lifetimes.access_token,
            leeway=lifetimes.leeway,
        )
        await keys.ensure_one()
        if audit is None:
            audit = AuditLog([sink_from_spec(settings.audit_sink)], clock)
        server = cls(settings, store, keys=keys, audit=audit, publisher=publisher, clock=clock)
        await server.reload_resources()
        return server

    async def close(self) -> None:
        await self.store.close()
        self.audit.close()

    async def maintain(self, interval: float = 60.0) -> None:
        """Run forever: follow key rotations and resource changes made by other processes
        (the CLI, other replicas) and purge expired codes, tokens and revocations."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.keys.load()
                await self.reload_resources()
                await self.store.grants.purge_expired(self.clock())
                await self.metadata_documents.documents.purge_expired(self.clock())
                await self.store.sessions.purge_expired(self.clock())
            except Exception as exc:  # keep serving; readiness reports storage trouble
                log.warning("maintenance failed: %s", type(exc).__name__)

    # -- resources (RFC 8707) -------------------------------------------------------------

    async def reload_resources(self) -> None:
        self._resources = {r.uri: r for r in await self.store.resources.all()}

    async def register_resource(self, resource: ResourceRecord) -> None:
        await self.store.resources.put(resource)
        await self.reload_resources()

    def resources(self) -> list[ResourceRecord]:
        return list(self._resources.values())

    def resolve_resource(self, values: Sequence[str]) -> ResourceRecord:
        """The one protected resource a request names (or the configured default)."""
        if len(values) > 1:
            raise InvalidTarget("request one resource per token")
        uri = values[0] if values else self.settings.default_resource
        if not uri:
            raise InvalidTarget("the resource parameter is required")
        resource = self._resources.get(uri)
        if resource is None:
            raise InvalidTarget(self._unknown_resource(uri))
        return resource

    def _unknown_resource(self, uri: str) -> str:
        """Resources are compared exactly as registered (RFC 8707, MCP: the canonical URI);
        a near miss names the registered resource, never echoing what the client sent."""
        for known in self._resources:
            if known.rstrip("/") == uri.rstrip("/") or known.lower() == uri.lower():
                return f"unknown resource; the registered one is {known} (compared exactly)"
        return "unknown resource"

    # -- tokens ---------------------------------------------------------------------------

    def mint(
        self,
        *,
        subject: str,
        client_id: str,
        resource: str,
        scope: str,
        family_id: str | None = None,
        auth_time: float | None = None,
    ) -> IssuedAccessToken:
        return mint_access_token(
            self.keys,
            issuer=self.settings.issuer,
            subject=subject,
            client_id=client_id,
            audience=resource,
            scope=scope,
            now=self.clock(),
            lifetime=self.settings.lifetimes.access_token,
            family_id=family_id,
            auth_time=auth_time,
        )

    # -- revocation -------------------------------------------------------------------------

    @property
    def revocation_ttl(self) -> float:
        """How long a family/subject/client revocation must be remembered: as long as an
        access token issued just before it can live."""
        lifetimes = self.settings.lifetimes
        return lifetimes.access_token + lifetimes.leeway + self.clients.cache_ttl

    async def publish(self, revocations: Sequence[Revocation | None]) -> None:
        items = [r for r in revocations if r is not None]
        if items:
            await self.publisher.publish(items)

    async def revoke_family(
        self, family: FamilyRecord, *, reason: str, event: str, outcome: Outcome
    ) -> Revocation | None:
        """Revoke a grant: every refresh token of the family, and (through the revocations
        feed) every access token issued from it. Audited as ``event``."""
        now = self.clock()
        revocation = await self.store.grants.revoke_family(
            family.id, now, reason, now + self.revocation_ttl
        )
        await self.publish([revocation])
        self.audit.emit(
            AuditEvent(
                event,
                outcome,
                client_id=family.client_id,
                subject=family.subject,
                audience=family.resource,
                reason=reason,
                detail={"family": family.id},
            )
        )
        return revocation

    async def revoke_subject(self, subject: str, reason: str = "offboarded") -> Revocation:
        """Every grant and access token of a user, at once (offboarding)."""
        now = self.clock()
        revocation = await self.store.grants.revoke_all(
            "subject", subject, now, now + self.revocation_ttl, reason
        )
        await self.publish([revocation])
        self.audit.emit(AuditEvent("tokens.revoked", "ok", subject=subject, reason=reason))
        return revocation

    async def revoke_client(self, client_id: str, reason: str = "client_revoked") -> Revocation:
        """Every grant and access token of a client. Because replicas may still hold the
        client in their lookup cache for ``cache_ttl``, the revocation reaches that far into
        the future, so a token minted from a stale cache is refused too."""
        now = self.clock()
        revocation = await self.store.grants.revoke_all(
            "client",
            client_id,
            now + self.clients.cache_ttl,
            now + self.revocation_ttl,
            reason,
        )
        await self.publish([revocation])
        self.audit.emit(AuditEvent("tokens.revoked", "ok", client_id=client_id, reason=reason))
        return revocation

    async def revoke_jti(self, jti: str, expires_at: float) -> Revocation:
        revocation = Revocation(
            "jti", jti, self.clock(), expires_at + self.settings.lifetimes.leeway
        )
        await self.store.grants.add_revocations([revocation])
        await self.publish([revocation])
        return revocation

    async def disable_client(self, client_id: str) -> bool:
        changed = await self.clients.disable(client_id)
        if changed:
            await self.revoke_client(client_id, reason="client_disabled")
        return changed
