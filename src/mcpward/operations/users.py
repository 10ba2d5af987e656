"""Operator actions on people: list a page at a time, create, disable and enable, set a
password, reset the second factor, see consents, offboard, and the operator role.

Passwords reach this layer already hashed (argon2id): reading and checking one is the
caller's part (a prompt, a form), so that no plain password is passed around here."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mcpward._secrets import new_id
from mcpward.audit import AuditEvent, EventName
from mcpward.operations._base import Actor, Conflict, NotFound, Page, Refused, encode_cursor
from mcpward.operations._base import decode_cursor as _decode
from mcpward.server import AuthorizationServer
from mcpward.storage.records import ConsentRecord, UserRecord


@dataclass(frozen=True, slots=True)
class UserSummary:
    user: UserRecord
    live_grants: int


@dataclass(frozen=True, slots=True)
class Enrolment:
    """A new TOTP secret, to hand to the person once (never stored in the clear)."""

    secret: str
    uri: str


@dataclass(frozen=True, slots=True)
class Offboarded:
    user: UserRecord
    families_revoked: int
    consents_forgotten: int


class UserOperations:
    def __init__(self, server: AuthorizationServer) -> None:
        self.server = server
        self.store = server.store.users

    # -- reading ---------------------------------------------------------------------------

    async def all(self) -> list[UserRecord]:
        return await self.store.all()

    async def by_username(self, username: str) -> UserRecord:
        user = await self.store.by_username(username)
        if user is None:
            raise NotFound(f"no user {username}")
        return user

    async def get(self, user_id: str) -> UserRecord:
        user = await self.store.get(user_id)
        if user is None:
            raise NotFound(f"no user {user_id}")
        return user

    async def resolve(self, id_or_username: str) -> UserRecord | None:
        return await self.store.get(id_or_username) or await self.store.by_username(id_or_username)

    async def page(
        self,
        cursor: str | None = None,
        *,
        limit: int = 50,
        search: str | None = None,
        operators_only: bool = False,
    ) -> Page[UserSummary]:
        position = _decode(cursor)
        after = position[0] if position and isinstance(position[0], str) else None
        rows = await self.store.page(
            after=after, limit=limit + 1, search=search or None, operators_only=operators_only
        )
        more, rows = len(rows) > limit, rows[:limit]
        grants = await self.server.store.grants.live_families(subjects=[u.id for u in rows])
        items = [UserSummary(u, grants.get(u.id, 0)) for u in rows]
        return Page(items, encode_cursor(rows[-1].username) if more else None)

    async def count(self) -> int:
        return await self.store.count()

    async def consents(self, user: UserRecord) -> list[ConsentRecord]:
        return await self.store.consents_of(user.id)

    # -- changes ---------------------------------------------------------------------------

    async def create(
        self,
        username: str,
        actor: Actor,
        *,
        email: str | None = None,
        display_name: str | None = None,
        password_hash: str | None = None,
        totp: bool = False,
    ) -> tuple[UserRecord, Enrolment | None]:
        if await self.store.by_username(username) is not None:
            raise Conflict(f"user {username} already exists")
        record = UserRecord(
            id=new_id(),
            username=username,
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            created_at=self.server.clock(),
        )
        enrolment = None
        if totp:
            encrypted, enrolment = self._enrol(record)
            record = dataclasses.replace(record, totp_secret_enc=encrypted)
        await self.store.create(record)
        self._audit("user.created", record, actor)
        return record, enrolment

    async def disable(self, user: UserRecord, actor: Actor) -> None:
        """Stop sign-in; tokens already issued keep working (see :meth:`offboard`)."""
        await self.store.set_disabled(user.id, self.server.clock())
        self._audit("user.disabled", user, actor)

    async def enable(self, user: UserRecord, actor: Actor) -> None:
        await self.store.set_disabled(user.id, None)
        self._audit("user.enabled", user, actor)

    async def set_password(self, user: UserRecord, password_hash: str, actor: Actor) -> None:
        await self.store.set_password_hash(user.id, password_hash)
        self._audit("user.password_set", user, actor)

    async def reset_totp(self, user: UserRecord, actor: Actor, *, enrol: bool) -> Enrolment | None:
        """Remove the second factor (a lost phone), or replace it with a new secret."""
        encrypted, enrolment = self._enrol(user) if enrol else (None, None)
        await self.store.set_totp_secret(user.id, encrypted)
        self._audit("user.totp_reset", user, actor, enrolled=enrol)
        return enrolment

    async def offboard(self, user: UserRecord, actor: Actor) -> Offboarded:
        """Someone leaves: disable the account, revoke every grant and access token (at
        every guard, through the revocations feed) and forget every consent, at once."""
        server = self.server
        await self.store.set_disabled(user.id, user.disabled_at or server.clock())
        families = [
            f
            for f in await server.store.grants.families_of(subject=user.id)
            if f.revoked_at is None
        ]
        await server.revoke_subject(user.id, reason="offboarded", actor=str(actor))
        forgotten = await self.store.forget_consents(user.id)
        self._audit(
            "user.offboarded",
            user,
            actor,
            families_revoked=len(families),
            consents_forgotten=forgotten,
        )
        return Offboarded(user, len(families), forgotten)

    async def withdraw_consent(
        self, user: UserRecord, client_id: str, resource: str, actor: Actor
    ) -> int:
        """Forget what the user approved for a client and resource, and end what the
        client holds for it (every such grant), as the person can on /account. The
        number of grants revoked; NotFound when there was no such consent."""
        server = self.server
        if not await self.store.revoke_consent(user.id, client_id, resource):
            raise NotFound(f"no consent of {user.username} for {client_id}")
        now = server.clock()
        grants = server.store.grants
        revocations = [
            await grants.revoke_family(
                family.id, now, "consent_revoked", now + server.revocation_ttl
            )
            for family in await grants.families_of(subject=user.id, client_id=client_id)
            if family.resource == resource and family.revoked_at is None
        ]
        await server.publish(revocations)
        server.audit.emit(
            AuditEvent(
                "consent.revoked",
                "ok",
                subject=user.id,
                client_id=client_id,
                audience=resource,
                actor=str(actor),
                detail={"families": len(revocations)},
            )
        )
        return len(revocations)

    async def grant_operator(self, user: UserRecord, actor: Actor) -> UserRecord:
        """Let the user sign in to the operator console. Operators sign in with a password
        and TOTP, so both must be set up first."""
        if user.password_hash is None or user.totp_secret_enc is None:
            raise Refused(
                f"{user.username} needs a password and a TOTP second factor first "
                f"(mcpward users set-password / reset-totp --enroll {user.username})"
            )
        if user.disabled_at is not None:
            raise Refused(f"{user.username} is disabled")
        since = user.operator_since or self.server.clock()
        await self.store.set_operator(user.id, since)
        self._audit("operator.granted", user, actor)
        return dataclasses.replace(user, operator_since=since)

    async def revoke_operator(self, user: UserRecord, actor: Actor) -> None:
        await self.store.set_operator(user.id, None)
        self._audit("operator.revoked", user, actor)

    # -- helpers ---------------------------------------------------------------------------

    def _enrol(self, user: UserRecord) -> tuple[bytes, Enrolment]:
        from mcpward.server._crypto import DataKey
        from mcpward.server.pages import _totp

        settings = self.server.settings
        secret = _totp.new_secret()
        key = DataKey(settings.resolved_data_key())
        uri = _totp.provisioning_uri(secret, user.username, settings.pages.product_name)
        return _totp.encrypt_secret(key, user.id, secret), Enrolment(secret, uri)

    def _audit(
        self,
        event: EventName,
        user: UserRecord,
        actor: Actor,
        **detail: str | int | float | bool | None,
    ) -> None:
        self.server.audit.emit(
            AuditEvent(event, "ok", subject=user.id, actor=str(actor), detail=detail)
        )
