"""The database audit sink and the ``audit_events`` table: what the token endpoint audits
arrives there (in batches, identifiers only), a request never waits for the database,
a database that is missing or unreachable costs only the events it cannot take (counted,
logged once), writes resume when it comes back, and the server's maintenance loop
keeps the table to its retention."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcpward._clock import FrozenClock
from mcpward.audit import AuditEvent, AuditLog
from mcpward.compose.server import audit_log, open_server
from mcpward.config import Settings
from mcpward.server import AuthorizationServer, routes
from mcpward.storage.audit_sink import DatabaseSink, parse_line
from mcpward.storage.database import open_engine, upgrade
from mcpward.storage.records import ClientRecord, EventFilter, ResourceRecord, StoredEvent
from mcpward.storage.sql import SqlAuditEvents
from tests.conftest import serve
from tests.services import free_port

RESOURCE = "http://127.0.0.1:9/mcp"
ALL = EventFilter(since=0.0, until=1e12)


@pytest.fixture
async def server(database_url: str, tmp_path: Path) -> AsyncIterator[AuthorizationServer]:
    settings = Settings(
        issuer=f"http://127.0.0.1:{free_port()}",
        data_dir=tmp_path,
        database_url=database_url,
        audit_sink=f"file:{tmp_path / 'audit.jsonl'}",
        audit_table=True,
    )
    # The audit trail exactly as `mcpward serve` builds it from these settings.
    s = await open_server(settings, audit=audit_log(settings))
    await s.register_resource(ResourceRecord(uri=RESOURCE, name="Orders", scopes={"a": "A"}))
    try:
        yield s
    finally:
        await s.close()


async def test_token_endpoint_events_reach_the_table(server: AuthorizationServer) -> None:
    secret = await server.clients.create(
        ClientRecord("agent", "Agent", "preregistered", "client_secret_basic",
                     ("client_credentials",), (), allowed_scope="a")
    )  # fmt: skip
    assert secret is not None
    async with serve(routes_app(server)) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCE},
            auth=("agent", secret.secret),
        )
        bad = await http.post(
            "/token",
            data={"grant_type": "client_credentials", "resource": RESOURCE},
            auth=("agent", "mcpw_cs_wrong"),
        )
    assert ok.status_code == 200 and bad.status_code == 401
    token = ok.json()["access_token"]
    sink = next(s for s in server.audit.sinks if isinstance(s, DatabaseSink))
    assert await asyncio.to_thread(sink.flush)
    rows = await server.store.audit_events.search(ALL)
    by_event = {r.event: r for r in rows}
    issued = by_event["token.issued"]
    assert issued.client_id == "agent" and issued.jti and issued.scopes == ("a",)
    assert issued.audience == RESOURCE
    assert by_event["client.authentication_failed"].outcome == "unauthorized"
    everything = repr(rows)
    assert secret.secret not in everything and token not in everything
    # The client's last use was recorded by the same request.
    client = await server.store.clients.get("agent")
    assert client is not None and client.last_used_at is not None


def routes_app(server: AuthorizationServer) -> Any:
    from starlette.applications import Starlette

    return Starlette(routes=routes(server))


async def test_writing_never_waits_and_an_unreachable_database_costs_only_events(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Nothing listens at the database's port: every line is accepted or dropped at
    once, the drops are counted, the outage is logged once, by type, without the URL."""
    url = f"postgresql+asyncpg://mcpward:hunter2@127.0.0.1:{free_port()}/nowhere"
    # The thread takes a batch only when 100 lines are queued (no timer), and the first
    # batch's retry waits 2 s: it holds that one batch while all 5000 lines are emitted
    # (some 50 ms), whatever the machine's load, so exactly what can be queued is known.
    sink = DatabaseSink(
        url, max_queue=1000, batch_size=100, flush_interval=60, backoff=2.0, max_retries=1
    )
    log = AuditLog([sink])
    slowest = 0.0
    emitting = time.monotonic()
    for i in range(5000):
        started = time.perf_counter()
        log.emit(AuditEvent("mcp.request", "ok", jti=f"j{i}"))
        slowest = max(slowest, time.perf_counter() - started)
    assert time.monotonic() - emitting < 2.0, "too slow to say what the thread took"
    # Bounded: what did not fit in the queue (1000 lines, besides the batch the thread
    # holds) was dropped at once, not buffered.
    assert sink.dropped == 5000 - 1000 - sink.batch_size
    sink.backoff = 0.01  # the batches still queued fail fast
    assert await asyncio.to_thread(sink.flush, 30)
    await asyncio.to_thread(sink.close)
    assert sink.written == 0 and sink.failed + sink.dropped == 5000
    print(f"slowest emit with the database down: {slowest * 1e6:.0f} µs")
    assert slowest < 0.05
    warnings = [r for r in caplog.records if r.name == "mcpward.audit"]
    assert len(warnings) == 1 and "audit database write failed" in warnings[0].getMessage()
    assert "hunter2" not in caplog.text and "nowhere" not in caplog.text


async def test_writes_resume_when_the_table_appears(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway started before the server migrated its database: its events wait (up
    to the queue's bound) and go in once the table exists."""
    caplog.set_level(logging.WARNING, "mcpward.audit")
    url = f"sqlite+aiosqlite:///{tmp_path / 'late.db'}"
    sink = DatabaseSink(url, flush_interval=0.02, backoff=0.05, max_retries=1000)
    log = AuditLog([sink])
    log.emit(AuditEvent("mcp.request", "forbidden", jti="before", reason="insufficient_scope"))
    deadline = time.monotonic() + 10
    while "audit database write failed" not in caplog.text:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    engine = open_engine(url)
    try:
        await upgrade(engine)
        log.emit(AuditEvent("mcp.request", "ok", jti="after"))
        assert await asyncio.to_thread(sink.flush, 20)
        rows = await SqlAuditEvents(engine).search(ALL)
    finally:
        await engine.dispose()
        sink.close()
    assert sorted(r.jti or "" for r in rows) == ["after", "before"]
    assert "audit database writes resumed" in caplog.text


def test_lines_that_are_not_events_are_skipped() -> None:
    assert parse_line("not json") is None
    assert parse_line('{"event": "x"}') is None
    line = AuditEvent("logout", "ok", subject="u1", actor="console:o").to_json(1_700_000_000.25)
    row = parse_line(line)
    assert row is not None and row.timestamp == 1_700_000_000.25 and row.actor == "console:o"


async def test_maintenance_keeps_the_table_to_its_retention(
    database_url: str, tmp_path: Path
) -> None:
    clock = FrozenClock(2_000_000_000.0)
    settings = Settings(
        issuer=f"http://127.0.0.1:{free_port()}",
        data_dir=tmp_path,
        database_url=database_url,
        audit_table=True,
        audit_table_retention=3600,
    )
    server = await open_server(settings, audit=AuditLog([]), clock=clock)
    try:
        now = clock()
        await server.store.audit_events.append(
            [StoredEvent(0, now - 7200, "mcp.request", "ok", jti="old"),
             StoredEvent(0, now - 60, "mcp.request", "ok", jti="recent")]
        )  # fmt: skip
        task = asyncio.create_task(server.maintain(interval=0.02))
        try:
            deadline = time.monotonic() + 10
            while len(await server.store.audit_events.search(ALL)) != 1:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        (left,) = await server.store.audit_events.search(ALL)
        assert left.jti == "recent"
    finally:
        await server.close()
