"""The TypeScript SDK clients (1.x `@modelcontextprotocol/sdk`, 2.x
`@modelcontextprotocol/client`), each run as the small app in node/driver.mjs."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from pathlib import Path
from typing import Any

from tests.interop.base import NODE, CallResult, InteropClient, MachineClient, node_env
from tests.interop.browser import Person
from tests.interop.server import DemoServer

DRIVER = Path(__file__).resolve().parent / "node" / "driver.mjs"
# Generous: a step-up includes a browser sign-in.
ANSWER_TIMEOUT = 90


class Driver:
    """driver.mjs as a child process: commands on its stdin, answers and events on stdout."""

    def __init__(self, proc: asyncio.subprocess.Process, person: Person | None) -> None:
        self.proc = proc
        self.person = person
        self.events: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def start(
        cls,
        flavour: str,
        url: str,
        workdir: Path,
        person: Person | None,
        env: dict[str, str] | None = None,
        machine: bool = False,
    ) -> Driver:
        proc = await asyncio.create_subprocess_exec(
            str(NODE),
            str(DRIVER),
            flavour,
            url,
            *(["client-credentials"] if machine else []),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=(workdir / "stderr.log").open("w"),
            env=node_env(workdir / "home", **(env or {})),
            cwd=DRIVER.parent,
        )
        return cls(proc, person)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            message: dict[str, Any] = json.loads(raw)
            if "event" in message:
                self.events.append(message)
                if message["event"] == "authorize":
                    assert self.person is not None, "a machine client asked for a browser"
                    self.person.open(message["url"])
            elif (future := self._waiting.pop(message["id"], None)) is not None:
                future.set_result(message)
        for future in self._waiting.values():
            future.set_exception(AssertionError("the client process exited"))

    async def request(self, op: str, **fields: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        ident = next(self._ids)
        future = asyncio.get_running_loop().create_future()
        self._waiting[ident] = future
        self.proc.stdin.write(json.dumps({"id": ident, "op": op, **fields}).encode() + b"\n")
        await self.proc.stdin.drain()
        return await asyncio.wait_for(future, ANSWER_TIMEOUT)

    async def must(self, op: str, **fields: Any) -> Any:
        answer = await self.request(op, **fields)
        assert answer["ok"], f"{op} failed: {answer['error']}"
        return answer["result"]

    async def aclose(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(TimeoutError, AssertionError, ConnectionError):
                await asyncio.wait_for(self.request("close"), 10)
            if self.proc.returncode is None:
                self.proc.kill()
            await self.proc.wait()
        await self._reader


def _call_result(answer: dict[str, Any]) -> CallResult:
    if not answer["ok"]:
        error = answer["error"]
        return CallResult(False, f"{error['name']}: {error['message']}")
    result = answer["result"]
    text = " ".join(c.get("text", "") for c in result.get("content", []))
    return CallResult(not result.get("isError", False), text)


class TsSdkClient(InteropClient):
    def __init__(
        self, flavour: str, label: str, server: DemoServer, person: Person, workdir: Path
    ) -> None:
        super().__init__(server, person, workdir)
        self.flavour = flavour
        self.label = label
        self.driver: Driver | None = None

    async def sign_in(self) -> None:
        self.driver = await Driver.start(
            self.flavour, self.server.resource, self.workdir, self.person
        )
        await self.driver.must("connect")

    async def list_tools(self) -> list[dict[str, Any]]:
        assert self.driver is not None
        tools: list[dict[str, Any]] = await self.driver.must("list_tools")
        return tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        assert self.driver is not None
        return _call_result(await self.driver.request("call", name=tool, arguments=arguments))

    async def aclose(self) -> None:
        if self.driver is not None:
            await self.driver.aclose()


class TsSdkMachine(MachineClient):
    def __init__(self, flavour: str) -> None:
        self.flavour = flavour

    async def call_once(self, server: DemoServer, workdir: Path) -> CallResult:
        env = {
            "MCP_CLIENT_ID": server.m2m_client_id,
            "MCP_CLIENT_SECRET": server.m2m_secret,
            "MCP_EXPECTED_ISSUER": server.base,
        }
        driver = await Driver.start(
            self.flavour, server.resource, workdir, None, env=env, machine=True
        )
        try:
            connected = await driver.request("connect")
            if not connected["ok"]:
                return _call_result(connected)
            return _call_result(
                await driver.request("call", name="search_orders", arguments={"query": "acme"})
            )
        finally:
            await driver.aclose()
