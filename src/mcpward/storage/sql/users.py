"""People who sign in (built-in or through an upstream OpenID provider), their second
factor, and the consents they gave to clients."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import ConsentRecord, UserRecord
from mcpward.storage.schema import consents, users
from mcpward.storage.sql._rows import like_pattern, to_record, to_values


class SqlUsers:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def get(self, user_id: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
        return to_record(UserRecord, row) if row else None

    async def by_username(self, username: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(users).where(users.c.username == username))).first()
        return to_record(UserRecord, row) if row else None

    async def get_many(self, user_ids: Collection[str]) -> dict[str, UserRecord]:
        if not user_ids:
            return {}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(users).where(users.c.id.in_(user_ids)))).all()
        return {r.id: to_record(UserRecord, r) for r in rows}

    async def by_email(self, email: str) -> list[UserRecord]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(users).where(func.lower(users.c.email) == email.lower()))
            ).all()
        return [to_record(UserRecord, r) for r in rows]

    async def by_upstream(self, issuer: str, subject: str) -> UserRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(users).where(
                        and_(users.c.upstream_issuer == issuer, users.c.upstream_subject == subject)
                    )
                )
            ).first()
        return to_record(UserRecord, row) if row else None

    async def all(self) -> list[UserRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(users).order_by(users.c.username))).all()
        return [to_record(UserRecord, r) for r in rows]

    async def page(
        self,
        *,
        after: str | None = None,
        limit: int = 50,
        search: str | None = None,
        operators_only: bool = False,
    ) -> list[UserRecord]:
        """By username along its unique index, ``limit`` after ``after``."""
        query = select(users)
        if after is not None:
            query = query.where(users.c.username > after)
        if operators_only:
            query = query.where(users.c.operator_since.is_not(None))
        if search:
            pattern = like_pattern(search)
            query = query.where(
                users.c.username.ilike(pattern, escape="\\")
                | users.c.email.ilike(pattern, escape="\\")
                | users.c.display_name.ilike(pattern, escape="\\")
            )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.order_by(users.c.username).limit(limit))).all()
        return [to_record(UserRecord, r) for r in rows]

    async def count(self) -> int:
        async with self._engine.connect() as conn:
            return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())

    async def set_operator(self, user_id: str, since: float | None) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(operator_since=since)
            )
        return result.rowcount > 0

    async def create(self, record: UserRecord) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(users.insert().values(**to_values(record)))

    async def set_disabled(self, user_id: str, at: float | None) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(disabled_at=at)
            )
        return result.rowcount > 0

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(password_hash=password_hash)
            )
        return result.rowcount > 0

    async def set_totp_secret(self, user_id: str, encrypted: bytes | None) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(users).where(users.c.id == user_id).values(totp_secret_enc=encrypted)
            )
        return result.rowcount > 0

    async def link_upstream(self, user_id: str, issuer: str, subject: str) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(users)
                .where(users.c.id == user_id, users.c.upstream_issuer.is_(None))
                .values(upstream_issuer=issuer, upstream_subject=subject)
            )
        return result.rowcount > 0

    # -- consents -------------------------------------------------------------------------

    async def get_consent(
        self, user_id: str, client_id: str, resource: str
    ) -> ConsentRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(consents).where(
                        consents.c.user_id == user_id,
                        consents.c.client_id == client_id,
                        consents.c.resource == resource,
                    )
                )
            ).first()
        return to_record(ConsentRecord, row) if row else None

    async def put_consent(self, record: ConsentRecord) -> None:
        """Remember (or replace) what a user approved for a client and a resource."""
        async with self._writer.begin() as conn:
            await conn.execute(
                delete(consents).where(
                    consents.c.user_id == record.user_id,
                    consents.c.client_id == record.client_id,
                    consents.c.resource == record.resource,
                )
            )
            await conn.execute(consents.insert().values(**to_values(record)))

    async def consents_of(self, user_id: str) -> list[ConsentRecord]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(consents)
                    .where(consents.c.user_id == user_id)
                    .order_by(consents.c.client_id, consents.c.resource)
                )
            ).all()
        return [to_record(ConsentRecord, r) for r in rows]

    async def revoke_consent(self, user_id: str, client_id: str, resource: str) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                delete(consents).where(
                    consents.c.user_id == user_id,
                    consents.c.client_id == client_id,
                    consents.c.resource == resource,
                )
            )
        return result.rowcount > 0

    async def forget_consents(self, user_id: str) -> int:
        async with self._writer.begin() as conn:
            result = await conn.execute(delete(consents).where(consents.c.user_id == user_id))
        return result.rowcount
