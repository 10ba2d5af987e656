"""The operator CLI as a subprocess on one data directory and configuration, a running
`mcpward serve --demo`, and what the server accepts, for the secret-store tests."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import subprocess
import sys
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote_plus

import httpx

from mcpward.compose.server import open_server as open_authorization_server
from mcpward.config import Settings
from mcpward.server import AuthorizationServer
from tests.services import free_port

MCPWARD = str(Path(sys.executable).with_name("mcpward"))  # the venv's console script


# -- the operator CLI --------------------------------------------------------------------


@dataclass
class Cli:
    """``mcpward`` as an operator runs it, on one data directory and configuration."""

    env: dict[str, str]

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MCPWARD, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def json(self, *args: str, extra_env: dict[str, str] | None = None) -> Any:
        done = self.run(*args, "--json", extra_env=extra_env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def cli_for(tmp_path: Path, sink: str, store_env: dict[str, str]) -> Cli:
    """A configuration file naming the sink, a data directory, an audit file."""
    config = tmp_path / "mcpward.toml"
    config.write_text(f'secret_sink = "{sink}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "MCPWARD_"))}
    env.update(
        MCPWARD_CONFIG=str(config),
        MCPWARD_DATA_DIR=str(tmp_path / "data"),
        MCPWARD_AUDIT_SINK=f"file:{tmp_path / 'audit.jsonl'}",
        **store_env,
    )
    return Cli(env)


# -- a running authorization server --------------------------------------------------------


async def arun(cli: Cli, *args: str) -> Any:
    """``cli.json`` without blocking the event loop (an agent keeps running in it)."""
    proc = await asyncio.create_subprocess_exec(
        MCPWARD, *args, "--json", env=cli.env, stdout=PIPE, stderr=PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@asynccontextmanager
async def serving(cli: Cli, **env: str) -> AsyncIterator[str]:
    """``mcpward serve --demo`` on the CLI's data directory; yields the issuer. The demo
    registers the resource ISSUER/mcp (scopes orders.read ...) behind the guard."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        MCPWARD,
        "serve",
        "--demo",
        "--port",
        str(port),
        env={**cli.env, **env},
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, "mcpward serve exited"
                assert time.monotonic() < deadline, "mcpward serve does not answer"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{issuer}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        await proc.wait()


async def token_status(issuer: str, client_id: str, secret: str) -> int:
    """What the token endpoint answers a client_credentials request with this secret."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{issuer}/token",
            data={"grant_type": "client_credentials", "resource": f"{issuer}/mcp"},
            auth=(client_id, secret),
        )
    return answer.status_code


async def refused(issuer: str, client_id: str, secret: str) -> None:
    """Wait until the server refuses ``secret``: it caches a client for ``cache_ttl``
    (2 s), so a rotation by another process reaches it within that."""
    deadline = time.monotonic() + 30
    while await token_status(issuer, client_id, secret) != 401:
        assert time.monotonic() < deadline, "the old secret is still accepted"
        await asyncio.sleep(0.1)


def presented_secret(request: httpx.Request) -> str:
    """The client secret in a token request (client_secret_basic or _post)."""
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        _, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return unquote_plus(secret)
    return parse_qs(request.content.decode()).get("client_secret", [""])[0]


@dataclass
class TokenRequests:
    """httpx event hooks on an agent's HTTP client: what it sent to the token endpoint
    and what came back, and an action run just before the next request leaves, while
    the agent already holds the secret it read (a rotation racing with it)."""

    seen: list[tuple[str, int]] = field(default_factory=list)
    before_next: Callable[[], Awaitable[None]] | None = None
    raced_at: int | None = None  # where in `seen` the answer to the raced request is
    _raced: httpx.Request | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self._request], "response": [self._response]}

    async def _request(self, request: httpx.Request) -> None:
        if request.url.path == "/token" and self.before_next is not None:
            action, self.before_next = self.before_next, None
            self._raced = request
            await action()

    async def _response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/token":
            if response.request is self._raced:
                self.raced_at = len(self.seen)
            self.seen.append((presented_secret(response.request), response.status_code))
            self._changed.set()

    async def wait_for(self, condition: Callable[[list[tuple[str, int]]], bool]) -> None:
        deadline = time.monotonic() + 90
        while not condition(self.seen):
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())


# -- what mcpward itself accepts -------------------------------------------------------------


async def open_server(tmp_path: Path) -> AuthorizationServer:
    """The CLI's database and data key (``cli_for``), opened in this process."""
    return await open_authorization_server(
        Settings(issuer="http://127.0.0.1:8400", data_dir=tmp_path / "data")
    )


async def valid(server: AuthorizationServer, client_id: str, secret: str | None) -> bool:
    server.clients.invalidate(client_id)  # the CLI changed the database behind our cache
    return secret is not None and await server.clients.check_secret(client_id, secret)
