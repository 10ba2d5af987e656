"""The guard's per-request fast paths keep their meaning: a JSON answer to a tool call is
passed on byte for byte (not re-serialized) yet a failed call is still audited as such,
the response pre-check never misses an error, and the caches keep deciding per request."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from mcpward.audit import AuditLog, MemorySink
from mcpward.guard import StaticKeys, make_guard, manifest_from_code, protect
from mcpward.guard._inspector import may_fail

from .support import ISSUER, RESOURCE, Minter

MANIFEST = manifest_from_code("t", {"search_orders": ["orders.read"]})


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}', False),
        (b'{"id":1,"result":{"isError" :  false, "content":[]}}', False),
        (b'{"id":1,"result":{"content":[{"type":"text","text":"say \\"error\\""}]}}', False),
        (b'{"id":1,"result":{"content":[],"isError":true}}', True),
        (b'{"id":1,"result":{"content":[],"isError": 1}}', True),
        (b'{"jsonrpc":"2.0","id":1,"error":{"code":-32602,"message":"x"}}', True),
        (b'{"id":1,"\\u0065rror":{"code":1}}', True),  # a key hidden behind an escape
        (b'{"id":1,"result":{"\\u0069sError":true}}', True),
        (b'[{"id":1,"result":{"isError":false}},{"id":2,"result":{"isError":true}}]', True),
    ],
)
def test_response_precheck_never_misses_a_failure(body: bytes, expected: bool) -> None:
    assert may_fail(body) is expected


def tool_app(responses: list[list[bytes]]) -> Any:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        chunks = responses.pop(0)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(sum(map(len, chunks))).encode()),
                ],
            }
        )
        for i, chunk in enumerate(chunks):
            more = i < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})

    return app


async def test_json_tool_answer_passes_unchanged_and_failures_are_audited(
    minter: Minter,
) -> None:
    ok = b'{"jsonrpc":"2.0", "id":7, "result":{"content":[], "isError":false}}'
    failed = b'{"jsonrpc":"2.0","id":"a","result":{"content":[],"isError":true}}'
    rpc_error = b'{"jsonrpc":"2.0","id":8,"error":{"code":-32602,"message":"bad"}}'
    responses = [[ok[:20], ok[20:]], [failed[:30], failed[30:]], [rpc_error]]
    sink = MemorySink()
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        audit=AuditLog([sink]),
    )
    transport = httpx.ASGITransport(app=protect(tool_app(responses), guard))
    token = minter.mint("orders.read", sub="pat")
    headers = {"authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        answers = []
        for rpc_id in (7, "a", 8):
            call = {
                "jsonrpc": "2.0",
                "id": rpc_id,
                "method": "tools/call",
                "params": {"name": "search_orders"},
            }
            answers.append(await http.post("/mcp", json=call, headers=headers))
    assert [a.content for a in answers] == [ok, failed, rpc_error]  # byte for byte
    assert all(a.headers["ratelimit-policy"] == '"token";q=120;w=60' for a in answers)
    tool_events = [e for e in sink.events() if e["event"] == "mcp.tool_call"]
    assert [e["outcome"] for e in tool_events] == ["ok", "error", "error"]
    assert all(e["subject"] == "pat" and e["tool"] == "search_orders" for e in tool_events)
    requests = [e for e in sink.events() if e["event"] == "mcp.request"]
    assert len(requests) == 3  # one event per request, one per tool call
    assert len({e["request_id"] for e in requests}) == 3
    text = "\n".join(sink.lines)
    assert token not in text and token.split(".")[2] not in text


async def test_cached_header_still_meets_expiry_and_rate_limits(minter: Minter) -> None:
    """The parsed-header and bucket caches only skip re-parsing: the same header is still
    rate limited per request, and an expired token still fails."""
    from mcpward._clock import FrozenClock
    from mcpward.guard import Limit, RateLimits

    clock = FrozenClock(1_800_000_000)
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=MANIFEST,
        keys=StaticKeys(minter.jwks()),
        rate_limits=RateLimits(per_token=Limit(2, 60)),
        clock=clock,
        leeway=0,
    )
    transport = httpx.ASGITransport(app=protect(tool_app([[b"{}"]] * 10), guard))
    token = minter.mint("orders.read", iat=int(clock.now), exp=int(clock.now) + 100)
    headers = {"authorization": f"Bearer {token}"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search_orders"}}
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as http:
        codes = [(await http.post("/mcp", json=call, headers=headers)).status_code for _ in "abc"]
        assert codes == [200, 200, 429]
        clock.advance(120)  # a new window, but the token has expired
        r = await http.post("/mcp", json=call, headers=headers)
        assert r.status_code == 401
        assert 'error="invalid_token"' in r.headers["www-authenticate"]
