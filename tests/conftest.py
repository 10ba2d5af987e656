"""Fixtures shared by every test package: real PostgreSQL and Redis servers, and a helper
that serves an ASGI app over real HTTP on 127.0.0.1 in the test's event loop."""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
import uvicorn
from starlette.types import ASGIApp

from tests.services import create_database, free_port, postgres_server, redis_server

_db_names = itertools.count()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """In CI a skipped test is a failure: `make test` installs every component the tests
    need, so a skip there means an install step is missing. An expected failure (xfail,
    reported as skipped with ``wasxfail``) is a test that ran, not a skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where nothing may be missing: {report.longrepr}"


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture
def postgres_url(postgres_admin_url: str) -> str:
    """A fresh, empty database on the session's PostgreSQL server."""
    return create_database(postgres_admin_url, f"t{next(_db_names)}")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database, once on SQLite (a file under ``tmp_path``) and once on the
    session's PostgreSQL server: tests that take it run on both backends."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'database.db'}"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


class TestServer(uvicorn.Server):
    """uvicorn without its signal handlers, for servers a test starts in its own loop.

    uvicorn installs SIGINT/SIGTERM handlers (bound methods of the server) while it serves
    and restores the previous ones when it stops. Two servers stopped in the order they
    were started (not the reverse) leave the first one's handler installed, a stopped
    server whose ``should_exit`` is true. sse-starlette finds the uvicorn server to watch
    through that SIGTERM handler, process-wide, and ends every SSE answer in the process
    when it sees ``should_exit``, so each later streamed answer raced a cancellation and
    lost it under load (the intermittent early end of a POST's SSE answer). A test has no
    use for the handlers: pytest handles Ctrl-C."""

    __test__ = False  # not a test class, despite the name

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@asynccontextmanager
async def serve(app: ASGIApp, port: int | None = None) -> AsyncIterator[str]:
    """Serve ``app`` over real HTTP on 127.0.0.1; yields its base URL."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", lifespan="off", access_log=False
    )
    server = TestServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
