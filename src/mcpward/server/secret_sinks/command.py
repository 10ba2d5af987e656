"""A command that receives the new secret on stdin (and ``MCPWARD_CLIENT_ID``,
``MCPWARD_SECRET_EXPIRES_AT`` in its environment), to push it to a store mcpward does not
know. The secret is never an argument, an environment variable or a log line.

A command has one phase: it runs at ``stage``, before mcpward commits the rotation, so a
failing command leaves nothing committed and the client still due. The command should add
a version rather than destroy the previous value, which stays valid for the overlap.
"""

from __future__ import annotations

import asyncio
import os
import shlex

from mcpward._secret_stores import SecretStoreError
from mcpward.server.secret_sinks._base import Staged


class CommandSink:
    readback = False  # what the command did with the secret is its own business

    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)

    async def current(self, client_id: str) -> str | None:
        return None

    async def stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        env = {
            **os.environ,
            "MCPWARD_CLIENT_ID": client_id,
            "MCPWARD_SECRET_EXPIRES_AT": str(int(expires_at)),
        }
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        await proc.communicate(secret.encode() + b"\n")
        if proc.returncode != 0:
            raise SecretStoreError(
                f"secret sink command exited with {proc.returncode} for {client_id}"
            )
        return Staged(client_id, secret, expires_at, "")

    async def promote(self, staged: Staged) -> None:
        """Nothing left to do: the command delivered at ``stage``."""

    async def staged(self, client_id: str) -> Staged | None:
        return None

    async def discard(self, staged: Staged) -> None:
        """A command cannot be undone; the secret it pushed was never committed."""
