from __future__ import annotations

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.records import UserRecord
from mcpward.storage.schema import consents, users
from mcpward.storage.sql._rows import to_record, to_values


class SqlUsers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, user_id: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return to_record(UserRecord, row) if row else None

    async def by_username(self, username: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return to_record(UserRecord, row) if row else None

    async def all(self) -> list[UserRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [to_record(UserRecord, r) for r in rows]

    async def create(self, record: UserRecord) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(users.insert().values(**to_values(record)))

    async def set_disabled(self, user_id: str, at: float | None) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(disabled_at=at)
            )
        return result.rowcount > 0

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        async with self._engine.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )
        return result.rowcount > 0

    async def forget_consents(self, user_id: str) -> int:
        async with self._engine.begin() as conn:
            result = await conn.execute(delete(consents).where(consents.c.user_id == user_id))
        return result.rowcount
