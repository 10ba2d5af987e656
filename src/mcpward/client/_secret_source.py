"""Where an agent's credential comes from: the environment, a file, or the OS keychain.

A source is read when a token is requested and read again after the token endpoint answers
`invalid_client`, so a secret rotated by the authorization server (and rewritten to the file
or keychain by the deployment) is picked up without restarting the agent.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class SecretSource(Protocol):
    def read(self) -> str:
        """The current value. Raises `LookupError` when it is not there."""
        ...


async def read_secret(source: SecretSource) -> str:
    """`source.read()` on a worker thread: a keychain may wait for the user to unlock it, and
    a secret file may sit on a slow mount; neither may stall the event loop."""
    return await asyncio.to_thread(source.read)


@dataclass(frozen=True)
class EnvSecret:
    name: str

    def read(self) -> str:
        value = os.environ.get(self.name)
        if not value:
            raise LookupError(f"environment variable {self.name} is not set")
        return value


@dataclass(frozen=True)
class FileSecret:
    """A file holding the secret (or a PEM private key); surrounding whitespace is dropped."""

    path: Path

    def read(self) -> str:
        try:
            value = Path(self.path).read_text().strip()
        except FileNotFoundError:
            raise LookupError(f"secret file {self.path} does not exist") from None
        if not value:
            raise LookupError(f"secret file {self.path} is empty")
        return value


@dataclass(frozen=True)
class KeyringSecret:
    service: str
    username: str

    def read(self) -> str:
        import keyring

        value = keyring.get_password(self.service, self.username)
        if not value:
            raise LookupError(
                f"no keychain item for service {self.service!r}, user {self.username!r}"
            )
        return value


@dataclass(frozen=True, repr=False)
class StaticSecret:
    """A value already in memory (tests, secrets managers the caller reads itself)."""

    value: str

    def read(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "StaticSecret(***)"
