"""Client ID Metadata Documents fetched from real HTTP(S) servers on 127.0.0.1: the happy
path and its cache, and every SSRF and validation refusal."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from joserfc.jwk import ECKey

from mcpward.compose.server import metadata_resolver, safe_fetcher
from mcpward.config import ClientMetadataDocuments
from mcpward.server._cimd import MetadataDocumentResolver
from mcpward.server._jwks_uri import JwksUriFetcher
from mcpward.server._safe_fetch import FetchRefused, is_forbidden_address
from mcpward.server.clients import ClientRegistry
from mcpward.storage.records import CachedDocument
from mcpward.storage.sql.metadata_documents import SqlMetadataDocuments
from tests.server.conftest import Running
from tests.server.support import code_flow

Route = Callable[[BaseHTTPRequestHandler], None]


# -- a real document server on 127.0.0.1 --------------------------------------------------


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str]] = []

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients hang up on purpose (size cap, timeout)


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        route = self.server.routes.get(self.path)
        try:
            if route is None:
                send(self, 404, b"{}")
            else:
                route(self)
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:
        pass


def send(
    h: BaseHTTPRequestHandler,
    status: int,
    body: bytes,
    content_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> None:
    h.send_response(status)
    h.send_header("Content-Type", content_type)
    h.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.end_headers()
    h.wfile.write(body)


@dataclass
class DocServer:
    base: str
    port: int
    httpd: _Server

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.httpd.requests

    def route(self, path: str, route: Route) -> str:
        self.httpd.routes[path] = route
        return self.base + path

    def document(self, path: str, doc: object, headers: dict[str, str] | None = None) -> str:
        body = json.dumps(doc).encode()
        return self.route(path, lambda h: send(h, 200, body, headers=headers))


@contextmanager
def doc_server(
    context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
) -> Iterator[DocServer]:
    httpd = _Server()
    if context is not None:
        httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    port = int(httpd.server_address[1])
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    scheme = "https" if context is not None else "http"
    try:
        yield DocServer(f"{scheme}://{host}:{port}", port, httpd)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.fixture
def docs() -> Iterator[DocServer]:
    with doc_server() as server:
        yield server


def settings(**changes: Any) -> ClientMetadataDocuments:
    values: dict[str, Any] = {
        "allow_private_hosts": ["127.0.0.1"],
        "allow_http": True,
        "timeout": 1.0,
    }
    return ClientMetadataDocuments(**{**values, **changes})


def resolver_for(
    r: Running, config: ClientMetadataDocuments, verify: ssl.SSLContext | bool = True
) -> MetadataDocumentResolver:
    """A resolver built as the composition root builds the server's."""
    server = r.server
    return metadata_resolver(
        config,
        server.store.metadata_documents,
        server.resource_registry,
        server.audit,
        server.clock,
        safe_fetcher(config, verify),
    )


@pytest.fixture
def resolver(sqlite_running: Running) -> MetadataDocumentResolver:
    return resolver_for(sqlite_running, settings())


def document(url: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "client_id": url,
        "client_name": "Example MCP Client",
        "client_uri": "https://client.example/",
        "redirect_uris": ["http://127.0.0.1:3000/callback"],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
    }
    doc.update(changes)
    return {k: v for k, v in doc.items() if v is not ...}


def rejections(r: Running) -> list[object]:
    return [
        e.get("reason")
        for e in r.audit.events()
        if e["event"] == "client.metadata_document_rejected"
    ]


# -- happy path and cache ---------------------------------------------------------------


async def test_resolves_a_document(
    sqlite_running: Running, docs: DocServer, resolver: MetadataDocumentResolver
) -> None:
    url = docs.base + "/client.json"
    docs.document("/client.json", document(url, scope="orders.read calendar.read"))
    client = await resolver(url)
    assert client is not None
    assert client.client_id == url
    assert client.source == "cimd"
    assert client.is_public
    assert client.name == "Example MCP Client"
    assert client.application_type == "native"  # inferred from the loopback redirect
    assert client.redirect_uris == ("http://127.0.0.1:3000/callback",)
    assert client.grant_types == ("authorization_code", "refresh_token")
    # Scopes this server does not offer are dropped, not refused: the document is shared.
    assert client.allowed_scope == "orders.read"
    assert client.metadata["client_uri"] == "https://client.example/"
    # The Host header names the URL's host although the connection went to the pinned IP.
    assert docs.requests == [("/client.json", f"127.0.0.1:{docs.port}")]
    assert rejections(sqlite_running) == []


async def test_caches_for_max_age_bounded_by_cache_ttl(
    sqlite_running: Running, docs: DocServer, resolver: MetadataDocumentResolver
) -> None:
    clock = sqlite_running.clock
    url = docs.document("/a.json", document(docs.base + "/a.json"))
    assert await resolver(url) is not None
    assert await resolver(url) is not None
    assert len(docs.requests) == 1
    cached = await resolver.documents.get(url)
    assert cached is not None and cached.expires_at == clock() + 3600

    url = docs.document(
        "/b.json", document(docs.base + "/b.json"), headers={"Cache-Control": "max-age=60"}
    )
    assert await resolver(url) is not None
    cached = await resolver.documents.get(url)
    assert cached is not None and cached.expires_at == clock() + 60
    clock.advance(61)
    assert await resolver(url) is not None
    assert [p for p, _ in docs.requests].count("/b.json") == 2

    url = docs.document(
        "/c.json",
        document(docs.base + "/c.json"),
        headers={"Cache-Control": "public, max-age=999999999"},
    )
    assert await resolver(url) is not None
    cached = await resolver.documents.get(url)
    assert cached is not None and cached.expires_at == clock() + 3600

    url = docs.document(
        "/d.json", document(docs.base + "/d.json"), headers={"Cache-Control": "no-store"}
    )
    assert await resolver(url) is not None
    assert await resolver.documents.get(url) is None
    assert await resolver(url) is not None
    assert [p for p, _ in docs.requests].count("/d.json") == 2


async def test_concurrent_lookups_share_one_fetch(
    docs: DocServer, resolver: MetadataDocumentResolver
) -> None:
    url = docs.base + "/slowish.json"
    body = json.dumps(document(url)).encode()

    def slowish(h: BaseHTTPRequestHandler) -> None:
        time.sleep(0.3)
        send(h, 200, body)

    docs.route("/slowish.json", slowish)
    results = await asyncio.gather(*(resolver(url) for _ in range(8)))
    assert all(r is not None and r.client_id == url for r in results)
    assert len(docs.requests) == 1


async def test_failures_are_remembered_briefly(
    sqlite_running: Running, docs: DocServer, resolver: MetadataDocumentResolver
) -> None:
    url = docs.document("/fix.json", document("https://someone.else/fix.json"))
    assert await resolver(url) is None
    docs.document("/fix.json", document(url))
    assert await resolver(url) is None
    assert len(docs.requests) == 1
    sqlite_running.clock.advance(31)
    assert await resolver(url) is not None


async def test_web_application_and_private_key_jwt(
    docs: DocServer, resolver: MetadataDocumentResolver
) -> None:
    url = docs.base + "/web.json"
    docs.document(
        "/web.json",
        document(
            url,
            redirect_uris=["https://client.example/callback"],
            token_endpoint_auth_method="private_key_jwt",
            jwks_uri=docs.base + "/jwks.json",
        ),
    )
    client = await resolver(url)
    assert client is not None
    assert client.application_type == "web"
    assert client.token_endpoint_auth_method == "private_key_jwt"
    assert client.jwks_uri == docs.base + "/jwks.json"


async def test_disabled(sqlite_running: Running, docs: DocServer) -> None:
    resolver = resolver_for(sqlite_running, settings(enabled=False))
    url = docs.document("/x.json", document(docs.base + "/x.json"))
    assert await resolver(url) is None
    assert docs.requests == []


# -- HTTPS: the pinned IP keeps the name for SNI and certificate checks ----------------


def certificate(tmp_path: Path, name: str) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = cert.public_bytes(serialization.Encoding.PEM)
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client = ssl.create_default_context(cadata=cert_pem.decode())
    return server, client


async def test_https_through_the_client_registry(sqlite_running: Running, tmp_path: Path) -> None:
    server_ctx, client_ctx = certificate(tmp_path, "localhost")
    with doc_server(server_ctx, host="localhost") as tls:
        url = tls.document("/client.json", document(tls.base + "/client.json"))
        assert url.startswith("https://localhost:")
        resolver = resolver_for(
            sqlite_running,
            settings(allow_http=False, allow_private_hosts=["localhost"]),
            client_ctx,
        )
        registry = ClientRegistry(
            sqlite_running.server.store.clients,
            sqlite_running.clock,
            secret_lifetime=3600,
            secret_overlap=60,
            metadata_resolver=resolver,
        )
        client = await registry.get(url)
        assert client is not None and client.client_id == url
        assert tls.requests == [("/client.json", f"localhost:{tls.port}")]

        # The whole code flow with the URL as client_id, over the app's /token endpoint.
        token = await code_flow(
            sqlite_running,
            "v" * 64,
            client_id=url,
            redirect_uri="http://127.0.0.1:3000/callback",
            scope="orders.read",
        )
        assert token.status_code == 200, token.text
        assert len(tls.requests) == 1  # served from the document cache since


async def test_https_certificate_must_match_the_name(
    sqlite_running: Running, tmp_path: Path
) -> None:
    server_ctx, client_ctx = certificate(tmp_path, "other.example")
    with doc_server(server_ctx, host="localhost") as tls:
        url = tls.document("/client.json", document(tls.base + "/client.json"))
        resolver = resolver_for(
            sqlite_running,
            settings(allow_http=False, allow_private_hosts=["localhost"]),
            client_ctx,
        )
        assert await resolver(url) is None
        assert tls.requests == []
        assert rejections(sqlite_running) == ["connect_failed"]


# -- SSRF ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.8.9.10",
        "10.0.0.1",
        "172.16.5.4",
        "192.168.1.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
        "192.0.2.10",
        "198.18.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "fec0::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.0.0.1",
        "::ffff:169.254.169.254",
        "::127.0.0.1",
        "2002:7f00:1::1",
        "64:ff9b::a9fe:a9fe",
        "2001:db8::1",
    ],
)
def test_forbidden_addresses(address: str) -> None:
    assert is_forbidden_address(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
)
def test_public_addresses(address: str) -> None:
    assert not is_forbidden_address(ipaddress.ip_address(address))


async def test_loopback_refused_without_the_allow_list(
    sqlite_running: Running, docs: DocServer
) -> None:
    url = docs.document("/client.json", document(docs.base + "/client.json"))
    resolver = resolver_for(sqlite_running, settings(allow_private_hosts=[]))
    assert await resolver(url) is None
    assert docs.requests == []
    assert rejections(sqlite_running) == ["forbidden_address"]


@pytest.mark.parametrize(
    "host",
    [
        "[::ffff:127.0.0.1]",  # IPv4-mapped IPv6 of an allow-listed address
        "[::1]",
        "localhost",  # resolves to loopback; only "127.0.0.1" is allow-listed
        "2130706433",  # 127.0.0.1 as one decimal number
        "0x7f.1",
        "169.254.169.254",
        "[fe80::1]",
        "10.0.0.1",
        "0.0.0.0",  # noqa: S104 - an address to refuse, not to bind
    ],
)
async def test_private_forms_refused(
    sqlite_running: Running, docs: DocServer, resolver: MetadataDocumentResolver, host: str
) -> None:
    url = f"http://{host}:{docs.port}/client.json"
    docs.document("/client.json", document(url))
    assert await resolver(url) is None
    assert docs.requests == []
    assert rejections(sqlite_running) == ["forbidden_address"]


async def test_allow_listed_name_connects_to_the_checked_address(
    sqlite_running: Running, docs: DocServer
) -> None:
    url = f"http://localhost:{docs.port}/client.json"
    docs.document("/client.json", document(url))
    resolver = resolver_for(sqlite_running, settings(allow_private_hosts=["localhost"]))
    client = await resolver(url)
    assert client is not None
    assert docs.requests == [("/client.json", f"localhost:{docs.port}")]


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/",
        "/client.json#frag",
        "/a/../client.json",
        "/./client.json",
        "/client json",
    ],
)
async def test_bad_client_id_urls(
    sqlite_running: Running, docs: DocServer, resolver: MetadataDocumentResolver, path: str
) -> None:
    assert await resolver(docs.base + path) is None
    assert await resolver(f"http://user:pw@127.0.0.1:{docs.port}/client.json") is None
    assert docs.requests == []
    assert set(rejections(sqlite_running)) == {"bad_url"}


async def test_http_refused_unless_allowed(sqlite_running: Running, docs: DocServer) -> None:
    url = docs.document("/client.json", document(docs.base + "/client.json"))
    resolver = resolver_for(sqlite_running, settings(allow_http=False))
    assert await resolver(url) is None
    assert docs.requests == []
    assert rejections(sqlite_running) == ["bad_url"]


# -- what the server answers -------------------------------------------------------------


def redirect(h: BaseHTTPRequestHandler) -> None:
    h.send_response(302)
    h.send_header("Location", "/client.json")
    h.send_header("Content-Length", "0")
    h.end_headers()


def huge_declared(h: BaseHTTPRequestHandler) -> None:
    send(h, 200, b'{"pad": "' + b"x" * 6000 + b'"}')


def huge_streamed(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.end_headers()  # HTTP/1.0, no Content-Length: the body runs until the connection ends
    h.wfile.write(b'{"pad": "')
    for _ in range(256):
        h.wfile.write(b"x" * 4096)


def slow_headers(h: BaseHTTPRequestHandler) -> None:
    time.sleep(3)
    send(h, 200, b"{}")


def trickle(h: BaseHTTPRequestHandler) -> None:
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", "100")
    h.end_headers()
    for _ in range(100):
        h.wfile.write(b" ")
        h.wfile.flush()
        time.sleep(0.1)


def gzip_encoded(h: BaseHTTPRequestHandler) -> None:
    send(h, 200, b"\x1f\x8b", headers={"Content-Encoding": "gzip"})


RESPONSES: list[tuple[str, Route, str]] = [
    ("redirect", redirect, "redirect"),
    ("declared too large", huge_declared, "too_large"),
    ("streamed too large", huge_streamed, "too_large"),
    ("slow headers", slow_headers, "timeout"),
    ("trickling body", trickle, "timeout"),
    ("html", lambda h: send(h, 200, b"{}", content_type="text/html"), "content_type"),
    ("no content type", lambda h: send(h, 200, b"{}", content_type=""), "content_type"),
    ("not json", lambda h: send(h, 200, b"{not json"), "not_json"),
    ("nan", lambda h: send(h, 200, b'{"a": NaN}'), "not_json"),
    ("array", lambda h: send(h, 200, b"[]"), "not_object"),
    ("404", lambda h: send(h, 404, b"{}"), "http_status"),
    ("500", lambda h: send(h, 500, b"{}"), "http_status"),
    ("gzip", gzip_encoded, "content_encoding"),
]


@pytest.mark.parametrize(("case", "route", "reason"), RESPONSES, ids=[c for c, _, _ in RESPONSES])
async def test_bad_responses(
    sqlite_running: Running,
    docs: DocServer,
    resolver: MetadataDocumentResolver,
    case: str,
    route: Route,
    reason: str,
) -> None:
    docs.document("/client.json", document(docs.base + "/client.json"))
    url = docs.route("/bad", route)
    started = time.monotonic()
    assert await resolver(url) is None, case
    assert time.monotonic() - started < 2.5
    assert rejections(sqlite_running) == [reason]
    assert [p for p, _ in docs.requests] == ["/bad"]  # a redirect is never followed


DOCUMENTS: list[tuple[str, dict[str, Any], str]] = [
    ("other client_id", {"client_id": "https://evil.example/client.json"}, "client_id_mismatch"),
    ("no client_id", {"client_id": ...}, "client_id_mismatch"),
    ("client_secret", {"client_secret": "s3cr3t"}, "shared_secret"),
    (
        "secret method",
        {"token_endpoint_auth_method": "client_secret_basic"},
        "invalid_client_metadata",
    ),
    (
        "client_credentials",
        {"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt"},
        "invalid_client_metadata",
    ),
    (
        "pkjwt without keys",
        {"token_endpoint_auth_method": "private_key_jwt"},
        "invalid_client_metadata",
    ),
    ("javascript redirect", {"redirect_uris": ["javascript:alert(1)"]}, "invalid_redirect_uri"),
    (
        "web with loopback",
        {"application_type": "web", "redirect_uris": ["http://127.0.0.1:3000/cb"]},
        "invalid_redirect_uri",
    ),
    ("no redirect_uris", {"redirect_uris": ...}, "invalid_redirect_uri"),
    ("name type", {"client_name": 42}, "invalid_client_metadata"),
]


@pytest.mark.parametrize(("case", "changes", "reason"), DOCUMENTS, ids=[c for c, _, _ in DOCUMENTS])
async def test_invalid_documents(
    sqlite_running: Running,
    docs: DocServer,
    resolver: MetadataDocumentResolver,
    case: str,
    changes: dict[str, Any],
    reason: str,
) -> None:
    url = docs.base + "/client.json"
    docs.document("/client.json", document(url, **changes))
    assert await resolver(url) is None, case
    assert rejections(sqlite_running) == [reason]
    assert await resolver.documents.get(url) is None
    # Nothing from the document (such as a secret) reaches the audit trail.
    assert all("s3cr3t" not in line for line in sqlite_running.audit.lines)


# -- jwks_uri -----------------------------------------------------------------------------


async def test_fetch_jwks(sqlite_running: Running, docs: DocServer) -> None:
    fetch_jwks = JwksUriFetcher(
        safe_fetcher(settings()), sqlite_running.clock, cache_ttl=settings().cache_ttl
    )
    public = {"keys": [dict(ECKey.generate_key("P-256").as_dict(private=False))]}
    url = docs.document("/jwks.json", public)
    assert await fetch_jwks(url) == public
    assert await fetch_jwks(url) == public
    assert len(docs.requests) == 1  # cached
    sqlite_running.clock.advance(301)
    assert await fetch_jwks(url) == public
    assert len(docs.requests) == 2

    private = {"keys": [dict(ECKey.generate_key("P-256").as_dict(private=True))]}
    url = docs.document("/private.json", private)
    with pytest.raises(FetchRefused) as refused:
        await fetch_jwks(url)
    assert refused.value.reason == "invalid_jwks"

    with pytest.raises(FetchRefused) as refused:
        await fetch_jwks(f"http://[::1]:{docs.port}/jwks.json")
    assert refused.value.reason == "forbidden_address"


# -- the cache table, on SQLite and PostgreSQL -------------------------------------------


async def test_document_cache_storage(running: Running) -> None:
    store = SqlMetadataDocuments(running.engine)
    url = "https://client.example/client.json"
    await store.put(url, {"client_id": url}, fetched_at=1.0, expires_at=10.0)
    await store.put(url, {"client_id": url, "v": 2}, fetched_at=2.0, expires_at=20.0)
    assert await store.get(url) == CachedDocument(url, {"client_id": url, "v": 2}, 2.0, 20.0)
    # Concurrent refreshes of one URL upsert without conflicts.
    await asyncio.gather(
        *(store.put(url, {"n": n}, fetched_at=3.0, expires_at=30.0) for n in range(10))
    )
    cached = await store.get(url)
    assert cached is not None and cached.expires_at == 30.0
    assert await store.purge_expired(29.0) == 0
    assert await store.purge_expired(30.0) == 1
    assert await store.get(url) is None
    assert not await store.delete(url)


async def test_rejection_log_has_no_query_string(
    sqlite_running: Running,
    docs: DocServer,
    resolver: MetadataDocumentResolver,
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = docs.base + "/client.json?token=abc123"
    docs.document("/client.json?token=abc123", document("https://other.example/"))
    assert await resolver(url) is None
    assert rejections(sqlite_running) == ["client_id_mismatch"]
    assert "abc123" not in caplog.text and "client_id_mismatch" in caplog.text
    assert all("abc123" not in line for line in sqlite_running.audit.lines)
