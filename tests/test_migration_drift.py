"""The schema is written twice: the SQLAlchemy metadata the code queries through
(``storage/schema.py``) and the Alembic migrations that create the tables
(``storage/migrations/versions``). An empty database upgraded to head by the migrations
must be what the metadata describes, on SQLite and on PostgreSQL: Alembic's autogenerate
comparison, with column types, nullability and server defaults compared, finds nothing.
"""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Column, MetaData, Text
from sqlalchemy.engine import Connection

from mcpward.storage.database import open_engine, upgrade
from mcpward.storage.schema import metadata

COMPARE: dict[str, Any] = {"compare_type": True, "compare_server_default": True}


async def differences(url: str, target: MetaData) -> list[Any]:
    """Upgrade the database at ``url`` to head, then compare it with ``target``."""
    engine = open_engine(url)
    try:
        await upgrade(engine)

        def compare(conn: Connection) -> list[Any]:
            return list(compare_metadata(MigrationContext.configure(conn, opts=COMPARE), target))

        async with engine.connect() as conn:
            return await conn.run_sync(compare)
    finally:
        await engine.dispose()


def altered(original: MetaData) -> MetaData:
    """A copy of the metadata with one column's type and nullability changed and one
    column added: what a forgotten migration would leave behind."""
    copy = MetaData(naming_convention=original.naming_convention)
    for table in original.tables.values():
        table.to_metadata(copy)
    resources = copy.tables["resources"]
    resources.c.name.type = Text()
    resources.c.name.nullable = True
    resources.append_column(Column("forgotten", Text, nullable=True))
    return copy


async def test_migrations_at_head_match_the_metadata(database_url: str) -> None:
    assert await differences(database_url, metadata) == []


async def test_the_comparison_sees_type_nullability_and_columns(database_url: str) -> None:
    """Guards the test above against comparing too little: a forgotten migration shows."""
    found = await differences(database_url, altered(metadata))
    flat = [d for diff in found for d in (diff if isinstance(diff, list) else [diff])]
    kinds = {(d[0], d[2], d[3]) for d in flat if d[0].startswith("modify_")}
    assert ("modify_type", "resources", "name") in kinds
    assert ("modify_nullable", "resources", "name") in kinds
    assert [(d[0], d[2], d[3].name) for d in flat if d[0] == "add_column"] == [
        ("add_column", "resources", "forgotten")
    ]
