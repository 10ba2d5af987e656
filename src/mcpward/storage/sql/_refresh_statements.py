"""The refresh-token statements of ``grants.py``: the rotation's four, built once at
import with their values bound at execute time, and the two shapes they share with the
rarer paths.

Built per call, constructing them and their cache keys was a large part of a rotation's
CPU (py-spy over ``bench/sizing.py``); built once, one core went from 422 to 643 rotations
a second. Parameter names are not column names, which SQLAlchemy reserves in a SET.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, Update, bindparam, select, update

from mcpward.storage.schema import refresh_tokens, token_families


def erase_successor(where: ColumnElement[bool]) -> Update:
    """Forget a stored successor (a rotation moved on, its window closed, a revocation)."""
    return (
        update(refresh_tokens)
        .where(where, refresh_tokens.c.successor_enc.is_not(None))
        .values(successor_enc=None, successor_until=None)
    )


def live_family(which: ColumnElement[bool]) -> Select[tuple[str]]:
    """The id of the family matching ``which``, while it is not revoked."""
    return select(token_families.c.id).where(which, token_families.c.revoked_at.is_(None))


GET_REFRESH = (
    select(refresh_tokens, token_families)
    .join(token_families, token_families.c.id == refresh_tokens.c.family_id)
    .where(refresh_tokens.c.token_hash == bindparam("b_hash"))
)
SPEND_REFRESH = (
    update(refresh_tokens)
    .where(
        refresh_tokens.c.token_hash == bindparam("b_hash"),
        refresh_tokens.c.used_at.is_(None),
        refresh_tokens.c.family_id.in_(live_family(token_families.c.id == bindparam("b_family"))),
    )
    .values(
        used_at=bindparam("b_now", type_=refresh_tokens.c.used_at.type),
        successor_enc=bindparam("b_enc", type_=refresh_tokens.c.successor_enc.type),
        successor_until=bindparam("b_until", type_=refresh_tokens.c.successor_until.type),
    )
    .returning(refresh_tokens.c.parent_hash)
)
INSERT_REFRESH = refresh_tokens.insert()
ERASE_PARENT_SUCCESSOR = erase_successor(refresh_tokens.c.token_hash == bindparam("b_parent"))
