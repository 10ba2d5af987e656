"""An authorization server per test, over real HTTP, on SQLite or on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward._clock import FrozenClock
from mcpward.audit import AuditLog, MemorySink
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server import AuthorizationServer, create_app
from mcpward.state import SharedState
from mcpward.storage.records import AuthMethod, ClientRecord, GrantType, ResourceRecord
from mcpward.storage.sql import SqlStore
from tests.conftest import serve

RESOURCE = "http://127.0.0.1:8400/mcp"
OTHER_RESOURCE = "https://other.example/mcp"
SCOPES = {
    "orders.read": "Read orders",
    "orders.write": "Change orders",
    "refund.admin": "Issue refunds",
}


@dataclass
class Running:
    server: AuthorizationServer
    url: str
    http: httpx.AsyncClient
    audit: MemorySink
    clock: FrozenClock

    @property
    def engine(self) -> AsyncEngine:
        """The SQL backend's engine, for tests that look at what is stored."""
        store = self.server.store
        assert isinstance(store, SqlStore)
        return store.engine

    async def confidential_client(
        self,
        client_id: str = "agent",
        *,
        allowed_scope: str | None = "orders.read orders.write",
        method: AuthMethod = "client_secret_basic",
        grant_types: tuple[GrantType, ...] = ("client_credentials",),
        redirect_uris: tuple[str, ...] = (),
        jwks: dict[str, object] | None = None,
        introspects: str | None = None,
        dpop_bound: bool = False,
    ) -> str | None:
        secret = await self.server.clients.create(
            ClientRecord(
                client_id=client_id,
                name=client_id,
                source="preregistered",
                token_endpoint_auth_method=method,
                grant_types=grant_types,
                redirect_uris=redirect_uris,
                allowed_scope=allowed_scope,
                jwks=jwks,
                introspects_resource=introspects,
                dpop_bound_access_tokens=dpop_bound,
            )
        )
        return secret.secret if secret else None


async def start(
    database_url: str,
    tmp_path: Path,
    *,
    shared: SharedState | None = None,
    port: int | None = None,
    **settings_overrides: Any,
) -> AsyncIterator[Running]:
    """A server on ``database_url``; ``settings_overrides`` go to :class:`Settings`
    (trusted issuers, workload rules, exchange policies ...). With ``port`` it serves
    there (for an ``issuer`` that is its real URL)."""
    clock = FrozenClock()
    sink = MemorySink()
    settings = Settings(
        **{
            "issuer": "http://127.0.0.1:8400",
            "data_dir": tmp_path,
            "database_url": database_url,
            **settings_overrides,
        }
    )
    server = await open_server(settings, audit=AuditLog([sink], clock), clock=clock, shared=shared)
    await server.register_resource(ResourceRecord(uri=RESOURCE, name="Orders", scopes=SCOPES))
    await server.register_resource(
        ResourceRecord(uri=OTHER_RESOURCE, name="Other", scopes={"other.read": "Read other"})
    )
    async with serve(create_app(server), port) as url, httpx.AsyncClient(base_url=url) as http:
        yield Running(server, url, http, sink, clock)
    await server.close()


@pytest.fixture
async def running(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async for r in start(database_url, tmp_path):
        yield r


@pytest.fixture
async def strict_running(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    """Strict RFC 9700 reuse detection: no retry window for refresh tokens."""
    async for r in start(database_url, tmp_path, refresh_retry_window=0):
        yield r


@pytest.fixture
async def sqlite_running(tmp_path: Path) -> AsyncIterator[Running]:
    async for r in start(f"sqlite+aiosqlite:///{tmp_path / 'mcpward.db'}", tmp_path):
        yield r
