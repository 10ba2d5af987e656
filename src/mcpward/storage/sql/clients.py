from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import ClientRecord, SecretRecord
from mcpward.storage.schema import client_secrets, clients
from mcpward.storage.sql._rows import to_record, to_values


class SqlClients:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    async def get(self, client_id: str) -> ClientRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(clients).where(clients.c.client_id == client_id))
            ).first()
        return to_record(ClientRecord, row) if row else None

    async def all(self) -> list[ClientRecord]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(clients).order_by(clients.c.created_at))).all()
        return [to_record(ClientRecord, r) for r in rows]

    async def create(
        self,
        record: ClientRecord,
        secret: tuple[str, str, float] | None = None,
    ) -> None:
        """Insert a client, and its first secret as (hash, hint, expires_at), in one
        transaction."""
        async with self._writer.begin() as conn:
            await conn.execute(clients.insert().values(**to_values(record)))
            if secret is not None:
                secret_hash, hint, expires_at = secret
                await conn.execute(
                    client_secrets.insert().values(
                        client_id=record.client_id,
                        secret_hash=secret_hash,
                        hint=hint,
                        created_at=record.created_at,
                        expires_at=expires_at,
                    )
                )

    async def set_disabled(self, client_id: str, at: float | None) -> bool:
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(clients).where(clients.c.client_id == client_id).values(disabled_at=at)
            )
        return result.rowcount > 0

    async def secrets(self, client_id: str) -> list[SecretRecord]:
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(client_secrets)
                    .where(client_secrets.c.client_id == client_id)
                    .order_by(client_secrets.c.created_at)
                )
            ).all()
        return [to_record(SecretRecord, r) for r in rows]

    async def rotate_secret(
        self,
        client_id: str,
        *,
        new_hash: str,
        hint: str,
        now: float,
        expires_at: float,
        old_valid_until: float,
    ) -> None:
        """Add a new secret and cut every live older one down to the overlap window."""
        async with self._writer.begin() as conn:
            await conn.execute(
                update(client_secrets)
                .where(
                    client_secrets.c.client_id == client_id,
                    client_secrets.c.expires_at > old_valid_until,
                )
                .values(expires_at=old_valid_until)
            )
            await conn.execute(
                client_secrets.insert().values(
                    client_id=client_id,
                    secret_hash=new_hash,
                    hint=hint,
                    created_at=now,
                    expires_at=expires_at,
                )
            )

    async def newest_secret_expiry(self) -> dict[str, float]:
        """client_id -> expiry of its newest secret, for enabled clients that have one."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(client_secrets.c.client_id, func.max(client_secrets.c.expires_at))
                    .join(clients, clients.c.client_id == client_secrets.c.client_id)
                    .where(clients.c.disabled_at.is_(None))
                    .group_by(client_secrets.c.client_id)
                )
            ).all()
        return {client_id: float(expires) for client_id, expires in rows}

    # -- the account page -------------------------------------------------------------

    async def get_many(self, client_ids: Collection[str]) -> dict[str, ClientRecord]:
        """The stored clients among ``client_ids``, in one query (client_id -> record)."""
        if not client_ids:
            return {}
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(select(clients).where(clients.c.client_id.in_(client_ids)))
            ).all()
        return {r.client_id: to_record(ClientRecord, r) for r in rows}
