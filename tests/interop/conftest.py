"""One mcpward server, one browser and one long-lived session per client for the whole
matrix; the matrix itself is printed at the end of the run (and written to
test-artifacts/interop-matrix.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from playwright.async_api import Browser

from tests.interop.matrix import Matrix
from tests.interop.roster import Roster
from tests.interop.server import DemoServer, demo_server
from tests.pages.browser import chromium

_matrix = Matrix()


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoServer]:
    with demo_server(tmp_path_factory.mktemp("interop-server")) as server:
        yield server


@pytest.fixture(scope="session")
async def interop_browser() -> AsyncIterator[Browser]:
    async with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
async def roster(
    demo: DemoServer, interop_browser: Browser, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Roster]:
    clients = Roster(demo, interop_browser, tmp_path_factory.mktemp("interop-clients"))
    try:
        yield clients
    finally:
        await clients.aclose()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _matrix.record(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _matrix.cells:
        text = _matrix.render()
        terminalreporter.write_sep("=", "MCP client interop matrix")
        terminalreporter.write_line(text)
        out = Path(__file__).resolve().parents[2] / "test-artifacts" / "interop-matrix.md"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")
