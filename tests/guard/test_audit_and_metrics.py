"""Audit events and metrics: the Loki push sink against a local receiver, and /metrics.

No Loki server can run here, so the Loki sink is tested against a small local HTTP
receiver that checks Loki's push format (JSON body of ``streams`` with ``stream`` labels
and ``[ns-timestamp-string, line]`` values) and can fail on purpose to exercise retries.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from mcpward.audit import AuditEvent, AuditLog
from mcpward.audit.loki import LokiSink
from mcpward.guard import StaticKeys, make_guard, manifest_from_code, protect

from .support import ISSUER, RESOURCE, Minter, free_port, serve
from .test_attacks import CALL, ok_app


class LokiReceiver:
    def __init__(self) -> None:
        self.pushes: list[dict[str, Any]] = []
        self.fail_next = 0
        self.block = threading.Event()
        self.block.set()
        self.tenants: list[str | None] = []

    def app(self) -> Starlette:
        async def push(request: Request) -> Response:
            if request.headers.get("content-type") != "application/json":
                return Response("content-type", status_code=400)
            body = json.loads(await request.body())
            _check_push_format(body)
            if self.fail_next:
                self.fail_next -= 1
                return Response("overloaded", status_code=503)
            self.tenants.append(request.headers.get("x-scope-orgid"))
            self.pushes.append(body)
            return Response(status_code=204)

        return Starlette(routes=[Route("/loki/api/v1/push", push, methods=["POST"])])

    def lines(self) -> list[dict[str, Any]]:
        out = []
        for body in self.pushes:
            for stream in body["streams"]:
                for _, line in stream["values"]:
                    out.append({"labels": stream["stream"], **json.loads(line)})
        return out


def _check_push_format(body: Any) -> None:
    assert set(body) == {"streams"}
    for stream in body["streams"]:
        assert set(stream) == {"stream", "values"}
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in stream["stream"].items())
        for ts, line in stream["values"]:
            assert isinstance(ts, str) and ts.isdigit() and len(ts) >= 19  # nanoseconds
            assert isinstance(line, str)


@pytest.fixture
def loki() -> Iterator[tuple[str, LokiReceiver]]:
    receiver = LokiReceiver()
    with serve(receiver.app()) as base:
        yield base, receiver


def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


async def test_guard_events_reach_loki_batched_and_labelled(
    loki: tuple[str, LokiReceiver], minter: Minter
) -> None:
    base, receiver = loki
    sink = LokiSink(base, labels={"service": "orders-mcp"}, flush_interval=0.05, tenant="acme")
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=manifest_from_code("t", {"search_orders": ["orders.read"]}),
        keys=StaticKeys(minter.jwks()),
        audit=AuditLog([sink]),
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    token = minter.mint(sub="erin")
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        await http.post("/mcp", json=CALL, headers={"authorization": f"Bearer {token}"})
        await http.post("/mcp", json=CALL)
    wait_for(lambda: len(receiver.lines()) >= 3)
    sink.close()
    lines = receiver.lines()
    call = next(e for e in lines if e["event"] == "mcp.tool_call")
    assert call["labels"] == {
        "service": "orders-mcp",
        "event": "mcp.tool_call",
        "outcome": "ok",
    }
    assert call["tool"] == "search_orders" and call["subject"] == "erin"
    assert call["scopes"] == ["orders.read"]
    assert {e["outcome"] for e in lines if e["event"] == "mcp.request"} == {"ok", "unauthorized"}
    assert receiver.tenants[0] == "acme"
    assert all(token not in json.dumps(body) for body in receiver.pushes)


def test_loki_sink_retries_then_delivers(loki: tuple[str, LokiReceiver]) -> None:
    base, receiver = loki
    receiver.fail_next = 2
    sink = LokiSink(base, flush_interval=0.02, backoff=0.01)
    sink.write(AuditEvent("mcp.request", "ok").to_json(time.time()))
    wait_for(lambda: sink.sent == 1)
    sink.close()
    assert sink.failed == 0 and len(receiver.pushes) == 1


def test_loki_sink_never_blocks_and_bounds_its_queue() -> None:
    """Loki unreachable (nothing listens on the port): writes stay instant, the queue is
    bounded, overflow is counted, and batches that cannot be sent are counted as failed."""
    sink = LokiSink(
        f"http://127.0.0.1:{free_port()}",
        flush_interval=0.01,
        max_queue=100,
        batch_size=50,
        max_retries=1,
        backoff=0.01,
    )
    line = AuditEvent("mcp.request", "ok").to_json(time.time())
    started = time.perf_counter()
    for _ in range(5_000):
        sink.write(line)
    elapsed = time.perf_counter() - started
    sink.close()
    assert sink.dropped >= 4_800
    assert sink.sent == 0
    assert sink.failed + sink.dropped >= 5_000 - 100
    assert elapsed < 1.0  # a sanity bound, not a timing test: 5,000 appends to a deque


async def test_metrics_endpoint(minter: Minter) -> None:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=manifest_from_code("t", {"search_orders": ["orders.read"]}),
        keys=StaticKeys(minter.jwks()),
    )
    transport = httpx.ASGITransport(app=protect(ok_app, guard))
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        token = minter.mint()
        await http.post("/mcp", json=CALL, headers={"authorization": f"Bearer {token}"})
        await http.post("/mcp", json=CALL, headers={"authorization": "Bearer x.y.z"})
        r = await http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'mcpward_guard_tool_calls_total{outcome="ok",tool="search_orders"} 1.0' in text
    # Refused before the body is read: labelled by HTTP method.
    assert 'mcpward_guard_requests_total{method="POST",outcome="unauthorized"} 1.0' in text
    assert 'mcpward_guard_requests_total{method="tools/call",outcome="ok"} 1.0' in text
    assert "mcpward_guard_decision_seconds_bucket" in text
