"""The verified caller, as tool code and the guard's checks see it."""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling: built only from a token that passed verification."""

    subject: str
    client_id: str
    scopes: frozenset[str]
    issuer: str
    audience: tuple[str, ...]
    expires_at: float
    issued_at: float | None = None
    jti: str | None = None
    # RFC 9068 has no family claim; our authorization server puts the refresh-token
    # family id in ``sid``.
    family: str | None = None
    roles: frozenset[str] = frozenset()
    # RFC 9449 §6: the thumbprint of the DPoP key the token is bound to (``cnf.jkt``);
    # such a token is accepted only with a proof signed by that key.
    jkt: str | None = None
    claims: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def has_scopes(self, required: frozenset[str] | set[str]) -> bool:
        return required <= self.scopes

    @property
    def actors(self) -> tuple[str, ...]:
        """Who acts for the subject, outermost first: the ``act`` chain of a token from a
        token exchange (RFC 8693 §4.1); empty for a token the subject's client holds."""
        chain: list[str] = []
        act = self.claims.get("act")
        while isinstance(act, Mapping) and len(chain) < 8:
            sub = act.get("sub")
            chain.append(sub if isinstance(sub, str) else "?")
            act = act.get("act")
        return tuple(chain)


_current: contextvars.ContextVar[Identity | None] = contextvars.ContextVar(
    "mcpward_identity", default=None
)


def current_identity() -> Identity | None:
    """The identity of the request being served, for tool code (``None`` outside one)."""
    return _current.get()


def require_identity() -> Identity:
    identity = _current.get()
    if identity is None:
        raise LookupError("no verified identity: is this tool served behind the mcpward guard?")
    return identity
