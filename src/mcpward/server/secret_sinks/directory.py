"""A 0600 file per client in a directory a deployment mounts. A new secret is staged as a
hidden ``.NAME.pending`` file beside the current one and promoted by renaming it over it,
so a reader never sees half a secret nor one mcpward has not committed."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from mcpward.server.secret_sinks._base import Staged, safe_name


class DirectorySink:
    readback = True

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    async def current(self, client_id: str) -> str | None:
        return await asyncio.to_thread(_read, self.path(client_id))

    def path(self, client_id: str) -> Path:
        return self.directory / safe_name(client_id)

    def _pending(self, client_id: str) -> Path:
        return self.directory / f".{safe_name(client_id)}.pending"

    async def stage(self, client_id: str, secret: str, expires_at: float) -> Staged:
        pending = self._pending(client_id)
        await asyncio.to_thread(self._write, pending, secret)
        return Staged(client_id, secret, expires_at, str(pending))

    async def promote(self, staged: Staged) -> None:
        await asyncio.to_thread(os.replace, staged.version, self.path(staged.client_id))

    async def staged(self, client_id: str) -> Staged | None:
        pending = self._pending(client_id)
        secret = await asyncio.to_thread(_read, pending)
        return Staged(client_id, secret, 0.0, str(pending)) if secret else None

    async def discard(self, staged: Staged) -> None:
        await asyncio.to_thread(Path(staged.version).unlink, missing_ok=True)

    def _write(self, target: Path, secret: str) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Write then rename, so a reader never sees half a secret.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secret + "\n")
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
