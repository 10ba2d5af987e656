from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import SigningKeyRecord
from mcpward.storage.schema import signing_keys
from mcpward.storage.sql._rows import to_record, to_values


class SqlKeys:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def all(self) -> list[SigningKeyRecord]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(signing_keys).order_by(signing_keys.c.active_at))
            ).all()
        return [to_record(SigningKeyRecord, r) for r in rows]

    async def add(self, record: SigningKeyRecord) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(signing_keys.insert().values(**to_values(record)))

    async def retire(self, kid: str, retired_at: float, published_until: float) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                update(signing_keys)
                .where(signing_keys.c.kid == kid)
                .values(retired_at=retired_at, published_until=published_until)
            )
