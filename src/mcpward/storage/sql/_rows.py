"""Row <-> record conversion shared by the SQL modules."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar

from sqlalchemy import Row

R = TypeVar("R")

_TUPLE_FIELDS = {"grant_types", "redirect_uris"}


def to_record(cls: type[R], row: Row[Any]) -> R:
    values = dict(row._mapping)
    for name in _TUPLE_FIELDS & values.keys():
        values[name] = tuple(values[name] or ())
    return cls(**values)


def to_values(record: object) -> dict[str, Any]:
    values = {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}  # type: ignore[arg-type]
    for name in _TUPLE_FIELDS & values.keys():
        values[name] = list(values[name])
    return values


def like_pattern(text: str) -> str:
    """A LIKE pattern matching ``text`` anywhere, its wildcards taken literally (escape
    character: backslash)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
