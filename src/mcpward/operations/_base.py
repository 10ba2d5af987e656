"""What every operation shares: who acts, what can go wrong, and lists a page at a time."""

from __future__ import annotations

import base64
import getpass
import json
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

from mcpward.errors import MCPWardError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Actor:
    """The operator behind an action, written into its audit event as ``via:name``.

    ``via`` is where the action came from; ``name`` the console operator's username or the
    OS user running the CLI. (A console operator's address is in their sign-in event.)"""

    via: Literal["cli", "console"]
    name: str
    user_id: str | None = None

    def __str__(self) -> str:
        return f"{self.via}:{self.name}"

    @classmethod
    def cli(cls) -> Actor:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no such user in the passwd database (containers)
            name = "unknown"
        return cls("cli", name)


class OperationError(MCPWardError):
    """An operation refused; the message is for the operator (no secret in it)."""


class NotFound(OperationError):
    pass


class Conflict(OperationError):
    pass


class Refused(OperationError):
    pass


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a list, and the cursor of the next (None: this is the last)."""

    items: list[T]
    next: str | None = None


def encode_cursor(*position: float | str) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(position)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> list[float | str] | None:
    """The position a cursor names; None for no cursor or one that is not ours (a
    tampered link shows the first page, it does not fail)."""
    if not cursor or len(cursor) > 4096:
        return None
    try:
        value = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError:
        return None
    if not isinstance(value, list) or not all(isinstance(v, int | float | str) for v in value):
        return None
    return value


def time_cursor(cursor: str | None) -> tuple[float, str] | None:
    """A (created_at, id) cursor, as the lists ordered newest first use."""
    position = decode_cursor(cursor)
    if position is None or len(position) != 2:
        return None
    at, key = position
    if not isinstance(at, int | float) or isinstance(at, bool) or not isinstance(key, str):
        return None
    return float(at), key
