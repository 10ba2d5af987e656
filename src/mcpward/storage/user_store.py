"""What the authorization server and the console need from the store of people: its
Protocol, beside the others in :mod:`.contracts` (which re-exports it)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Protocol

from mcpward.storage.records import ConsentRecord, UserRecord


class UserStore(Protocol):
    """People who sign in, and what they consented to."""

    async def get(self, user_id: str) -> UserRecord | None: ...

    async def by_username(self, username: str) -> UserRecord | None: ...

    async def get_many(self, user_ids: Collection[str]) -> dict[str, UserRecord]:
        """The stored users among ``user_ids``, in one lookup (id -> record)."""
        ...

    async def by_email(self, email: str) -> list[UserRecord]: ...

    async def by_upstream(self, issuer: str, subject: str) -> UserRecord | None: ...

    async def all(self) -> list[UserRecord]: ...

    async def page(
        self,
        *,
        after: str | None = None,
        limit: int = 50,
        search: str | None = None,
        operators_only: bool = False,
    ) -> list[UserRecord]:
        """Users by username, ``limit`` of them after the username ``after``."""
        ...

    async def count(self) -> int: ...

    async def set_operator(self, user_id: str, since: float | None) -> bool:
        """Grant (``since``) or take away (``None``) the operator role; False when there
        is no such user."""
        ...

    async def create(self, record: UserRecord) -> None: ...

    async def set_disabled(self, user_id: str, at: float | None) -> bool: ...

    async def set_password_hash(self, user_id: str, password_hash: str) -> bool: ...

    async def set_totp_secret(self, user_id: str, encrypted: bytes | None) -> bool: ...

    async def link_upstream(self, user_id: str, issuer: str, subject: str) -> bool:
        """Link an upstream identity; False when it is linked to someone else already."""
        ...

    async def get_consent(
        self, user_id: str, client_id: str, resource: str
    ) -> ConsentRecord | None: ...

    async def put_consent(self, record: ConsentRecord) -> None:
        """Create or replace the consent of (user, client, resource)."""
        ...

    async def consents_of(self, user_id: str) -> list[ConsentRecord]: ...

    async def revoke_consent(self, user_id: str, client_id: str, resource: str) -> bool: ...

    async def forget_consents(self, user_id: str) -> int: ...
