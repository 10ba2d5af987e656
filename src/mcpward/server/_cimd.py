"""Client ID Metadata Documents (draft-ietf-oauth-client-id-metadata-document; MCP
authorization 2025-11-25 and later): a ``client_id`` that is an HTTPS URL names a JSON
document holding the client's metadata, which this server fetches and caches.

Fetching a URL chosen by anyone on the internet is an SSRF risk, so :class:`SafeFetcher`:

* resolves the host itself and refuses private, loopback, link-local, multicast, reserved,
  shared (100.64/10) and unspecified addresses, IPv4 and IPv6, including IPv4-mapped,
  6to4 and NAT64 forms; if *any* resolved address is refused the fetch is refused, and a
  host listed in ``allow_private_hosts`` (tests) skips the check;
* connects to the very address it checked (the request goes to the IP; the ``Host``
  header and TLS SNI / certificate check keep the original name), so DNS rebinding
  between check and connect is impossible; one fresh connection per fetch, no proxies
  from the environment;
* follows no redirects, asks for ``identity`` encoding and refuses compressed bodies,
  streams at most ``max_bytes`` and stops, and gives the whole fetch (DNS included) one
  deadline of ``timeout`` seconds;
* accepts only ``200`` with ``Content-Type: application/json``.

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
import ipaddress
import logging
import re
import socket
import ssl
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from mcpward.audit import AuditEvent
from mcpward.config import ClientMetadataDocuments
from mcpward.server._client_metadata import parse_json, validate_jwks, validate_metadata
from mcpward.server.errors import OAuthError
from mcpward.storage.records import ClientRecord
from mcpward.storage.sql.metadata_documents import SqlMetadataDocuments

if TYPE_CHECKING:
    from mcpward.server.core import AuthorizationServer

log = logging.getLogger("mcpward.server.cimd")

CIMD_AUTH_METHODS = ("none", "private_key_jwt")
CIMD_GRANT_TYPES = ("authorization_code", "refresh_token")
JWKS_MAX_BYTES = 64 * 1024
JWKS_MAX_CACHE = 300.0
NEGATIVE_TTL = 30.0
_MAX_REMEMBERED = 10_000
_URL_CHARS = re.compile(r"^[\x21-\x7e]+$")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class FetchRefused(Exception):
    """A document could not be fetched safely. ``reason`` is a short fixed code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Fetched:
    body: object
    max_age: float | None


# -- addresses ---------------------------------------------------------------------------


def is_forbidden_address(ip: IPAddress) -> bool:
    """True for every address a server-side fetch must not reach."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and is_forbidden_address(embedded):
            return True
        if ip.ipv4_mapped is not None:
            return False
        if ip.is_site_local:
            return True
    elif ip in _SHARED:
        return True
    return (
        not ip.is_global
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def check_client_id_url(url: str, *, allow_http: bool = False) -> SplitResult:
    """The client_id URL rules of the draft (§3): https, a path, no fragment, no
    user-info, no dot segments. Raises FetchRefused("bad_url")."""
    if len(url) > 2048 or not _URL_CHARS.match(url) or "\\" in url or "#" in url:
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


def _max_age(cache_control: str | None) -> float | None:
    if not cache_control:
        return None
    directives: dict[str, str] = {}
    for item in cache_control.split(","):
        name, _, value = item.strip().partition("=")
        directives[name.strip().lower()] = value.strip().strip('"')
    if "no-store" in directives or "no-cache" in directives:
        return 0.0
    value = directives.get("max-age", "")
    return float(value) if value.isdigit() else None


def _shown(url: str) -> str:
    """A URL for logs and the audit trail: no query string (it could carry a credential
    however unwise), at most 200 characters."""
    head, sep, _ = url.partition("?")
    return (head + ("?..." if sep else ""))[:200]


# -- fetching ----------------------------------------------------------------------------


class SafeFetcher:
    """GET a JSON document from a URL anyone could have chosen, without SSRF."""

    def __init__(
        self,
        *,
        timeout: float,
        allow_private_hosts: list[str] | tuple[str, ...] = (),
        allow_http: bool = False,
        verify: ssl.SSLContext | bool = True,
    ) -> None:
        self._timeout = timeout
        self._allow_private = frozenset(h.lower().strip("[]") for h in allow_private_hosts)
        self._allow_http = allow_http
        self._verify = verify

    async def fetch_json(self, url: str, *, max_bytes: int) -> Fetched:
        if len(url) > 2048 or not _URL_CHARS.match(url) or "#" in url:
            raise FetchRefused("bad_url")
        try:
            parts = urlsplit(url)
            explicit_port = parts.port
        except ValueError:
            raise FetchRefused("bad_url") from None
        schemes = ("https", "http") if self._allow_http else ("https",)
        host = parts.hostname
        if parts.scheme not in schemes or not host or "@" in parts.netloc or explicit_port == 0:
            raise FetchRefused("bad_url")
        port = explicit_port or (443 if parts.scheme == "https" else 80)
        try:
            async with asyncio.timeout(self._timeout):
                addresses = await self._resolve(host, port)
                refused = FetchRefused("connect_failed")
                # Every candidate was checked; try them in resolver order (IPv6 first on a
                # host where the server listens only on IPv4, for instance).
                for address in addresses[:4]:
                    try:
                        return await self._get(parts, host, port, explicit_port, address, max_bytes)
                    except FetchRefused as error:
                        if error.reason != "connect_failed":
                            raise
                        refused = error
                raise refused
        except TimeoutError:
            raise FetchRefused("timeout") from None

    async def _resolve(self, host: str, port: int) -> list[IPAddress]:
        """Resolve ``host`` and return the addresses to connect to, after checking every
        address the name resolves to: if one is forbidden, the name is refused."""
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            loop = asyncio.get_running_loop()
            try:
                infos = await loop.getaddrinfo(
                    host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
                )
            except (OSError, UnicodeError):
                raise FetchRefused("dns_failure") from None
            addresses = []
            for info in infos:
                try:
                    addresses.append(ipaddress.ip_address(str(info[4][0]).split("%")[0]))
                except ValueError:
                    continue
        if not addresses:
            raise FetchRefused("dns_failure")
        if host.lower() not in self._allow_private and any(
            is_forbidden_address(a) for a in addresses
        ):
            raise FetchRefused("forbidden_address")
        return list(dict.fromkeys(addresses))

    async def _get(
        self,
        parts: SplitResult,
        host: str,
        port: int,
        explicit_port: int | None,
        address: IPAddress,
        max_bytes: int,
    ) -> Fetched:
        ip_host = f"[{address.compressed}]" if address.version == 6 else address.compressed
        target = urlunsplit((parts.scheme, f"{ip_host}:{port}", parts.path or "/", parts.query, ""))
        name = f"[{host}]" if ":" in host else host
        headers = {
            "Host": name if explicit_port is None else f"{name}:{explicit_port}",
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": "mcpward",
        }
        extensions = {"sni_hostname": host} if parts.scheme == "https" else {}
        async with httpx.AsyncClient(
            trust_env=False,
            follow_redirects=False,
            verify=self._verify,
            timeout=httpx.Timeout(self._timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=0),
        ) as client:
            request = client.build_request("GET", target, headers=headers, extensions=extensions)
            try:
                response = await client.send(request, stream=True)
            except httpx.TimeoutException:
                raise FetchRefused("timeout") from None
            except httpx.ConnectError:
                raise FetchRefused("connect_failed") from None
            except httpx.HTTPError:
                raise FetchRefused("http_error") from None
            try:
                body = await self._read(response, max_bytes)
            finally:
                await response.aclose()
        try:
            document = parse_json(body)
        except OAuthError:
            raise FetchRefused("not_json") from None
        return Fetched(document, _max_age(response.headers.get("cache-control")))

    async def _read(self, response: httpx.Response, max_bytes: int) -> bytes:
        if response.is_redirect or 300 <= response.status_code < 400:
            raise FetchRefused("redirect")
        if response.status_code != 200:
            raise FetchRefused("http_status")
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise FetchRefused("content_type")
        if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
            raise FetchRefused("content_encoding")
        declared = response.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > max_bytes):
            raise FetchRefused("too_large")
        body = bytearray()
        try:
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise FetchRefused("too_large")
        except httpx.TimeoutException:
            raise FetchRefused("timeout") from None
        except httpx.HTTPError:
            raise FetchRefused("read_failed") from None
        return bytes(body)


# -- the resolver ------------------------------------------------------------------------


class MetadataDocumentResolver:
    """Turns an HTTPS ``client_id`` into a client record, or None.

    Wire it with ``server.clients.metadata_resolver = resolver``; ``fetch_jwks`` serves
    ``private_key_jwt`` clients that publish a ``jwks_uri``."""

    def __init__(
        self,
        server: AuthorizationServer,
        *,
        config: ClientMetadataDocuments | None = None,
        verify: ssl.SSLContext | bool = True,
        negative_ttl: float = NEGATIVE_TTL,
    ) -> None:
        self._server = server
        self._config = config or server.settings.client_metadata_documents
        self._fetcher = SafeFetcher(
            timeout=self._config.timeout,
            allow_private_hosts=self._config.allow_private_hosts,
            allow_http=self._config.allow_http,
            verify=verify,
        )
        self._documents = SqlMetadataDocuments(server.store.engine)
        self._negative_ttl = negative_ttl
        self._failures: dict[str, float] = {}
        self._inflight: dict[str, asyncio.Task[Fetched]] = {}
        self._jwks: dict[str, tuple[float, dict[str, Any]]] = {}

    @property
    def documents(self) -> SqlMetadataDocuments:
        return self._documents

    async def __call__(self, client_id: str) -> ClientRecord | None:
        if not self._config.enabled:
            return None
        now = self._server.clock()
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
                resources=self._server.resources(),
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
        shown = _shown(client_id)
        log.warning("client metadata document %r rejected: %s", shown, reason)
        self._server.audit.emit(
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

    # -- private_key_jwt keys ------------------------------------------------------------

    async def fetch_jwks(self, url: str) -> dict[str, Any]:
        """A client's JWK Set from its ``jwks_uri``, through the same SSRF-safe fetcher;
        cached in memory for ``Cache-Control: max-age``, at most 5 minutes."""
        now = self._server.clock()
        hit = self._jwks.get(url)
        if hit is not None and hit[0] > now:
            return hit[1]
        try:
            fetched = await self._fetcher.fetch_json(url, max_bytes=JWKS_MAX_BYTES)
            try:
                jwks = validate_jwks(fetched.body)
            except OAuthError:
                raise FetchRefused("invalid_jwks") from None
        except FetchRefused as refused:
            log.warning("jwks_uri %r refused: %s", _shown(url), refused.reason)
            raise
        ttl = min(JWKS_MAX_CACHE, self._config.cache_ttl)
        if fetched.max_age is not None:
            ttl = min(ttl, fetched.max_age)
        if ttl > 0:
            if len(self._jwks) > 1000:
                self._jwks.clear()
            self._jwks[url] = (now + ttl, jwks)
        return jwks
