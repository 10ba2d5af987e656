"""Cached Client ID Metadata Documents (``client_metadata_documents``), keyed by URL.

Only documents that passed validation are stored; ``expires_at`` comes from the
document's ``Cache-Control: max-age``, bounded by the configured ``cache_ttl``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import CachedDocument
from mcpward.storage.schema import client_metadata_documents as documents


class SqlMetadataDocuments:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def get(self, url: str) -> CachedDocument | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(documents).where(documents.c.url == url))).first()
        if row is None:
            return None
        return CachedDocument(
            url=row.url,
            document=dict(row.document),
            fetched_at=float(row.fetched_at),
            expires_at=float(row.expires_at),
        )

    async def put(
        self, url: str, document: dict[str, Any], *, fetched_at: float, expires_at: float
    ) -> None:
        """Insert or replace; concurrent writers of the same URL do not conflict."""
        values = {
            "url": url,
            "document": document,
            "fetched_at": fetched_at,
            "expires_at": expires_at,
        }
        changes = {"document": document, "fetched_at": fetched_at, "expires_at": expires_at}
        if self._engine.dialect.name == "postgresql":
            pg = postgresql.insert(documents).values(**values)
            statement: Any = pg.on_conflict_do_update(index_elements=["url"], set_=changes)
        else:
            lite = sqlite.insert(documents).values(**values)
            statement = lite.on_conflict_do_update(index_elements=["url"], set_=changes)
        async with self._writer.begin() as conn:
            await conn.execute(statement)

    async def delete(self, url: str) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(delete(documents).where(documents.c.url == url))
        return result.rowcount > 0

    async def purge_expired(self, now: float) -> int:
        """Drop documents whose cache lifetime has ended; returns how many."""
        async with self._writer.begin() as conn:
            result = await conn.execute(delete(documents).where(documents.c.expires_at <= now))
        return int(result.rowcount)
