"""MCP Inspector's web UI (`mcp-inspector --web`), driven in the person's own browser tab as
they would use it: toggle the server on, sign in and consent when the UI sends the tab to
mcpward, come back to the UI, open Tools, pick a tool, fill its form, Execute Tool.

What the page shows is all the test reads: tool names (the UI shows no `_meta`) and the
result panel's text."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path
from typing import Any

import httpx
from playwright.async_api import Page

from tests.interop.base import NODE, CallResult, InteropClient, node_env
from tests.interop.browser import Person
from tests.interop.inspector import CLI
from tests.interop.server import DemoServer
from tests.services import free_port

LAUNCHER = CLI  # the same bin; `--web` picks the web client


class InspectorWeb(InteropClient):
    label = "inspector-web"
    shows_meta = False

    def __init__(self, server: DemoServer, person: Person, workdir: Path) -> None:
        super().__init__(server, person, workdir)
        self.port = free_port()
        self.token = secrets.token_urlsafe(16)
        self.proc: asyncio.subprocess.Process | None = None
        self.page: Page | None = None

    async def _start_ui(self) -> None:
        env = node_env(
            self.workdir / "home",
            HOST="127.0.0.1",
            CLIENT_PORT=str(self.port),
            MCP_SANDBOX_PORT=str(free_port()),
            MCP_INSPECTOR_API_TOKEN=self.token,
            MCP_AUTO_OPEN_ENABLED="false",
            MCP_INSPECTOR_SECRET_STORE="memory",
        )
        self.proc = await asyncio.create_subprocess_exec(
            str(NODE),
            str(LAUNCHER),
            "--web",
            "--transport",
            "http",
            "--server-url",
            self.server.resource,
            stdout=(self.workdir / "web.log").open("w"),
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            cwd=self.workdir,
        )
        deadline = asyncio.get_running_loop().time() + 60
        async with httpx.AsyncClient() as http:
            while True:
                assert self.proc.returncode is None, "the Inspector web UI exited"
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                assert asyncio.get_running_loop().time() < deadline, "the web UI did not start"
                await asyncio.sleep(0.1)

    async def sign_in(self) -> None:
        await self._start_ui()
        page = self.page = await (await self.person.context()).new_page()
        await page.goto(f"http://127.0.0.1:{self.port}/?MCP_INSPECTOR_API_TOKEN={self.token}")
        # The switch's own input sits under its styled track: check it directly.
        await page.get_by_role("switch").first.check(force=True)
        await page.wait_for_url(self.server.base + "/authorize?**")
        await self.person.sign_in_and_consent(page, page.url)
        await page.get_by_text("Connected", exact=True).wait_for()

    async def _tools(self) -> Page:
        assert self.page is not None
        await self.page.get_by_text("Tools", exact=True).first.click()
        await self.page.get_by_text("Tools (", exact=False).first.wait_for()
        return self.page

    async def list_tools(self) -> list[dict[str, Any]]:
        page = await self._tools()
        names = await page.locator("button.list-item p").all_inner_texts()
        return [{"name": name} for name in names]

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        page = await self._tools()
        await page.locator("button.list-item", has_text=tool).first.click()
        for name, value in arguments.items():
            title = name.replace("_", " ").title()  # the form labels fields by schema title
            await page.get_by_role("textbox", name=title).fill(str(value))
        await page.get_by_role("button", name="Execute Tool").click()
        results = page.get_by_role("heading", name="Results")
        await results.wait_for()
        text = (await page.locator("body").inner_text()).split("\nResults\n", 1)[-1]
        text = text.split("\nProtocol\n", 1)[0]
        return CallResult("error" not in text.lower(), text)

    async def aclose(self) -> None:
        if self.page is not None:
            await self.page.close()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await self.proc.wait()
