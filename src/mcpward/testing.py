"""A testing kit for MCP server authors: a real mcpward authorization server in-process,
handing out real signed tokens with the scopes you choose.

::

    # conftest.py
    pytest_plugins = ["mcpward.testing"]

    # test_tools.py
    async def test_refund_needs_admin(mcpward_authority):
        guard = mcpward_authority.guard(my_manifest, resource="http://127.0.0.1/mcp")
        app = protect_mcp_server(my_server, guard)
        token = mcpward_authority.token("orders.read", resource="http://127.0.0.1/mcp")
        ...  # call app with "Authorization: Bearer <token>": refund_order gets a 403

Revoking works as in production: :meth:`TestAuthority.revoke` reaches the guard at once.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from mcpward.audit import AuditLog, MemorySink
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.guard import Guard, LocalKeys, Manifest, make_guard
from mcpward.revocation import RevocationView
from mcpward.server import AuthorizationServer
from mcpward.storage.records import ResourceRecord


@dataclass
class TestAuthority:
    """The running authorization server and what a test needs from it."""

    __test__ = False  # not a test class, despite the name

    server: AuthorizationServer
    revocations: RevocationView
    audit: MemorySink

    @property
    def issuer(self) -> str:
        return self.server.settings.issuer

    def keys(self) -> LocalKeys:
        return LocalKeys(self.server.keys.public_key)

    def token(
        self,
        scopes: str | Iterable[str],
        *,
        resource: str,
        subject: str = "test-user",
        client_id: str = "test-client",
        family_id: str | None = None,
        jkt: str | None = None,
    ) -> str:
        """A real access token signed by this server's key, as its token endpoint issues;
        with ``jkt``, bound to that DPoP key (``mcpward.dpop.ProofKey(...).jkt``)."""
        scope = scopes if isinstance(scopes, str) else " ".join(scopes)
        issued = self.server.mint(
            subject=subject,
            client_id=client_id,
            resource=resource,
            scope=scope,
            family_id=family_id,
            jkt=jkt,
        )
        return issued.token

    def guard(self, manifest: Manifest, *, resource: str, **kwargs: Any) -> Guard:
        """A guard that trusts this server, honouring its revocations at once."""
        kwargs.setdefault("keys", self.keys())
        kwargs.setdefault("revocations", self.revocations)
        return make_guard(issuer=self.issuer, resource=resource, manifest=manifest, **kwargs)

    async def add_resource(
        self,
        uri: str,
        scopes: Mapping[str, str] | Iterable[str],
        *,
        name: str = "MCP server under test",
        tools: list[dict[str, Any]] | None = None,
    ) -> None:
        """Register a protected resource, so the token endpoint issues tokens for it."""
        described = dict(scopes) if isinstance(scopes, Mapping) else {s: s for s in scopes}
        await self.server.register_resource(
            ResourceRecord(uri=uri, name=name, scopes=described, tools=tools or [])
        )

    async def revoke(self, token: str) -> None:
        """Revoke one access token (as ``/revoke`` does), effective at the next request."""
        claims = _unverified_claims(token)
        await self.server.revoke_jti(str(claims["jti"]), float(claims["exp"]))

    async def offboard(self, subject: str) -> None:
        """Revoke every token of a user."""
        await self.server.revoke_subject(subject)


@asynccontextmanager
async def authorization_server(
    data_dir: str | Path, *, issuer: str = "http://127.0.0.1:8400", **settings: Any
) -> AsyncIterator[TestAuthority]:
    """An authorization server on a SQLite file in ``data_dir``; ``settings`` are more
    :class:`~mcpward.config.Settings` (``redis_url`` for revocations through Redis)."""
    data_dir = Path(data_dir)
    config = Settings(
        issuer=issuer,
        data_dir=data_dir,
        database_url=f"sqlite+aiosqlite:///{data_dir / 'mcpward-test.db'}",
        **settings,
    )
    sink = MemorySink()
    # With redis_url, revocations travel through Redis as in production; without, the
    # server publishes straight into the view its guards read.
    server = await open_server(config, audit=AuditLog([sink]))
    try:
        yield TestAuthority(server, server.shared.revocations, sink)
    finally:
        await server.close()


@pytest.fixture
async def mcpward_authority(tmp_path: Path) -> AsyncIterator[TestAuthority]:
    """A fresh in-process authorization server per test."""
    async with authorization_server(tmp_path) as authority:
        yield authority


def _unverified_claims(token: str) -> dict[str, Any]:
    # Our own token, just minted: only its identifiers are read.
    payload = token.split(".")[1]
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    claims: dict[str, Any] = json.loads(raw)
    return claims


__all__ = ["TestAuthority", "authorization_server", "mcpward_authority"]
