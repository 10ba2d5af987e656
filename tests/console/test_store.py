"""The storage queries behind the operator console and the CLI's operator commands, on
SQLite and PostgreSQL: lists a page at a time (keyset cursors, filters, searches that take
wildcards literally), a client's last use, never-used registrations and their deletion,
token families with their rotations, users and the operator role, and the audit events
table (search, counts, a time series, purge). And the migration's backfill of last use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy import text

from mcpward.storage.database import open_engine, upgrade
from mcpward.storage.records import (
    ClientRecord,
    ClientSource,
    CodeRecord,
    ConsentRecord,
    EventFilter,
    FamilyRecord,
    RefreshRecord,
    StoredEvent,
    UserRecord,
)
from mcpward.storage.sql import SqlStore

R = "https://mcp.example/mcp"


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[SqlStore]:
    s = await SqlStore.open(database_url)
    try:
        yield s
    finally:
        await s.close()


def client(client_id: str, at: float, source: ClientSource = "dcr", **fields: Any) -> ClientRecord:
    fields.setdefault("name", client_id.upper())
    return ClientRecord(
        client_id=client_id,
        source=source,
        token_endpoint_auth_method="none",
        grant_types=("authorization_code",),
        redirect_uris=("http://127.0.0.1/cb",),
        created_at=at,
        **fields,
    )


async def family(
    store: SqlStore, family_id: str, client_id: str, subject: str, at: float, rotations: int = 0
) -> None:
    code = CodeRecord(f"c-{family_id}", client_id, "http://127.0.0.1/cb", "x", R, "a b",
                      subject, at, at, at + 60)  # fmt: skip
    await store.grants.save_code(code)
    record = FamilyRecord(family_id, client_id, subject, R, "a b", at, at + 1e6, code.code_hash)
    token = f"rt-{family_id}-0"
    assert await store.grants.redeem_code(
        code.code_hash, at, record, RefreshRecord(token, family_id, "a b", at, at + 1e5)
    )
    for i in range(1, rotations + 1):
        successor = f"rt-{family_id}-{i}"
        new = RefreshRecord(successor, family_id, "a b", at + i * 10, at + 1e5)
        assert await store.grants.rotate_refresh(token, at + i * 10, new)
        token = successor


def ids(rows: list[ClientRecord]) -> list[str]:
    return [c.client_id for c in rows]


def names(rows: list[UserRecord]) -> list[str]:
    return [u.username for u in rows]


async def test_client_pages_walk_every_client_once_newest_first(store: SqlStore) -> None:
    # Several clients share a creation time: the id breaks the tie, so none is skipped
    # or shown twice across pages.
    for i in range(23):
        await store.clients.create(client(f"c{i:02d}", 1000.0 + i // 4))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.clients.page(before=cursor, limit=5)
        seen += [c.client_id for c in page]
        if len(page) < 5:
            break
        cursor = (page[-1].created_at, page[-1].client_id)
    assert len(seen) == 23 and len(set(seen)) == 23
    expected = sorted(
        (f"c{i:02d}" for i in range(23)), key=lambda c: (1000 + int(c[1:]) // 4, c), reverse=True
    )
    assert seen == expected


async def test_client_filters_and_literal_search(store: SqlStore) -> None:
    await store.clients.create(client("agent_1", 1.0, "preregistered", name="Backfill 100%"))
    await store.clients.create(client("agent-2", 2.0, "preregistered", name="Backfill"))
    await store.clients.create(client("dcr-1", 3.0, disabled_at=5.0))
    assert ids(await store.clients.page(source="preregistered")) == ["agent-2", "agent_1"]
    assert ids(await store.clients.page(status="disabled")) == ["dcr-1"]
    assert ids(await store.clients.page(status="active", source="dcr")) == []
    # "_" and "%" are characters here, not LIKE wildcards; the match ignores case.
    assert ids(await store.clients.page(search="t_1")) == ["agent_1"]
    assert ids(await store.clients.page(search="100%")) == ["agent_1"]
    assert ids(await store.clients.page(search="BACKFILL")) == ["agent-2", "agent_1"]
    assert await store.clients.counts() == {("preregistered", False): 2, ("dcr", True): 1}


async def test_last_use_moves_forward_only(store: SqlStore) -> None:
    await store.clients.create(client("a", 1.0))
    await store.clients.touch("a", 50.0)
    await store.clients.touch("a", 40.0)  # a late write from another replica
    await store.clients.touch("missing", 60.0)  # a metadata-document client has no row
    found = await store.clients.get("a")
    assert found is not None and found.last_used_at == 50.0


async def test_never_used_registrations_and_their_deletion(store: SqlStore) -> None:
    await store.clients.create(client("old-unused", 10.0))
    await store.clients.create(client("old-used", 10.0))
    await store.clients.touch("old-used", 20.0)
    await store.clients.create(client("old-with-grant", 10.0))
    await family(store, "f1", "old-with-grant", "u1", 11.0)
    await store.clients.create(client("new-unused", 500.0))
    await store.clients.create(client("old-prereg", 10.0, "preregistered"))
    await store.users.put_consent(ConsentRecord("u1", "old-unused", R, "a", 12.0))
    found = await store.clients.never_used("dcr", created_before=100.0)
    assert [c.client_id for c in found] == ["old-unused"]
    # The deletion checks again: a client used since it was listed survives.
    await store.clients.create(client("raced", 10.0))
    await store.clients.touch("raced", 90.0)
    deleted = await store.clients.delete_never_used(
        ["old-unused", "raced", "old-prereg", "new-unused"], created_before=100.0
    )
    assert deleted == ["old-unused"]
    assert await store.clients.get("old-unused") is None
    assert await store.users.consents_of("u1") == []
    assert await store.clients.get("raced") is not None
    assert await store.clients.get("old-prereg") is not None


async def test_family_pages_with_rotations(store: SqlStore) -> None:
    await family(store, "f1", "cli", "alice", 100.0, rotations=3)
    await family(store, "f2", "cli", "bob", 200.0)
    await family(store, "f3", "web", "alice", 300.0, rotations=1)
    await store.grants.revoke_family("f3", 400.0, "refresh_reuse", 1e6)
    page = await store.grants.family_page(subject="alice")
    assert [(s.family.id, s.refresh_tokens, s.last_rotated_at) for s in page] == [
        ("f3", 2, 310.0),
        ("f1", 4, 130.0),
    ]
    assert page[0].family.revoked_reason == "refresh_reuse"
    assert [
        s.family.id for s in await store.grants.family_page(subject="alice", live_only=True)
    ] == ["f1"]
    assert [s.family.id for s in await store.grants.family_page(client_id="cli")] == ["f2", "f1"]
    newest = await store.grants.family_page(limit=1)
    after = await store.grants.family_page(before=(newest[0].family.created_at, "f3"), limit=5)
    assert [s.family.id for s in after] == ["f2", "f1"]
    assert await store.grants.live_families(client_ids=["cli", "web", "x"]) == {"cli": 2}
    assert await store.grants.live_families(subjects=["alice", "bob"]) == {"alice": 1, "bob": 1}
    assert (await store.grants.family("f2")) is not None
    assert await store.grants.family("nope") is None


async def test_user_pages_and_the_operator_role(store: SqlStore) -> None:
    for name in ("carol", "alice", "bob", "dave_x"):
        await store.users.create(
            UserRecord(name + "-id", name, f"{name}@example.com", None, None, 1.0)
        )
    assert await store.users.set_operator("bob-id", 42.0)
    assert not await store.users.set_operator("missing", 42.0)
    assert names(await store.users.page(limit=2)) == ["alice", "bob"]
    assert names(await store.users.page(after="bob")) == ["carol", "dave_x"]
    assert names(await store.users.page(operators_only=True)) == ["bob"]
    assert names(await store.users.page(search="E_X")) == ["dave_x"]
    assert await store.users.count() == 4
    got = await store.users.get_many({"bob-id", "nobody"})
    assert list(got) == ["bob-id"] and got["bob-id"].operator_since == 42.0


def event(
    at: float, name: str = "mcp.request", outcome: str = "ok", **fields: object
) -> StoredEvent:
    return StoredEvent(0, at, name, outcome, **fields)  # type: ignore[arg-type]


async def test_audit_events_search_count_series_and_purge(store: SqlStore) -> None:
    events = store.audit_events
    await events.append(
        [
            event(100.0, "mcp.request", "forbidden", subject="alice", jti="j1", tool="refund"),
            event(110.0, "mcp.request", "rate_limited", client_id="flood", jti="j2"),
            event(120.0, "mcp.request", "rate_limited", client_id="flood", jti="j2"),
            event(130.0, "client.authentication_failed", "unauthorized", client_id="agent"),
            event(
                290.0,
                "key.rotated",
                actor="console:olivia",
                detail={"kid": "k2"},
                scopes=("a", "b"),
            ),
        ]
    )
    everything = EventFilter(since=0.0, until=300.0)
    found = await events.search(everything, limit=2)
    assert [e.timestamp for e in found] == [290.0, 130.0]
    assert found[0].actor == "console:olivia" and found[0].detail == {"kid": "k2"}
    assert found[0].scopes == ("a", "b")
    older = await events.search(everything, before_id=found[-1].id)
    assert [e.timestamp for e in older] == [120.0, 110.0, 100.0]
    by_jti = await events.search(EventFilter(since=0.0, until=300.0, jti="j2"))
    assert len(by_jti) == 2
    assert await events.search(EventFilter(since=105.0, until=125.0, client_id="flood")) != []
    assert (
        await events.search(EventFilter(since=0.0, until=300.0, tool="refund", subject="bob")) == []
    )
    counts = await events.counts(everything, ("outcome",))
    assert counts[0] == (("rate_limited",), 2)
    assert dict(await events.counts(everything, ("jti",))) == {("j2",): 2, ("j1",): 1, (None,): 2}
    with pytest.raises(ValueError, match="cannot group"):
        await events.counts(everything, ("detail",))  # type: ignore[arg-type]
    any_of = EventFilter(since=0.0, until=300.0, outcomes=("forbidden", "unauthorized"))
    assert len(await events.search(any_of)) == 2
    # Three buckets of 100 s: the last event lands in the last bucket, not past it.
    series = await events.series(everything, ("outcome",), buckets=3)
    assert sorted(series) == [
        (1, ("forbidden",), 1),
        (1, ("rate_limited",), 2),
        (1, ("unauthorized",), 1),
        (2, ("ok",), 1),
    ]
    assert await events.purge(before=125.0) == 3
    assert [e.timestamp for e in await events.search(everything)] == [290.0, 130.0]


async def test_migration_backfills_last_use_from_grants(database_url: str) -> None:
    """Clients used before the last-use column existed are not taken for never used."""
    engine = open_engine(database_url)
    try:
        await upgrade(engine, "0002")
        async with engine.begin() as conn:
            for client_id in ("used", "unused"):
                await conn.execute(
                    text(
                        "INSERT INTO clients (client_id, name, source, token_endpoint_auth_method,"
                        " grant_types, redirect_uris, application_type, metadata, created_at)"
                        " VALUES (:id, :id, 'dcr', 'none', '[]', '[]', 'native', '{}', 1)"
                    ),
                    {"id": client_id},
                )
            await conn.execute(
                text(
                    "INSERT INTO token_families (id, client_id, subject, resource, scope,"
                    " created_at, absolute_expires_at) VALUES ('f', 'used', 's', 'r', '', 77, 99)"
                )
            )
        await upgrade(engine)
        store = SqlStore(engine)
        used, unused = await store.clients.get("used"), await store.clients.get("unused")
        assert used is not None and used.last_used_at == 77.0
        assert unused is not None and unused.last_used_at is None
    finally:
        await engine.dispose()


async def test_migration_downgrades_and_upgrades_again(database_url: str) -> None:
    """Migration 0005 (audit events) undone leaves the schema before it (no audit table, no new
    columns, the old indexes), and applies again cleanly."""
    from alembic import command
    from sqlalchemy import inspect
    from sqlalchemy.engine import Connection

    from mcpward.storage.database import _alembic_config, current_revision

    engine = open_engine(database_url)

    def shape(connection: Connection) -> tuple[set[str], set[str], set[str]]:
        found = inspect(connection)
        columns = {c["name"] for c in found.get_columns("clients")}
        columns |= {c["name"] for c in found.get_columns("users")}
        indexes = {i["name"] or "" for i in found.get_indexes("token_families")}
        return set(found.get_table_names()), columns, indexes

    def downgrade(connection: Connection) -> None:
        config = _alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, "0004")  # the revision before: 0004_refresh_successor

    try:
        await upgrade(engine)
        assert await current_revision(engine) == "0005"
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            tables, columns, indexes = await conn.run_sync(shape)
        assert "audit_events" not in tables and "revoked_sessions" in tables
        assert not {"last_used_at", "operator_since"} & columns
        assert "ix_token_families_created_at" not in indexes
        assert "ix_token_families_subject" in indexes
        await upgrade(engine)
        assert await current_revision(engine) == "0005"
        store = SqlStore(engine)
        await store.audit_events.append([StoredEvent(0, 1.0, "logout", "ok")])
        assert len(await store.audit_events.search(EventFilter(0.0, 2.0))) == 1
    finally:
        await engine.dispose()
