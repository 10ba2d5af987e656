"""Building the authorization server: every collaborator once, its dependencies passed in.

``open_server`` is what the operator CLI and the testing kit call; ``assemble`` is the
same on a :class:`~mcpward.storage.contracts.Store` someone already opened (a custom
backend, or the app builder that needs the store before it decides how revocations
travel). Nothing here imports the guard or the ``mcp`` SDK.
"""

from __future__ import annotations

import ssl

from mcpward._clock import Clock, system_clock
from mcpward.audit import AuditLog, AuditSink, sink_from_spec
from mcpward.config import ClientMetadataDocuments, DPoPSettings, Settings
from mcpward.dpop import NonceSource, ProofVerifier
from mcpward.revocation import RevocationPublisher
from mcpward.server import AuthorizationServer
from mcpward.server._assertions import AssertionVerifier
from mcpward.server._cimd import MetadataDocumentResolver
from mcpward.server._client_auth import ClientAuthenticator
from mcpward.server._crypto import DataKey
from mcpward.server._jwks_uri import JwksUriFetcher
from mcpward.server._rfc9449 import TokenEndpointProofs
from mcpward.server._safe_fetch import SafeFetcher
from mcpward.server._trusted_keys import IssuerKeys, trust_fetcher
from mcpward.server._workload import WorkloadTrust
from mcpward.server.clients import ClientRegistry
from mcpward.server.keys import KeyRing
from mcpward.server.resources import ResourceRegistry
from mcpward.state import ReplayCache, SharedState, open_shared_state
from mcpward.storage.contracts import MetadataDocumentStore, Store
from mcpward.storage.sql import SqlStore

Verify = ssl.SSLContext | bool


async def open_store(settings: Settings, *, migrate: bool = True) -> SqlStore:
    """The SQL store the settings name (the embedded SQLite file by default)."""
    return await SqlStore.open(settings.resolved_database_url(), migrate=migrate)


async def open_server(
    settings: Settings,
    *,
    audit: AuditLog | None = None,
    shared: SharedState | None = None,
    publisher: RevocationPublisher | None = None,
    clock: Clock = system_clock,
    migrate: bool = True,
    verify: Verify = True,
) -> AuthorizationServer:
    """The authorization server on the settings' database and shared state (Redis when
    ``redis_url`` is set). Revocations are published to ``publisher``, by default to the
    shared state's (Redis: every guard reading it learns at once)."""
    store = await open_store(settings, migrate=migrate)
    return await assemble(
        settings, store, audit=audit, shared=shared, publisher=publisher, clock=clock, verify=verify
    )


async def assemble(
    settings: Settings,
    store: Store,
    *,
    audit: AuditLog | None = None,
    shared: SharedState | None = None,
    publisher: RevocationPublisher | None = None,
    clock: Clock = system_clock,
    verify: Verify = True,
) -> AuthorizationServer:
    lifetimes = settings.lifetimes
    audit = audit or audit_log(settings, clock)
    shared = shared or open_shared_state(settings.resolved_redis_url(), clock)
    data_key = DataKey(settings.resolved_data_key())
    keys = KeyRing(
        store.keys,
        data_key,
        clock,
        alg=settings.signing_alg,
        publish_lead=lifetimes.signing_key_publish_lead,
        token_lifetime=lifetimes.access_token,
        leeway=lifetimes.leeway,
    )
    await keys.ensure_one()
    resources = ResourceRegistry(store.resources, default=settings.default_resource)
    await resources.reload()

    documents = settings.client_metadata_documents
    # Client ID Metadata Documents and private_key_jwt jwks_uri share one SSRF-safe fetcher.
    fetcher = safe_fetcher(documents, verify)
    clients = ClientRegistry(
        store.clients,
        clock,
        secret_lifetime=lifetimes.client_secret,
        secret_overlap=lifetimes.client_secret_overlap,
        metadata_resolver=metadata_resolver(
            documents, store.metadata_documents, resources, audit, clock, fetcher
        )
        if documents.enabled
        else None,
    )
    verifier, workload = trusted_grants(settings, clients, shared, audit, clock)
    client_auth = ClientAuthenticator(
        clients,
        clock,
        audiences=(settings.issuer, settings.issuer + "/token"),
        remember_jti=store.grants.remember_assertion,
        fetch_jwks=JwksUriFetcher(fetcher, clock, cache_ttl=documents.cache_ttl),
        workload=workload if settings.workload_rules else None,
        leeway=lifetimes.leeway,
    )
    return AuthorizationServer(
        settings,
        store=store,
        keys=keys,
        clients=clients,
        client_auth=client_auth,
        resources=resources,
        audit=audit,
        shared=shared,
        publisher=publisher if publisher is not None else shared.publisher,
        successor_key=data_key.derived("refresh-token successor"),
        dpop=token_endpoint_proofs(
            settings.dpop, data_key, shared.replay, settings.issuer + "/token", clock
        ),
        assertion_verifier=verifier,
        workload=workload,
        clock=clock,
    )


def token_endpoint_proofs(
    config: DPoPSettings, data_key: DataKey, replay: ReplayCache, token_url: str, clock: Clock
) -> TokenEndpointProofs:
    """DPoP at the token endpoint: the proof verifier of the deployment's policy, its
    nonces, when required, derived from the data key (so every replica hands out the same
    ones)."""
    if not config.enabled:
        return TokenEndpointProofs(None, replay, token_url)
    nonces = (
        NonceSource(data_key.derive("dpop nonce"), step=config.nonce_step, clock=clock)
        if config.require_nonce
        else None
    )
    verifier = ProofVerifier(
        algorithms=config.algorithms,
        max_age=config.proof_max_age,
        leeway=config.proof_leeway,
        nonces=nonces,
        require_nonce=config.require_nonce,
        clock=clock,
    )
    return TokenEndpointProofs(verifier, replay, token_url)


def audit_log(settings: Settings, clock: Clock = system_clock, sink: str | None = None) -> AuditLog:
    """The audit trail to ``sink`` (default: the settings' ``audit_sink``) and, with
    ``loki_url``, to Loki as well."""
    sinks: list[AuditSink] = [sink_from_spec(sink or settings.audit_sink)]
    loki = settings.resolved_loki_url()
    if loki:
        from mcpward.audit.loki import LokiSink

        sinks.append(LokiSink(loki, labels={"service": "mcpward"}))
    return AuditLog(sinks, clock)


def trusted_grants(
    settings: Settings,
    clients: ClientRegistry,
    shared: SharedState,
    audit: AuditLog,
    clock: Clock,
) -> tuple[AssertionVerifier, WorkloadTrust]:
    """The verifier of JWT grants from the configured trusted issuers (keys through an
    SSRF-safe fetcher of their own), and the workload rules on top of it."""
    issuers = settings.trusted_issuers
    fetcher = trust_fetcher(issuers)
    verifier = AssertionVerifier(
        [IssuerKeys(i, fetcher, clock) for i in issuers], clock, leeway=settings.lifetimes.leeway
    )
    workload = WorkloadTrust(
        verifier,
        settings.workload_rules,
        clients,
        shared.replay,
        audit,
        issuer=settings.issuer,
    )
    return verifier, workload


def safe_fetcher(config: ClientMetadataDocuments, verify: Verify = True) -> SafeFetcher:
    return SafeFetcher(
        timeout=config.timeout,
        allow_private_hosts=config.allow_private_hosts,
        allow_http=config.allow_http,
        verify=verify,
    )


def metadata_resolver(
    config: ClientMetadataDocuments,
    documents: MetadataDocumentStore,
    resources: ResourceRegistry,
    audit: AuditLog,
    clock: Clock,
    fetcher: SafeFetcher | None = None,
) -> MetadataDocumentResolver:
    """The Client ID Metadata Document resolver the client registry consults."""
    return MetadataDocumentResolver(
        config,
        documents=documents,
        resources=resources,
        fetcher=fetcher or safe_fetcher(config),
        audit=audit,
        clock=clock,
    )
