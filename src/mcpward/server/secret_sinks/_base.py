"""What every secret sink offers automated rotation: two phases around mcpward's commit.

``stage`` writes the new secret where the store keeps it but readers do not get it yet;
mcpward then commits the rotation; ``promote`` makes the new secret the one readers get.
A rotation interrupted between the two leaves a staged secret that ``staged`` finds, and
the next ``rotate-due`` promotes it if it is mcpward's newest secret, or discards it (see
server/secret_rotation.py).
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Protocol

_NAME_CHARS = set(string.ascii_letters + string.digits + "-_.")


@dataclass(frozen=True)
class Staged:
    """A new secret in the store, not yet the one readers get."""

    client_id: str
    secret: str = field(repr=False)
    expires_at: float
    version: str  # the store's handle on it: a version id or number, a file path


class SecretSink(Protocol):
    # Whether `current` can tell what readers get: rotate-due then checks that the store
    # holds mcpward's newest secret, and rotates again if it does not.
    readback: bool

    async def current(self, client_id: str) -> str | None:
        """The secret readers get now; None if the store has none for this client."""
        ...

    async def stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        """Write the new secret without handing it to readers yet."""
        ...

    async def promote(self, staged: Staged) -> None:
        """Hand the staged secret to readers; the previous one stays readable as the
        store's previous version where the store keeps versions."""
        ...

    async def staged(self, client_id: str) -> Staged | None:
        """A staged secret an interrupted rotation left behind, if any."""
        ...

    async def discard(self, staged: Staged) -> None:
        """Drop a staged secret mcpward never committed."""
        ...


def safe_name(client_id: str) -> str:
    """A client id as one readable path segment (client ids may be URLs)."""
    safe = "".join(c if c in _NAME_CHARS else "_" for c in client_id)
    return safe.strip(".") or "client"


def name_for(template: str, client_id: str) -> str:
    """``{client_id}`` in the template, or the client id appended as the last segment."""
    if "{client_id}" not in template:
        template = template.rstrip("/") + "/{client_id}"
    return template.replace("{client_id}", safe_name(client_id))
