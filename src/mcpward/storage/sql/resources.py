from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import ResourceRecord
from mcpward.storage.schema import resources
from mcpward.storage.sql._rows import to_record, to_values


class SqlResources:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def get(self, uri: str) -> ResourceRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(resources).where(resources.c.uri == uri))).first()
        return to_record(ResourceRecord, row) if row else None

    async def all(self) -> list[ResourceRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(resources).order_by(resources.c.uri))).all()
        return [to_record(ResourceRecord, r) for r in rows]

    async def put(self, record: ResourceRecord) -> None:
        """Create or replace (resources are configuration, re-applied at start-up)."""
        async with self._writer.begin() as conn:
            await conn.execute(resources.delete().where(resources.c.uri == record.uri))
            await conn.execute(resources.insert().values(**to_values(record)))
