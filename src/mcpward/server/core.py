"""The authorization server as one object: configuration, storage, keys, clients, audit
and the revocation publisher, each built once by the composition root
(:mod:`mcpward.compose`) and passed in. Endpoints (``app.py``), the operator CLI and the
login pages all work through it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mcpward._clock import Clock, system_clock
from mcpward._outage import OutageLog
from mcpward.audit import AuditEvent, AuditLog, EventName, Outcome
from mcpward.config import Settings
from mcpward.revocation import Revocation, RevocationPublisher
from mcpward.server._assertions import AssertionVerifier
from mcpward.server._client_auth import ClientAuthenticator
from mcpward.server._crypto import DataKey
from mcpward.server._rfc9068 import IssuedAccessToken, mint_access_token
from mcpward.server._rfc9449 import TokenEndpointProofs
from mcpward.server._workload import WorkloadTrust
from mcpward.server.clients import ClientRegistry
from mcpward.server.keys import KeyRing
from mcpward.server.resources import ResourceRegistry
from mcpward.state import RateLimiter, ReplayCache, SharedState, StateUnavailable
from mcpward.storage.contracts import Store
from mcpward.storage.records import FamilyRecord, ResourceRecord

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
        *,
        store: Store,
        keys: KeyRing,
        clients: ClientRegistry,
        client_auth: ClientAuthenticator,
        resources: ResourceRegistry,
        audit: AuditLog,
        shared: SharedState,
        publisher: RevocationPublisher,
        successor_key: DataKey,
        dpop: TokenEndpointProofs,
        assertion_verifier: AssertionVerifier,
        workload: WorkloadTrust,
        clock: Clock = system_clock,
    ) -> None:
        self.settings = settings
        self.store = store
        self.keys = keys
        self.clients = clients
        self.client_auth = client_auth
        self.resource_registry = resources
        self.audit = audit
        # What replicas share (memory or Redis): the anonymous-registration limit per
        # address, one-time-use values (proof jtis, nonces).
        self.shared = shared
        self.registrations: RateLimiter = shared.rate_limiter
        self.replay: ReplayCache = shared.replay
        # Where revocations go once committed: Redis, or this process's guard view.
        self.publisher = publisher
        # Encrypts a rotated refresh token's successor for its retry window.
        self.successor_key = successor_key
        # DPoP proofs of token requests (RFC 9449): checked, their jtis spent in `replay`.
        self.dpop = dpop
        # JWT grants from trusted issuers (ID-JAGs, workload JWTs) and the workload rules.
        self.assertion_verifier = assertion_verifier
        self.workload = workload
        self.clock = clock
        self.endpoints = Endpoints(settings.issuer)
        # Storage failures are answered 503 each, and logged once per outage; the end of
        # an outage is noticed by the next successful readiness check or maintenance run.
        self.storage_outage = OutageLog("storage", log, "requests that need it answer 503")

    async def close(self) -> None:
        await self.store.close()
        await self.shared.aclose()
        self.audit.close()

    async def maintain(self, interval: float = 60.0) -> None:
        """Run forever: follow key rotations and resource changes made by other processes
        (the CLI, other replicas) and purge expired codes, tokens and revocations."""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.keys.load()
                await self.resource_registry.reload()
                now = self.clock()
                await self.store.grants.purge_expired(now)
                await self.store.metadata_documents.purge_expired(now)
                await self.store.sessions.purge_expired(now)
            except Exception as exc:  # keep serving; readiness reports storage trouble
                self.storage_outage.failed(type(exc).__name__)
            else:
                self.storage_outage.succeeded()

    # -- resources (RFC 8707) -------------------------------------------------------------

    async def reload_resources(self) -> None:
        await self.resource_registry.reload()

    async def register_resource(self, resource: ResourceRecord) -> None:
        await self.resource_registry.register(resource)

    def resources(self) -> list[ResourceRecord]:
        return self.resource_registry.all()

    def resolve_resource(self, values: Sequence[str]) -> ResourceRecord:
        """The one protected resource a request names (or the configured default)."""
        return self.resource_registry.resolve(values)

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
        jkt: str | None = None,
        lifetime: float | None = None,
        act: Mapping[str, Any] | None = None,
    ) -> IssuedAccessToken:
        """An access token; with ``jkt``, bound to that DPoP key (``cnf.jkt``);
        ``lifetime`` shortens the configured one (exchanged tokens), ``act`` names who
        acts for the subject (RFC 8693 §4.1)."""
        return mint_access_token(
            self.keys,
            issuer=self.settings.issuer,
            subject=subject,
            client_id=client_id,
            audience=resource,
            scope=scope,
            now=self.clock(),
            lifetime=min(lifetime, self.settings.lifetimes.access_token)
            if lifetime is not None
            else self.settings.lifetimes.access_token,
            family_id=family_id,
            auth_time=auth_time,
            jkt=jkt,
            act=act,
        )

    # -- revocation -------------------------------------------------------------------------

    @property
    def revocation_ttl(self) -> float:
        """How long a family/subject/client revocation must be remembered: as long as an
        access token issued just before it can live."""
        lifetimes = self.settings.lifetimes
        return lifetimes.access_token + lifetimes.leeway + self.clients.cache_ttl

    async def publish(self, revocations: Sequence[Revocation | None]) -> None:
        """Tell guards now. The revocations are already durable in the log; if the shared
        state cannot take them (Redis down), the log relay republishes them once it is
        back (``mcpward.revocation.relay``), so the caller's request still succeeds."""
        items = [r for r in revocations if r is not None]
        if items:
            # Logged once per outage by the backend; the relay republishes.
            with contextlib.suppress(StateUnavailable):
                await self.publisher.publish(items)

    async def revoke_family(
        self, family: FamilyRecord, *, reason: str, event: EventName, outcome: Outcome
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
            self.audit.emit(AuditEvent("client.disabled", "ok", client_id=client_id))
            await self.revoke_client(client_id, reason="client_disabled")
        return changed
