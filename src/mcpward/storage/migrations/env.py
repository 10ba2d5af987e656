"""Alembic environment: runs on the connection handed in by ``storage.database.upgrade``,
or opens one from the configured URL (``alembic`` command line)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from mcpward.storage.schema import metadata

config = context.config


def _run(connection: object) -> None:
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=metadata,
        render_as_batch=True,  # SQLite ALTER TABLE support
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:
    url = config.get_main_option("sqlalchemy.url") or ""
    sync_url = url.replace("+aiosqlite", "").replace("+asyncpg", "+psycopg")
    with create_engine(sync_url).connect() as conn:
        _run(conn)
