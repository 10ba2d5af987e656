"""The official MCP conformance suite's client scenarios, in both installed versions, against
tests/conformance/client.py (the mcpward client library inside the mcp SDK client).

Each version's run fails when a scenario not listed in its expected-failures file fails,
or when a listed one passes (the suite's own `--expected-failures` check). The summary
printed at the end gives the figures: scenarios passed per version and suite.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import yaml

from tests.conformance.suite import HERE, VERSIONS, Conformance, run_cli, scenario_results

pytestmark = pytest.mark.node

SUITES = ("auth", "backcompat", "extensions", "draft")
# A version's four suites run at once (each starts a Python client per scenario at once);
# the two versions one after the other, so at most ~40 clients share the cores.
PARALLEL_SUITES = 4


def test_each_installed_version_has_its_expected_failures_file() -> None:
    for suite in VERSIONS:
        assert suite.installed_version() == suite.version, "tests/node: npm ci"
        listed = yaml.safe_load(suite.expected_failures.read_text())["client"]
        assert isinstance(listed, list), suite.expected_failures  # empty when all pass


async def run_suite(
    suite: Conformance, name: str, out: Path, slots: asyncio.Semaphore
) -> tuple[int, str]:
    async with slots:
        return await run_cli(
            suite,
            "client",
            "--command",
            f"{sys.executable} {HERE / 'client.py'}",
            "--suite",
            name,
            "--expected-failures",
            str(suite.expected_failures),
            "--timeout",
            "60000",
            "-o",
            str(out / name),
            limit=300,
        )


@pytest.mark.parametrize("suite", VERSIONS, ids=lambda s: s.version)
async def test_client_conformance(suite: Conformance, tmp_path: Path) -> None:
    slots = asyncio.Semaphore(PARALLEL_SUITES)
    runs = await asyncio.gather(*(run_suite(suite, name, tmp_path, slots) for name in SUITES))
    lines, results = [], {}
    for name, (code, output) in zip(SUITES, runs, strict=True):
        ran = scenario_results(output)
        results.update(ran)
        lines.append(f"--- {suite.version} {name}: {sum(ran.values())}/{len(ran)} (exit {code})")
        lines.append(output[output.find("=== SUITE SUMMARY ===") :].strip())
    auth = {k: v for k, v in results.items() if k.startswith("auth/")}
    lines.append(
        f"=== {suite.version}: {sum(results.values())}/{len(results)} client scenarios passed, "
        f"auth {sum(auth.values())}/{len(auth)}"
    )
    report = "\n".join(lines)
    print(report)
    assert all(code == 0 for code, _ in runs), report
    # Every expected failure names a scenario that ran, so none is silently ignored.
    listed = yaml.safe_load(suite.expected_failures.read_text())["client"]
    assert set(listed) <= {name for name, passed in results.items() if not passed}, report
