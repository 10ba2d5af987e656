from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, delete, exists, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import ClientRecord, ClientSource, ClientStatus, Cursor, SecretRecord
from mcpward.storage.schema import client_secrets, clients, consents, token_families
from mcpward.storage.sql._rows import like_pattern, to_record, to_values


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

    # -- operators ----------------------------------------------------------------------

    async def page(
        self,
        *,
        before: Cursor | None = None,
        limit: int = 50,
        source: ClientSource | None = None,
        status: ClientStatus | None = None,
        search: str | None = None,
    ) -> list[ClientRecord]:
        """Newest first by (created_at, client_id), read backwards along
        ``ix_clients_created_at`` from ``before``: the same cost on page 1 and page 200."""
        query = select(clients)
        if before is not None:
            query = query.where(tuple_(clients.c.created_at, clients.c.client_id) < before)
        if source is not None:
            query = query.where(clients.c.source == source)
        if status == "active":
            query = query.where(clients.c.disabled_at.is_(None))
        elif status == "disabled":
            query = query.where(clients.c.disabled_at.is_not(None))
        if search:
            pattern = like_pattern(search)
            query = query.where(
                or_(
                    clients.c.client_id.ilike(pattern, escape="\\"),
                    clients.c.name.ilike(pattern, escape="\\"),
                )
            )
        query = query.order_by(clients.c.created_at.desc(), clients.c.client_id.desc())
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query.limit(limit))).all()
        return [to_record(ClientRecord, r) for r in rows]

    async def counts(self) -> dict[tuple[str, bool], int]:
        disabled = clients.c.disabled_at.is_not(None)
        query = select(clients.c.source, disabled, func.count()).group_by(
            clients.c.source, disabled
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(source, bool(off)): int(n) for source, off, n in rows}

    async def secret_expiries(self, client_ids: Collection[str]) -> dict[str, float]:
        if not client_ids:
            return {}
        query = (
            select(client_secrets.c.client_id, func.max(client_secrets.c.expires_at))
            .where(client_secrets.c.client_id.in_(client_ids))
            .group_by(client_secrets.c.client_id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {client_id: float(expires) for client_id, expires in rows}

    async def touch(self, client_id: str, at: float) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                update(clients)
                .where(
                    clients.c.client_id == client_id,
                    or_(clients.c.last_used_at.is_(None), clients.c.last_used_at < at),
                )
                .values(last_used_at=at)
            )

    def _never_used(self, source: ClientSource, created_before: float) -> list[ColumnElement[bool]]:
        has_grant = exists().where(token_families.c.client_id == clients.c.client_id)
        return [
            clients.c.source == source,
            clients.c.created_at < created_before,
            clients.c.last_used_at.is_(None),
            ~has_grant,
        ]

    async def never_used(
        self, source: ClientSource, created_before: float, limit: int = 1000
    ) -> list[ClientRecord]:
        query = (
            select(clients)
            .where(*self._never_used(source, created_before))
            .order_by(clients.c.created_at, clients.c.client_id)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [to_record(ClientRecord, r) for r in rows]

    async def delete_never_used(
        self, client_ids: Collection[str], created_before: float
    ) -> list[str]:
        """Only dynamically registered clients are ever deleted: the conditions are checked
        again inside the transaction, so a client that got a token meanwhile stays."""
        if not client_ids:
            return []
        conditions = self._never_used("dcr", created_before)
        async with self._writer.begin() as conn:
            doomed = [
                row.client_id
                for row in (
                    await conn.execute(
                        select(clients.c.client_id).where(
                            clients.c.client_id.in_(client_ids),
                            *conditions,
                        )
                    )
                ).all()
            ]
            if doomed:
                await conn.execute(delete(consents).where(consents.c.client_id.in_(doomed)))
                await conn.execute(
                    delete(client_secrets).where(client_secrets.c.client_id.in_(doomed))
                )
                await conn.execute(delete(clients).where(clients.c.client_id.in_(doomed)))
        return sorted(doomed)
