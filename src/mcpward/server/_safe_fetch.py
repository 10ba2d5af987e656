"""A server-side GET of a JSON document from a URL anyone could have chosen, without
SSRF. Used for Client ID Metadata Documents and for private_key_jwt clients' ``jwks_uri``.

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
* accepts only ``200`` with ``Content-Type: application/json`` (or another JSON media type
  the caller names, such as RFC 7517's ``application/jwk-set+json``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit, urlunsplit

import httpx

from mcpward._asgi import media_type
from mcpward.errors import MCPWardError
from mcpward.server._client_metadata import parse_json
from mcpward.server.errors import OAuthError

URL_CHARS = re.compile(r"^[\x21-\x7e]+$")
JSON = ("application/json",)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_SHARED = ipaddress.ip_network("100.64.0.0/10")


class FetchRefused(MCPWardError):
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


def max_age(cache_control: str | None) -> float | None:
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


def shown(url: str) -> str:
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

    async def fetch_json(
        self, url: str, *, max_bytes: int, media_types: tuple[str, ...] = JSON
    ) -> Fetched:
        if len(url) > 2048 or not URL_CHARS.match(url) or "#" in url:
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
                        return await self._get(
                            parts, host, port, explicit_port, address, max_bytes, media_types
                        )
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
        media_types: tuple[str, ...],
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
                body = await self._read(response, max_bytes, media_types)
            finally:
                await response.aclose()
        try:
            document = parse_json(body)
        except OAuthError:
            raise FetchRefused("not_json") from None
        return Fetched(document, max_age(response.headers.get("cache-control")))

    async def _read(
        self, response: httpx.Response, max_bytes: int, media_types: tuple[str, ...]
    ) -> bytes:
        if response.is_redirect or 300 <= response.status_code < 400:
            raise FetchRefused("redirect")
        if response.status_code != 200:
            raise FetchRefused("http_status")
        if media_type(response.headers.get("content-type")) not in media_types:
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
