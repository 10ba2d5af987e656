"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP
authorization 2025-11-25 and later): a ``client_id`` that is an HTTPS URL names a JSON
document holding the client's metadata, which this server fetches and caches.

The document's ``client_id`` must equal the URL exactly; the metadata is validated with
the RFC 7591 rules (``_rfc7591.validate_metadata``) narrowed for a document that has no
registration step: ``token_endpoint_auth_method`` is ``none`` (the default) or
``private_key_jwt``, no ``client_secret``, no ``client_credentials`` grant (a document
anyone can publish must not mint machine tokens), and scopes this server does not offer
are dropped instead of refused, because the document is shared by every authorization
server the client talks to. ``application_type`` is inferred as in DCR when absent.

Valid documents are cached in ``client_metadata_documents`` for ``Cache-Control:
max-age`` (``no-store``/``no-cache`` mean not at all), never longer than ``cache_ttl``;
failures are remembered in memory for a short while so that a bad URL is not re-fetched
on every request. A client record built from a document is never written to the
``clients`` table: it is rebuilt (and re-validated) from the cached document.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from urllib.parse import SplitResult, urlsplit

from mcpward._clock import Clock
from mcpward.audit import AuditEvent, AuditLog
from mcpward.config import ClientMetadataDocuments
from mcpward.server._client_metadata import validate_metadata
from mcpward.server._safe_fetch import URL_CHARS, Fetched, FetchRefused, SafeFetcher
from mcpward.server._safe_fetch import shown as shown_url
from mcpward.server.errors import OAuthError
from mcpward.server.resources import ResourceRegistry
from mcpward.storage.contracts import MetadataDocumentStore
from mcpward.storage.records import ClientRecord

log = logging.getLogger("mcpward.server.cimd")

CIMD_AUTH_METHODS = ("none", "private_key_jwt")
CIMD_GRANT_TYPES = ("authorization_code", "refresh_token")
NEGATIVE_TTL = 30.0
_MAX_REMEMBERED = 10_000


def check_client_id_url(url: str, *, allow_http: bool = False) -> SplitResult:
    """The client_id URL rules of the draft (§3): https, a path, no fragment, no
    user-info, no dot segments. Raises FetchRefused("bad_url")."""
    if len(url) > 2048 or not URL_CHARS.match(url) or "\\" in url or "#" in url:
        raise FetchRefused("bad_url")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        raise FetchRefused("bad_url") from None
    schemes = ("https", "http") if allow_http else ("https",)
    if parts.scheme not in schemes or not parts.hostname or "@" in parts.netloc:
        raise FetchRefused("bad_url")
    if parts.path in ("", "/"):
        raise FetchRefused("bad_url")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        raise FetchRefused("bad_url")
    return parts


# -- the resolver ------------------------------------------------------------------------


class MetadataDocumentResolver:
    """Turns an HTTPS ``client_id`` into a client record, or None (the client registry's
    ``metadata_resolver``)."""

    def __init__(
        self,
        config: ClientMetadataDocuments,
        *,
        documents: MetadataDocumentStore,
        resources: ResourceRegistry,
        fetcher: SafeFetcher,
        audit: AuditLog,
        clock: Clock,
        negative_ttl: float = NEGATIVE_TTL,
    ) -> None:
        self._config = config
        self._documents = documents
        self._resources = resources
        self._fetcher = fetcher
        self._audit = audit
        self._clock = clock
        self._negative_ttl = negative_ttl
        self._failures: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[Fetched]] = {}

    @property
    def documents(self) -> MetadataDocumentStore:
        return self._documents

    async def __call__(self, client_id: str) -> ClientRecord | None:
        if not self._config.enabled:
            return None
        now = self._clock()
        if self._failures.get(client_id, 0.0) > now:
            return None
        try:
            return await self._resolve(client_id, now)
        except FetchRefused as refused:
            self._reject(client_id, refused.reason, now)
            return None

    async def _resolve(self, client_id: str, now: float) -> ClientRecord:
        check_client_id_url(client_id, allow_http=self._config.allow_http)
        cached = await self._documents.get(client_id)
        if cached is not None and cached.expires_at > now:
            return self._record(client_id, cached.document, cached.fetched_at)
        fetched = await self._fetch_once(client_id)
        record = self._record(client_id, fetched.body, now)
        ttl = self._config.cache_ttl
        if fetched.max_age is not None:
            ttl = min(fetched.max_age, ttl)
        if ttl > 0 and isinstance(fetched.body, dict):
            await self._documents.put(client_id, fetched.body, fetched_at=now, expires_at=now + ttl)
        elif cached is not None:
            await self._documents.delete(client_id)
        self._failures.pop(client_id, None)
        return record

    async def _fetch_once(self, url: str) -> Fetched:
        """One fetch per URL at a time; concurrent callers share it."""
        task = self._inflight.get(url)
        if task is None:
            task = asyncio.create_task(
                self._fetcher.fetch_json(url, max_bytes=self._config.max_bytes)
            )
            self._inflight[url] = task
            task.add_done_callback(lambda t: self._done(url, t))
        return await asyncio.shield(task)

    def _done(self, url: str, task: asyncio.Task[Fetched]) -> None:
        if self._inflight.get(url) is task:
            del self._inflight[url]
        if not task.cancelled():
            task.exception()  # retrieved here so an abandoned failure is not reported

    def _record(self, client_id: str, document: object, fetched_at: float) -> ClientRecord:
        if not isinstance(document, dict):
            raise FetchRefused("not_object")
        if document.get("client_id") != client_id:
            raise FetchRefused("client_id_mismatch")
        if "client_secret" in document or "client_secret_expires_at" in document:
            raise FetchRefused("shared_secret")
        try:
            metadata = validate_metadata(
                document,
                resources=self._resources.all(),
                auth_methods=CIMD_AUTH_METHODS,
                default_auth_method="none",
                grant_types=CIMD_GRANT_TYPES,
                drop_unknown_scopes=True,
                allow_http_jwks_uri=self._config.allow_http,
            )
        except OAuthError as error:
            raise FetchRefused(error.error) from None
        name = urlsplit(client_id).hostname or client_id
        record = metadata.record(client_id, source="cimd", name=name)
        return replace(record, created_at=fetched_at)

    def _reject(self, client_id: str, reason: str, now: float) -> None:
        if len(self._failures) > _MAX_REMEMBERED:
            self._failures.clear()
        self._failures[client_id] = now + self._negative_ttl
        shown = shown_url(client_id)
        log.warning("client metadata document %r rejected: %s", shown, reason)
        self._audit.emit(
            AuditEvent(
                "client.metadata_document_rejected",
                "invalid",
                client_id=shown,
                reason=reason,
                detail={"source": "cimd"},
            )
        )

    def forget(self, client_id: str) -> None:
        """Drop a remembered failure (an operator fixed the document)."""
        self._failures.pop(client_id, None)
