"""Migration 0003 (DPoP binding) on a database that already holds clients, codes and
grants: they get ``dpop_bound_access_tokens`` false and no key, on SQLite and on
PostgreSQL; the downgrade removes the columns and an upgrade adds them again."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from mcpward.storage.database import _alembic_config, current_revision, open_engine, upgrade
from mcpward.storage.sql import SqlStore


def columns(connection: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns(table)}


async def test_migration_0003_keeps_existing_rows_unbound(database_url: str) -> None:
    engine = open_engine(database_url)

    def downgrade(connection: Connection) -> None:
        from alembic import command

        config = _alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")

    try:
        await upgrade(engine, "0002")
        async with engine.begin() as conn:
            await conn.execute(
                text(
                    "INSERT INTO clients (client_id, name, source, token_endpoint_auth_method,"
                    " grant_types, redirect_uris, application_type, metadata, created_at)"
                    " VALUES ('old', 'old', 'preregistered', 'none', '[]', '[]', 'native',"
                    " '{}', 1.0)"
                )
            )
            await conn.execute(
                text(
                    "INSERT INTO token_families (id, client_id, subject, resource, scope,"
                    " created_at, absolute_expires_at) VALUES ('fam', 'old', 'u', 'r', 's',"
                    " 1.0, 9999999999.0)"
                )
            )
        await upgrade(engine, "0003")
        assert await current_revision(engine) == "0003"
        async with engine.connect() as conn:
            assert "dpop_jkt" in await conn.run_sync(columns, "authorization_codes")
        # At 0003 itself, read with SQL: today's SqlStore expects the later revisions' columns.
        async with engine.connect() as conn:
            bound = await conn.scalar(
                text("SELECT dpop_bound_access_tokens FROM clients WHERE client_id = 'old'")
            )
            keys = (await conn.execute(text("SELECT dpop_jkt FROM token_families"))).all()
        assert not bound and [tuple(k) for k in keys] == [(None,)]

        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        async with engine.connect() as conn:
            assert "dpop_bound_access_tokens" not in await conn.run_sync(columns, "clients")
            assert "dpop_jkt" not in await conn.run_sync(columns, "token_families")
        await upgrade(engine)  # and on to the newest revision, read through the store
        store = SqlStore(engine)
        client = await store.clients.get("old")
        assert client is not None and client.dpop_bound_access_tokens is False
        families = await store.grants.families_of(client_id="old")
        assert [f.dpop_jkt for f in families] == [None]
    finally:
        await engine.dispose()
