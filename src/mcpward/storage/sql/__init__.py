"""The SQL backend (SQLite and PostgreSQL through SQLAlchemy Core), one module per concern.

:class:`SqlStore` implements :class:`mcpward.storage.contracts.Store`.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import open_engine, upgrade
from mcpward.storage.sql.audit_events import SqlAuditEvents
from mcpward.storage.sql.clients import SqlClients
from mcpward.storage.sql.grants import SqlGrants
from mcpward.storage.sql.keys import SqlKeys
from mcpward.storage.sql.metadata_documents import SqlMetadataDocuments
from mcpward.storage.sql.resources import SqlResources
from mcpward.storage.sql.revocations import SqlRevocationLog
from mcpward.storage.sql.sessions import SqlSessions
from mcpward.storage.sql.users import SqlUsers

__all__ = ["SqlAuditEvents", "SqlRevocationLog", "SqlStore"]


class SqlStore:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.clients = SqlClients(engine)
        self.grants = SqlGrants(engine)
        self.revocation_log = SqlRevocationLog(engine)
        self.keys = SqlKeys(engine)
        self.resources = SqlResources(engine)
        self.sessions = SqlSessions(engine)
        self.users = SqlUsers(engine)
        self.metadata_documents = SqlMetadataDocuments(engine)
        self.audit_events = SqlAuditEvents(engine)

    @classmethod
    async def open(cls, url: str, *, migrate: bool = True) -> SqlStore:
        engine = open_engine(url)
        if migrate:
            await upgrade(engine)
        return cls(engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    @staticmethod
    def is_unavailable(exc: BaseException) -> bool:
        """Whether ``exc`` means the database cannot be reached (answer 503, retry),
        rather than a bug."""
        return isinstance(exc, OperationalError | DBAPIError | OSError | TimeoutError)

    async def close(self) -> None:
        await self.engine.dispose()
