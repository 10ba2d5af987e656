"""A real authorization server (oidc-provider) and the project's guarded demo MCP server
(the `mcp` SDK behind mcpward's guard), both on 127.0.0.1, shared by a test module."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from mcpward.demo import build_protected_demo
from tests.client.support import OidcProvider, oidc_provider
from tests.conftest import serve
from tests.services import free_port

AGENT_SECRET = "agent-secret-0123456789abcdefghijklmnopqrstuv"


@dataclass
class Stack:
    provider: OidcProvider
    mcp_url: str

    @property
    def issuer(self) -> str:
        return self.provider.issuer


@pytest.fixture(scope="module")
def agent_jwk() -> dict[str, Any]:
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", private=True)
    return key.as_dict(private=True)


@pytest.fixture(scope="module")
def provider(agent_jwk: dict[str, Any]) -> Iterator[OidcProvider]:
    port = free_port()
    public = {k: v for k, v in agent_jwk.items() if k not in ("d",)}
    clients: list[dict[str, Any]] = [
        {
            "client_id": "agent-basic",
            "client_secret": AGENT_SECRET,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_basic",
        },
        {
            "client_id": "agent-post",
            "client_secret": AGENT_SECRET,
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
            "token_endpoint_auth_method": "client_secret_post",
        },
        {
            "client_id": "agent-jwt",
            "grant_types": ["client_credentials"],
            "redirect_uris": [],
            "response_types": [],
            "token_endpoint_auth_method": "private_key_jwt",
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": [{**public, "alg": "ES256", "use": "sig"}]},
        },
    ]
    with oidc_provider(f"http://127.0.0.1:{port}/mcp", clients) as op:
        yield op


@pytest.fixture(scope="module")
async def stack(provider: OidcProvider) -> AsyncIterator[Stack]:
    port = int(provider.resource.split(":")[2].split("/")[0])
    async with serve_demo(provider.issuer, provider.resource, port):
        yield Stack(provider, provider.resource)


@asynccontextmanager
async def serve_demo(issuer: str, resource: str, port: int, **demo: Any) -> AsyncIterator[None]:
    """The project's guarded demo MCP server, trusting `issuer` (JWKS found by discovery);
    `demo` are more `build_protected_demo` arguments (e.g. a `guard` of its own)."""
    protected = build_protected_demo(issuer=issuer, resource=resource, **demo)
    started, stop = asyncio.Event(), asyncio.Event()

    async def run() -> None:
        # The SDK's session manager holds a task group: enter and leave it in one task.
        async with protected.lifespan(), serve(protected, port):
            started.set()
            await stop.wait()

    task = asyncio.create_task(run())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task
