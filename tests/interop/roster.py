"""The clients of the matrix, each started once and kept for all its cells, so the cells of
one client run as one user's session does: sign in, list, call, step up, come back later."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from playwright.async_api import Browser

from tests.interop.base import InteropClient, MachineClient
from tests.interop.browser import Person
from tests.interop.fastmcp_client import FastMCPHuman, FastMCPMachine
from tests.interop.inspector import InspectorCli
from tests.interop.inspector_web import InspectorWeb
from tests.interop.mcp_remote import McpRemote, McpRemoteMachine
from tests.interop.server import DemoServer
from tests.interop.ts_sdk import TsSdkClient, TsSdkMachine

Factory = Callable[[DemoServer, Person, Path], InteropClient]

HUMAN: dict[str, Factory] = {
    "ts-sdk-1": lambda s, p, w: TsSdkClient("sdk1", "ts-sdk-1", s, p, w),
    "ts-sdk-2": lambda s, p, w: TsSdkClient("sdk2", "ts-sdk-2", s, p, w),
    "mcp-remote": McpRemote,
    "inspector-cli": InspectorCli,
    "inspector-web": InspectorWeb,
    "fastmcp": FastMCPHuman,
}
MACHINE: dict[str, MachineClient] = {
    "ts-sdk-1": TsSdkMachine("sdk1"),
    "ts-sdk-2": TsSdkMachine("sdk2"),
    "mcp-remote": McpRemoteMachine(),
    "fastmcp": FastMCPMachine(),
}


class Roster:
    def __init__(self, server: DemoServer, browser: Browser, workdir: Path) -> None:
        self.server = server
        self.browser = browser
        self.workdir = workdir
        self._clients: dict[str, InteropClient] = {}
        self._failed: dict[str, str] = {}

    def person(self, name: str) -> Person:
        return Person(
            self.browser,
            issuer=self.server.base,
            username=self.server.demo["username"],
            password=self.server.demo["password"],
            label=name,
        )

    async def sign_in(self, name: str) -> InteropClient:
        """Start `name` and sign in, consenting to `orders.read` only."""
        assert name not in self._clients and name not in self._failed
        client = HUMAN[name](self.server, self.person(name), self.workdir / name)
        self._clients[name] = client
        try:
            await client.sign_in()
            await client.person.settled()
        except BaseException as error:
            self._failed[name] = repr(error)
            raise
        return client

    def signed_in(self, name: str) -> InteropClient:
        """The client signed in by its `sign_in` cell; fails clearly when that cell did."""
        assert name not in self._failed, f"{name} could not sign in: {self._failed[name]}"
        assert name in self._clients, f"{name} has not signed in (run its sign_in cell first)"
        return self._clients[name]

    def machine_dir(self, name: str) -> Path:
        path = self.workdir / f"{name}-machine"
        path.mkdir(parents=True, exist_ok=True)
        return path

    async def aclose(self) -> None:
        errors: list[BaseException] = []
        for client in self._clients.values():
            for close in (client.aclose, client.person.aclose):
                try:
                    await close()
                except Exception as error:  # close the others all the same
                    errors.append(error)
        if errors:
            raise errors[0]
