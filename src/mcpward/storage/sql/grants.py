"""Authorization codes, refresh-token families and revocations.

Every check-then-act step is a single conditional UPDATE (``... WHERE used_at IS NULL``)
inside one transaction, so that two concurrent redemptions of the same code or refresh
token cannot both succeed, on SQLite (serialised by BEGIN IMMEDIATE) and on PostgreSQL
(the second UPDATE waits for the first to commit, then matches no row).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import delete, func, or_, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from mcpward.storage.database import writer
from mcpward.storage.records import (
    CodeRecord,
    Cursor,
    FamilyRecord,
    FamilySummary,
    RefreshRecord,
    Revocation,
    RevocationKind,
    Rotation,
)
from mcpward.storage.schema import (
    assertion_jtis,
    authorization_codes,
    refresh_tokens,
    revocations,
    token_families,
)
from mcpward.storage.sql._refresh_statements import (
    ERASE_PARENT_SUCCESSOR,
    GET_REFRESH,
    INSERT_REFRESH,
    SPEND_REFRESH,
    erase_successor,
    live_family,
)
from mcpward.storage.sql._rows import to_record, to_values


class SqlGrants:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    # -- authorization codes ----------------------------------------------------------

    async def save_code(self, record: CodeRecord) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(authorization_codes.insert().values(**to_values(record)))

    async def get_code(self, code_hash: str) -> CodeRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(authorization_codes).where(authorization_codes.c.code_hash == code_hash)
                )
            ).first()
        return to_record(CodeRecord, row) if row else None

    async def burn_code(self, code_hash: str, now: float) -> None:
        """Spend a code without issuing anything (a failed PKCE or redirect check)."""
        async with self._writer.begin() as conn:
            await conn.execute(
                update(authorization_codes)
                .where(
                    authorization_codes.c.code_hash == code_hash,
                    authorization_codes.c.used_at.is_(None),
                )
                .values(used_at=now)
            )

    async def redeem_code(
        self,
        code_hash: str,
        now: float,
        family: FamilyRecord,
        refresh: RefreshRecord | None,
    ) -> bool:
        """Mark the code used and create its token family, atomically. False when the code
        was already used (then nothing is written)."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                update(authorization_codes)
                .where(
                    authorization_codes.c.code_hash == code_hash,
                    authorization_codes.c.used_at.is_(None),
                )
                .values(used_at=now)
            )
            if result.rowcount != 1:
                return False
            await conn.execute(token_families.insert().values(**to_values(family)))
            if refresh is not None:
                await conn.execute(refresh_tokens.insert().values(**to_values(refresh)))
        return True

    async def revoke_family_of_code(
        self, code_hash: str, now: float, reason: str, expires_at: float
    ) -> Revocation | None:
        """A replayed code: revoke everything issued from it (RFC 6749 §4.1.2)."""
        async with self._writer.begin() as conn:
            row = (
                await conn.execute(
                    select(token_families.c.id).where(token_families.c.code_hash == code_hash)
                )
            ).first()
            if row is None:
                return None
            return await _revoke_family(conn, row.id, now, reason, expires_at)

    # -- refresh tokens ---------------------------------------------------------------

    async def get_refresh(self, token_hash: str) -> tuple[RefreshRecord, FamilyRecord] | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(GET_REFRESH, {"b_hash": token_hash})).first()
        if row is None:
            return None
        values = row._mapping
        refresh = RefreshRecord(**{c.name: values[c] for c in refresh_tokens.c})
        family = FamilyRecord(**{c.name: values[c] for c in token_families.c})
        return refresh, family

    async def rotate_refresh(
        self,
        old_hash: str,
        now: float,
        new: RefreshRecord,
        successor_enc: bytes | None = None,
        successor_until: float | None = None,
    ) -> Rotation:
        """One conditional UPDATE decides who rotates. A concurrent loser's UPDATE waits
        for the winner's commit (PostgreSQL row lock; SQLite: BEGIN IMMEDIATE), then
        matches nothing; its next statement (READ COMMITTED: a fresh snapshot) reads the
        winner's stored successor."""
        async with self._writer.begin() as conn:
            result = await conn.execute(
                SPEND_REFRESH,
                {
                    "b_hash": old_hash,
                    "b_family": new.family_id,
                    "b_now": now,
                    "b_enc": successor_enc,
                    "b_until": successor_until,
                },
            )
            spent = result.first()
            if spent is None:
                live = live_family(token_families.c.id == new.family_id)
                row = (
                    await conn.execute(
                        select(
                            refresh_tokens.c.successor_enc, refresh_tokens.c.successor_until
                        ).where(
                            refresh_tokens.c.token_hash == old_hash,
                            refresh_tokens.c.used_at.is_not(None),
                            refresh_tokens.c.family_id.in_(live),
                        )
                    )
                ).first()
                until = row.successor_until if row is not None else None
                if row is None or until is None or now > until:
                    return Rotation(rotated=False)
                return Rotation(rotated=False, successor_enc=row.successor_enc)
            await conn.execute(INSERT_REFRESH, to_values(new))
            if spent.parent_hash is not None:
                await conn.execute(ERASE_PARENT_SUCCESSOR, {"b_parent": spent.parent_hash})
        return Rotation(rotated=True)

    async def revoke_family(
        self, family_id: str, now: float, reason: str, expires_at: float
    ) -> Revocation | None:
        async with self._writer.begin() as conn:
            return await _revoke_family(conn, family_id, now, reason, expires_at)

    async def families_of(
        self, *, subject: str | None = None, client_id: str | None = None
    ) -> list[FamilyRecord]:
        query = select(token_families)
        if subject is not None:
            query = query.where(token_families.c.subject == subject)
        if client_id is not None:
            query = query.where(token_families.c.client_id == client_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [to_record(FamilyRecord, r) for r in rows]

    async def family(self, family_id: str) -> FamilyRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(token_families).where(token_families.c.id == family_id))
            ).first()
        return to_record(FamilyRecord, row) if row else None

    async def family_page(
        self,
        *,
        subject: str | None = None,
        client_id: str | None = None,
        live_only: bool = False,
        before: Cursor | None = None,
        limit: int = 50,
    ) -> list[FamilySummary]:
        """Newest first along (subject|client_id, created_at) or created_at; the refresh
        tokens of the page's families are counted in a second, indexed query."""
        query = select(token_families)
        if subject is not None:
            query = query.where(token_families.c.subject == subject)
        if client_id is not None:
            query = query.where(token_families.c.client_id == client_id)
        if live_only:
            query = query.where(token_families.c.revoked_at.is_(None))
        if before is not None:
            query = query.where(tuple_(token_families.c.created_at, token_families.c.id) < before)
        query = query.order_by(token_families.c.created_at.desc(), token_families.c.id.desc())
        async with self._engine.connect() as conn:
            families = [
                to_record(FamilyRecord, r) for r in (await conn.execute(query.limit(limit))).all()
            ]
            rotations = {}
            if families:
                rows = await conn.execute(
                    select(
                        refresh_tokens.c.family_id,
                        func.count(),
                        func.max(refresh_tokens.c.created_at),
                    )
                    .where(refresh_tokens.c.family_id.in_([f.id for f in families]))
                    .group_by(refresh_tokens.c.family_id)
                )
                rotations = {fid: (int(n), newest) for fid, n, newest in rows.all()}
        summaries = []
        for family in families:
            count, newest = rotations.get(family.id, (0, None))
            # The first refresh token is issued with the family: rotations come after.
            rotated = newest if newest is not None and newest > family.created_at else None
            summaries.append(FamilySummary(family, rotated, count))
        return summaries

    async def live_families(
        self, *, client_ids: Collection[str] = (), subjects: Collection[str] = ()
    ) -> dict[str, int]:
        if bool(client_ids) == bool(subjects):
            return {}
        column = token_families.c.client_id if client_ids else token_families.c.subject
        query = (
            select(column, func.count())
            .where(column.in_(client_ids or subjects), token_families.c.revoked_at.is_(None))
            .group_by(column)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {key: int(n) for key, n in rows}

    # -- wholesale revocation -----------------------------------------------------------

    async def revoke_all(
        self, kind: RevocationKind, key: str, now: float, expires_at: float, reason: str
    ) -> Revocation:
        """Revoke every grant of a subject (offboarding) or a client, and record it so
        guards refuse access tokens issued up to now."""
        if kind not in ("subject", "client"):
            raise ValueError(kind)
        column = token_families.c.subject if kind == "subject" else token_families.c.client_id
        revocation = Revocation(kind, key, now, expires_at)
        async with self._writer.begin() as conn:
            await conn.execute(
                update(token_families)
                .where(column == key, token_families.c.revoked_at.is_(None))
                .values(revoked_at=now, revoked_reason=reason)
            )
            await _insert_revocations(conn, [revocation])
        return revocation

    async def add_revocations(self, items: Sequence[Revocation]) -> None:
        async with self._writer.begin() as conn:
            await _insert_revocations(conn, items)

    async def is_revoked(
        self, *, jti: str, family_id: str | None, subject: str, client_id: str, iat: float
    ) -> bool:
        """The authorization server's own view (introspection); guards keep a local one."""
        keys = [("jti", jti), ("subject", subject), ("client", client_id)]
        if family_id:
            keys.append(("family", family_id))
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(revocations.c.kind, revocations.c.revoked_at).where(
                        or_(
                            *[(revocations.c.kind == k) & (revocations.c.key == v) for k, v in keys]
                        )
                    )
                )
            ).all()
        return any(kind in ("jti", "family") or iat <= revoked_at for kind, revoked_at in rows)

    # -- RFC 7523 assertion replay ------------------------------------------------------

    async def remember_assertion(self, client_id: str, jti: str, expires_at: float) -> bool:
        """False when this client already used this assertion ``jti``."""
        try:
            async with self._writer.begin() as conn:
                await conn.execute(
                    assertion_jtis.insert().values(
                        client_id=client_id, jti=jti, expires_at=expires_at
                    )
                )
        except IntegrityError:
            return False
        return True

    # -- housekeeping -----------------------------------------------------------------

    async def purge_expired(self, now: float) -> None:
        async with self._writer.begin() as conn:
            await conn.execute(
                delete(authorization_codes).where(authorization_codes.c.expires_at < now)
            )
            await conn.execute(delete(refresh_tokens).where(refresh_tokens.c.expires_at < now))
            await conn.execute(erase_successor(refresh_tokens.c.successor_until < now))
            await conn.execute(delete(revocations).where(revocations.c.expires_at < now))
            await conn.execute(delete(assertion_jtis).where(assertion_jtis.c.expires_at < now))
            await conn.execute(
                delete(token_families).where(token_families.c.absolute_expires_at < now)
            )

    # -- the account page -------------------------------------------------------------

    async def last_issued(self, subject: str) -> dict[tuple[str, str], float]:
        """When tokens were last issued to ``subject``, per (client_id, resource): the
        newest refresh token of their families (each rotation writes one), else the
        family's creation (a grant without refresh tokens). Revoked families count, as
        they were used. Refresh tokens are purged once expired, so a grant idle for longer
        than the refresh-token lifetime shows when its family was created."""
        newest = func.max(func.coalesce(refresh_tokens.c.created_at, token_families.c.created_at))
        query = (
            select(token_families.c.client_id, token_families.c.resource, newest.label("at"))
            .select_from(
                token_families.outerjoin(
                    refresh_tokens, refresh_tokens.c.family_id == token_families.c.id
                )
            )
            .where(token_families.c.subject == subject)
            .group_by(token_families.c.client_id, token_families.c.resource)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return {(r.client_id, r.resource): r.at for r in rows}


async def _revoke_family(
    conn: AsyncConnection, family_id: str, now: float, reason: str, expires_at: float
) -> Revocation | None:
    result = await conn.execute(
        update(token_families)
        .where(token_families.c.id == family_id, token_families.c.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
    )
    if result.rowcount != 1:  # already revoked: nothing new to tell guards
        return None
    # A revoked grant's stored successors serve no retry any more.
    await conn.execute(erase_successor(refresh_tokens.c.family_id == family_id))
    revocation = Revocation("family", family_id, now, expires_at)
    await _insert_revocations(conn, [revocation])
    return revocation


async def _insert_revocations(conn: AsyncConnection, items: Sequence[Revocation]) -> None:
    if items:
        await conn.execute(
            revocations.insert(),
            [
                {
                    "kind": r.kind,
                    "key": r.key,
                    "revoked_at": r.revoked_at,
                    "expires_at": r.expires_at,
                }
                for r in items
            ],
        )
