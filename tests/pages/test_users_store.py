"""SqlUsers' consent, upstream-link and TOTP methods on SQLite and PostgreSQL."""

from __future__ import annotations

from mcpward.storage.records import ConsentRecord, UserRecord
from mcpward.storage.sql import SqlStore


async def test_users_consents_and_links(database_url: str) -> None:
    store = await SqlStore.open(database_url)
    try:
        users = store.users
        await users.create(UserRecord("u1", "alice", "Alice@Corp.example", None, None, 1.0))
        await users.create(UserRecord("u2", "bob", None, None, None, 1.0))
        assert [u.id for u in await users.by_email("alice@corp.example")] == ["u1"]
        assert await users.link_upstream("u1", "https://idp.example", "sub-1")
        assert not await users.link_upstream("u1", "https://idp.example", "sub-2")
        linked = await users.by_upstream("https://idp.example", "sub-1")
        assert linked is not None and linked.id == "u1"
        assert await users.set_totp_secret("u2", b"\x00secret")
        bob = await users.get("u2")
        assert bob is not None and bob.totp_secret_enc == b"\x00secret"

        consent = ConsentRecord("u1", "cli", "https://mcp.example/mcp", "orders.read", 5.0)
        await users.put_consent(consent)
        await users.put_consent(
            ConsentRecord("u1", "cli", "https://mcp.example/mcp", "orders.read orders.write", 6.0)
        )
        await users.put_consent(ConsentRecord("u1", "web", "https://mcp.example/mcp", "", 7.0))
        got = await users.get_consent("u1", "cli", "https://mcp.example/mcp")
        assert got is not None and got.scope == "orders.read orders.write"
        assert [c.client_id for c in await users.consents_of("u1")] == ["cli", "web"]
        assert await users.revoke_consent("u1", "web", "https://mcp.example/mcp")
        assert not await users.revoke_consent("u1", "web", "https://mcp.example/mcp")
        assert await users.forget_consents("u1") == 1
        assert await users.consents_of("u1") == []
    finally:
        await store.close()
