"""FastMCP's Python client with its OAuth helper (dynamic registration, a loopback callback
server of its own, tokens in a file-tree store as an app would keep them), and its
`ClientCredentialsOAuthProvider`. FastMCP opens the browser with the standard library's
`webbrowser`; the browser registered here, through webbrowser's public `register`, is the
test's."""

from __future__ import annotations

import webbrowser
from pathlib import Path
from typing import Any

from fastmcp import Client
from fastmcp.client.auth import ClientCredentialsOAuthProvider, OAuth
from key_value.aio.stores.filetree import (
    FileTreeStore,
    FileTreeV1CollectionSanitizationStrategy,
    FileTreeV1KeySanitizationStrategy,
)

from tests.interop.base import CallResult, InteropClient, MachineClient, Session
from tests.interop.browser import Person
from tests.interop.server import DemoServer


def _token_store(directory: Path) -> FileTreeStore:
    """Tokens on disk, as an app keeps them across restarts; the store's sanitizers make the
    server URL (FastMCP's collection name) a valid path."""
    directory.mkdir(parents=True, exist_ok=True)
    return FileTreeStore(
        data_directory=directory,
        key_sanitization_strategy=FileTreeV1KeySanitizationStrategy(directory),
        collection_sanitization_strategy=FileTreeV1CollectionSanitizationStrategy(directory),
    )


class _TestBrowser(webbrowser.BaseBrowser):
    """The person's browser while the client lives; afterwards it declines every URL, so
    webbrowser falls through to the next browser (webbrowser has no unregister)."""

    def __init__(self, person: Person) -> None:
        super().__init__("mcpward-interop")
        self.person: Person | None = person

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        if self.person is None:
            return False
        self.person.open(url)
        return True


async def _call(client: Client[Any], tool: str, arguments: dict[str, Any]) -> CallResult:
    try:
        result = await client.call_tool(tool, arguments, raise_on_error=False)
    except Exception as error:
        return CallResult(False, f"{type(error).__name__}: {error}")
    text = " ".join(getattr(c, "text", "") for c in result.content)
    return CallResult(not result.is_error, text)


class FastMCPHuman(InteropClient):
    label = "fastmcp"

    def __init__(self, server: DemoServer, person: Person, workdir: Path) -> None:
        super().__init__(server, person, workdir)
        self.browser = _TestBrowser(person)
        webbrowser.register("mcpward-interop", None, self.browser, preferred=True)
        store = _token_store(workdir / "tokens")
        auth = OAuth(client_name="mcpward interop (FastMCP)", token_storage=store)
        self.session: Session[Client[Any]] = Session(lambda: Client(server.resource, auth=auth))

    async def sign_in(self) -> None:
        await self.session.start()

    async def list_tools(self) -> list[dict[str, Any]]:
        async def work(client: Client[Any]) -> list[dict[str, Any]]:
            return [t.model_dump(by_alias=True, mode="json") for t in await client.list_tools()]

        return await self.session.run(work)

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        return await self.session.run(lambda client: _call(client, tool, arguments))

    async def aclose(self) -> None:
        await self.session.aclose()
        self.browser.person = None


class FastMCPMachine(MachineClient):
    async def call_once(self, server: DemoServer, workdir: Path) -> CallResult:
        auth = ClientCredentialsOAuthProvider(
            client_id=server.m2m_client_id,
            client_secret=server.m2m_secret,
            scopes=None,
            issuer=server.base,
            token_storage=_token_store(workdir / "tokens"),
        )
        try:
            async with Client(server.resource, auth=auth) as client:
                return await _call(client, "search_orders", {"query": "acme"})
        except Exception as error:  # FastMCP raises when it cannot sign in
            return CallResult(False, f"{type(error).__name__}: {error}")
