"""Where automated rotation hands a new client secret: a 0600 file per client in a
directory a deployment mounts, or a command that receives the secret on stdin (to push it
to Vault, AWS Secrets Manager, a Kubernetes secret ...). The secret is never an argument,
an environment variable or a log line."""

from __future__ import annotations

import asyncio
import os
import shlex
import tempfile
from pathlib import Path
from typing import Protocol

from mcpward.server.clients import NewSecret


class SecretSink(Protocol):
    async def deliver(self, secret: NewSecret) -> None: ...


def _file_name(client_id: str) -> str:
    # client ids may be URLs; keep a readable, safe file name.
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in client_id)
    return safe.strip(".") or "client"


class DirectorySink:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def deliver(self, secret: NewSecret) -> None:
        await asyncio.to_thread(self._write, secret)

    def _write(self, secret: NewSecret) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.directory / _file_name(secret.client_id)
        # Write then rename, so a reader never sees half a secret.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret.secret + "\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


class CommandSink:
    def __init__(self, command: str) -> None:
        self.argv = shlex.split(command)

    async def deliver(self, secret: NewSecret) -> None:
        env = {
            **os.environ,
            "MCPWARD_CLIENT_ID": secret.client_id,
            "MCPWARD_SECRET_EXPIRES_AT": str(int(secret.expires_at)),
        }
        proc = await asyncio.create_subprocess_exec(
            *self.argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        await proc.communicate(secret.secret.encode() + b"\n")
        if proc.returncode != 0:
            raise RuntimeError(
                f"secret sink command exited with {proc.returncode} for {secret.client_id}"
            )


def sink_from_spec(spec: str) -> SecretSink:
    if spec.startswith("dir:"):
        return DirectorySink(spec.removeprefix("dir:"))
    if spec.startswith("command:"):
        return CommandSink(spec.removeprefix("command:"))
    raise ValueError("secret_sink must be dir:PATH or command:COMMAND")
