"""MCP Inspector's CLI (`mcp-inspector --cli`), one process per command as a script or CI
job runs it: `--format json` on stdout, OAuth state kept between runs in its own store
(`MCP_INSPECTOR_SECRET_STORE=file`: this machine has no keychain), the browser opened
through `open`/xdg-open/$BROWSER as for mcp-remote (`MCP_AUTO_OPEN_ENABLED=true`, since
there is no TTY to ask on), and the OAuth callback on a loopback port of our choosing."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from tests.interop.base import NODE, NODE_MODULES, CallResult, InteropClient, node_env
from tests.interop.browser import Opened, Person
from tests.interop.server import DemoServer
from tests.services import free_port

LAUNCHER = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher"
CLI = LAUNCHER / "build" / "index.js"
RUN_TIMEOUT = 90


class InspectorCli(InteropClient):
    label = "inspector-cli"

    def __init__(self, server: DemoServer, person: Person, workdir: Path) -> None:
        super().__init__(server, person, workdir)
        self.opened = Opened(workdir, person)
        self.callback = f"http://127.0.0.1:{free_port()}/oauth/callback"
        self.runs = 0

    async def run(self, *args: str) -> tuple[int, dict[str, Any]]:
        self.runs += 1
        env = node_env(
            self.workdir / "home",
            MCP_INSPECTOR_SECRET_STORE="file",
            MCP_AUTO_OPEN_ENABLED="true",
            **self.opened.env(),
        )
        with (self.workdir / f"run-{self.runs}.stderr").open("w") as stderr:
            proc = await asyncio.create_subprocess_exec(
                str(NODE),
                str(CLI),
                "--cli",
                self.server.resource,
                "--format",
                "json",
                "--callback-url",
                self.callback,
                *args,
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                env=env,
                cwd=self.workdir,
            )
            out, _ = await asyncio.wait_for(proc.communicate(), RUN_TIMEOUT)
        text = out.decode().strip()
        (self.workdir / f"run-{self.runs}.stdout").write_text(text)
        if not text:
            err = (self.workdir / f"run-{self.runs}.stderr").read_text().strip().splitlines()
            text = err[-1] if err else "{}"
        try:
            answer: dict[str, Any] = json.loads(text)
        except json.JSONDecodeError:
            answer = {"error": {"message": text}}
        # Success is {"result": ...}; failure {"error": {"code", "message"}}.
        answer = answer.get("result", answer)
        assert proc.returncode is not None
        return proc.returncode, answer

    async def sign_in(self) -> None:
        code, answer = await self.run("--method", "tools/list")
        assert code == 0, answer

    async def list_tools(self) -> list[dict[str, Any]]:
        code, answer = await self.run("--method", "tools/list")
        assert code == 0, answer
        tools: list[dict[str, Any]] = answer["tools"]
        return tools

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallResult:
        code, answer = await self.run(
            "--method",
            "tools/call",
            "--tool-name",
            tool,
            "--tool-args-json",
            json.dumps(arguments),
        )
        if "error" in answer:
            return CallResult(False, f"exit {code}: {answer['error']}")
        text = " ".join(c.get("text", "") for c in answer.get("content", []))
        return CallResult(code == 0 and not answer.get("isError", False), text)

    async def aclose(self) -> None:
        self.opened.aclose()
