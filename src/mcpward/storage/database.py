"""Opening the database: SQLite (embedded default, via aiosqlite) or PostgreSQL (asyncpg).

The schema is owned by Alembic (``storage/migrations``); :func:`upgrade` brings a database
to the newest revision and is what ``mcpward serve`` and ``mcpward db upgrade`` run.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

MIGRATIONS = Path(__file__).parent / "migrations"


# Execution option marking a connection that will write (see writer()).
WRITE_OPTION = "mcpward_write"


class Writer:
    """Write transactions on an engine's pool.

    On SQLite there is one writer at a time anyway; queueing this process's writers on an
    asyncio lock (fair, first come first served) replaces SQLite's busy handler, which
    retries with sleeps of up to 100 ms and starves unlucky waiters (measured: refresh
    p99 over 1 s at 16 concurrent rotations). Other processes still wait on busy_timeout.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine.execution_options(**{WRITE_OPTION: True})
        self._lock = (
            _sqlite_write_locks.setdefault(engine.sync_engine, asyncio.Lock())
            if (engine.dialect.name == "sqlite")
            else None
        )

    @asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        if self._lock is None:
            async with self._engine.begin() as conn:
                yield conn
            return
        async with self._lock, self._engine.begin() as conn:
            yield conn


_sqlite_write_locks: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def writer(engine: AsyncEngine) -> Writer:
    """The same engine and pool, for transactions that write."""
    return Writer(engine)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def normalise_url(url: str) -> str:
    """Accept the URLs operators paste (``postgres://``, ``postgresql://``, ``sqlite:///``)
    and pick the async driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    return url


def open_engine(url: str, **kwargs: Any) -> AsyncEngine:
    url = normalise_url(url)
    if not is_sqlite(url):
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
        kwargs.setdefault("pool_pre_ping", True)
        return create_async_engine(url, hide_parameters=True, **kwargs)

    path = url.split("///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # The database holds hashes and encrypted keys only, but still: owner-only.
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    engine = create_async_engine(url, connect_args={"timeout": 30}, hide_parameters=True, **kwargs)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (below); pysqlite's implicit BEGIN is DEFERRED.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Write transactions take the write lock up front (IMMEDIATE), so two that read then
        # write (refresh rotation, code redemption) queue behind each other instead of one
        # failing with SQLITE_BUSY when it tries to upgrade its read lock. Reads stay
        # DEFERRED so that they never wait for the write lock (WAL lets them run alongside).
        immediate = conn.get_execution_options().get(WRITE_OPTION)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


def _alembic_config(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Run the Alembic migrations on ``engine`` up to ``revision``."""
    # Alembic announces every plugin it loads at INFO; operators need only problems.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    from alembic import command

    def _run(connection: Connection) -> None:
        config = _alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as conn:
        await conn.run_sync(_run)


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def _read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(_read)
