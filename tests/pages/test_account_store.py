"""The storage queries behind the account page, on SQLite and PostgreSQL: clients looked
up together, and when each application last got tokens for a person."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpward.storage.records import ClientRecord, CodeRecord, FamilyRecord, RefreshRecord
from mcpward.storage.sql import SqlStore

R1, R2 = "https://mcp.example/mcp", "https://other.example/mcp"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'account.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


def client(client_id: str) -> ClientRecord:
    return ClientRecord(client_id, client_id.upper(), "dcr", "none", (), ("http://127.0.0.1/cb",))


async def grant(
    store: SqlStore, family_id: str, client_id: str, subject: str, resource: str, at: float
) -> None:
    """A code redeemed at ``at`` into a family with its first refresh token, as the
    token endpoint does it."""
    code = CodeRecord(
        f"code-{family_id}",
        client_id,
        "http://127.0.0.1/cb",
        "c",
        resource,
        "",
        subject,
        at,
        at,
        at + 60,
    )
    await store.grants.save_code(code)
    family = FamilyRecord(family_id, client_id, subject, resource, "", at, at + 1e6, code.code_hash)
    first = RefreshRecord(f"rt-{family_id}-0", family_id, "", at, at + 1e5)
    assert await store.grants.redeem_code(code.code_hash, at, family, first)


async def test_clients_get_many(database_url: str) -> None:
    store = await SqlStore.open(database_url)
    try:
        for client_id in ("a", "b", "c"):
            await store.clients.create(client(client_id))
        got = await store.clients.get_many({"a", "c", "missing"})
        assert {k: v.name for k, v in got.items()} == {"a": "A", "c": "C"}
        assert await store.clients.get_many(set()) == {}
    finally:
        await store.close()


async def test_last_issued_per_client_and_resource(database_url: str) -> None:
    store = await SqlStore.open(database_url)
    try:
        grants = store.grants
        await grant(store, "f1", "a", "alice", R1, 100.0)
        # Rotated twice: the newest refresh token is the last use.
        rotation = await grants.rotate_refresh(
            "rt-f1-0", 150.0, RefreshRecord("rt-f1-1", "f1", "", 150.0, 1e5)
        )
        assert rotation.rotated
        rotation = await grants.rotate_refresh(
            "rt-f1-1", 175.0, RefreshRecord("rt-f1-2", "f1", "", 175.0, 1e5)
        )
        assert rotation.rotated
        # An older second family of the same client and resource does not hide it.
        await grant(store, "f2", "a", "alice", R1, 120.0)
        # The same client at another server, and another client.
        await grant(store, "f3", "a", "alice", R2, 130.0)
        await grant(store, "f4", "b", "alice", R1, 140.0)
        # A family without refresh tokens counts from its creation; a revoked one counts.
        code = CodeRecord("code-f5", "c", "u", "c", R1, "", "alice", 160.0, 160.0, 220.0)
        await grants.save_code(code)
        family = FamilyRecord("f5", "c", "alice", R1, "", 160.0, 1e6, code.code_hash)
        assert await grants.redeem_code(code.code_hash, 160.0, family, None)
        await grants.revoke_family("f5", 170.0, "test", 1e6)
        # Someone else's grant is not alice's.
        await grant(store, "f6", "a", "bob", R1, 999.0)

        assert await grants.last_issued("alice") == {
            ("a", R1): 175.0,
            ("a", R2): 130.0,
            ("b", R1): 140.0,
            ("c", R1): 160.0,
        }
        assert await grants.last_issued("nobody") == {}
    finally:
        await store.close()
