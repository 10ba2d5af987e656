"""mcp-remote, spawned as Claude Desktop spawns it (`npx mcp-remote <url>`: the package's
own bin, no other argument) and spoken to over its stdio by the Python `mcp` SDK's stdio
client, as a desktop host would. It opens the browser through the `open` package, which on
Linux runs xdg-open, which honours $BROWSER: that is a small script here that hands the URL
to the test's browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from tests.interop.base import (
    NODE,
    NODE_MODULES,
    CallResult,
    InteropClient,
    MachineClient,
    Session,
    node_env,
)
from tests.interop.browser import Opened, Person
from tests.interop.server import DemoServer

PROXY = NODE_MODULES / "mcp-remote" / "dist" / "proxy.js"


def _stdio(args: list[str], workdir: Path, env: dict[str, str]) -> Client:
    params = StdioServerParameters(
        command=str(NODE),
        args=[str(PROXY), *args],
        env=node_env(workdir / "home", **env),
        cwd=str(workdir),
    )
    errlog = (workdir / "stderr.log").open("a")
    return Client(stdio_client(params, errlog=errlog))


async def _call(client: Client, tool: str, arguments: dict[str, Any]) -> CallResult:
    try:
        result = await client.call_tool(tool, arguments)
    except Exception as error:
        return CallResult(False, f"{type(error).__name__}: {error}")
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return CallResult(not result.is_error, text)


class McpRemote(InteropClient):
    label = "mcp-remote"

    def __init__(self, server: DemoServer, person: Person, workdir: Path) -> None:
        super().__init__(server, person, workdir)
        self.opened = Opened(workdir, person)
        env = {**self.opened.env(), "MCP_REMOTE_CONFIG_DIR": str(workdir / "mcp-auth")}
        self.session = Session(lambda: _stdio([server.resource], workdir, env))

    async def sign_in(self) -> None:
        await self.session.start()

    async def list_tools(self) -> list[dict[str, Any]]:
        async def work(client: Client) -> list[dict[str, Any]]:
            listed = await client.list_tools()
            return [t.model_dump(by_alias=True, mode="json") for t in listed.tools]

        return await self.session.run(work)

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        return await self.session.run(lambda client: _call(client, tool, arguments))

    async def aclose(self) -> None:
        await self.session.aclose()
        self.opened.aclose()


class McpRemoteMachine(MachineClient):
    """`--client-credentials` with the secret from the environment, as its README shows."""

    async def call_once(self, server: DemoServer, workdir: Path) -> CallResult:
        info = '{"client_id": "' + server.m2m_client_id + '", "client_secret": "${MCP_SECRET}"}'
        args = [server.resource, "--client-credentials", "--static-oauth-client-info", info]
        env = {"MCP_SECRET": server.m2m_secret, "MCP_REMOTE_CONFIG_DIR": str(workdir / "auth")}
        try:
            async with _stdio(args, workdir, env) as client:
                return await _call(client, "search_orders", {"query": "acme"})
        except Exception:
            # mcp-remote exits when it cannot sign in; what it said is in its stderr.
            said = (workdir / "stderr.log").read_text().splitlines()
            return CallResult(False, next((x for x in said if "Fatal error" in x), said[-1]))
