"""Shared helpers for the guard tests: keys and tokens, and real servers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import httpx2
import uvicorn
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet
from starlette.types import ASGIApp

ISSUER = "https://as.example.test"
RESOURCE = "http://127.0.0.1/mcp"


class Minter:
    """An ES256 signing key and a function to mint RFC 9068 tokens with it."""

    def __init__(self, issuer: str = ISSUER, resource: str = RESOURCE, kid: str = "k1") -> None:
        self.issuer = issuer
        self.resource = resource
        self.key = ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"})
        self.kid = kid

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.key.as_dict(private=False)]}

    def key_set(self) -> KeySet:
        return KeySet([ECKey.import_key(self.key.as_dict(private=False))])

    def claims(self, scope: str = "orders.read", **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": "user-1",
            "aud": self.resource,
            "client_id": "client-1",
            "scope": scope,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 900,
        }
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def mint(
        self, scope: str = "orders.read", *, header: dict[str, Any] | None = None, **claims: Any
    ) -> str:
        hdr = {"alg": "ES256", "typ": "at+jwt", "kid": self.kid, **(header or {})}
        return jwt.encode(hdr, self.claims(scope, **claims), self.key)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serve(app: ASGIApp, port: int | None = None) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1; yield its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


async def wait_http(url: str, within: float = 30.0) -> None:
    """Until ``url`` answers at all (a process just started, any status will do)."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient() as http:
        while True:
            try:
                await http.get(url)
                return
            except httpx.TransportError:
                assert time.monotonic() < deadline, f"{url} never answered"
                await asyncio.sleep(0.1)


def bearer_client(token: str | None, **kwargs: Any) -> httpx2.AsyncClient:
    """The HTTP client the ``mcp`` SDK's transport uses, with a bearer token."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    return httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0), **kwargs)


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` holds: audit events are written when the server has
    finished the response, which can be just after the client has read it."""
    import asyncio

    deadline = time.monotonic() + 5
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)
