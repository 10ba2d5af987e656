"""Benchmark of the mcpward guard and gateway, every figure with its baseline in this run.

1. The guard's decision latency in-process: a warm token (verified-token cache hit;
   revocation and rate limit still applied) and a token seen for the first time (ES256
   signature verify), against a bare joserfc verify as the baseline.
2. With ``--redis URL``: the same decision with the Redis rate limiter carrying the
   revocation check (one round trip).
3. The guard's overhead per request in-process: the same ``mcp`` SDK app driven directly
   as ASGI (prepared scope, receive and send; no HTTP, no sockets), unprotected and
   protected, interleaved; the difference of the medians. Also with an audit sink writing
   every event (to ``/dev/null``), and the SDK's own bearer auth. Then the same variants'
   instructions per request under valgrind's callgrind (``_callgrind.py``): the work
   ratio, which repeats run to run where the timings here move by ±20 µs.
4. HTTP, driven by wrk (the load generator must not be the bottleneck): the demo tool
   (``search_orders``) served by the ``mcp`` SDK in stateless JSON mode, each variant in
   its own uvicorn process: direct (unprotected, the baseline), the in-process guard, the
   SDK's own bearer auth (with a dict cache of verified tokens), and the real
   ``mcpward gateway`` process in front of the direct server, and two floors in front of
   it (``_floors.py``: a byte pipe, and the least an HTTP-aware proxy does) that show
   what the hop itself costs. Every response is checked (200 and the tool's result).
   First with the server side pinned to CPU 1 (a proxy and its upstream share it) and
   wrk on CPU 0, then unpinned; per round every variant at 16 connections (throughput)
   and at 1 connection (latency, the added p50 against direct); rounds interleaved,
   medians of per-round ratios. With ``--before SRC`` the guard and gateway variants
   also run from another checkout's ``src`` (the code before a change) in the same
   rounds: a before/after that shares the machine's load.

    .venv/bin/python bench/guard.py [--seconds 3] [--concurrency 16] [--rounds 5]
        [--before /tmp/perf-before/src] [--skip-instructions] [--count-requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _callgrind
from _floors import serve_http_floor, serve_pipe
from _harness import (
    BenchError,
    Processes,
    Wrk,
    WrkResult,
    assert_clean_log,
    cpu_ns,
    json_post_lua,
    log,
    median,
    pin,
    print_table,
    tail,
)
from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "https://as.bench.test"
TOOL = "search_orders"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": TOOL, "arguments": {"query": "acme"}},
}
# Every response must be the tool's answer, not an error.
EXPECT = '"structuredContent":{"result":[{"id":"ord_1001"'
HEADERS = {
    "accept": "application/json, text/event-stream",
    "content-type": "application/json",
    "mcp-protocol-version": "2025-11-25",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def mint(key: ECKey, resource: str, scope: str = "orders.read", issuer: str = ISSUER) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "sub": "bench",
        "aud": resource,
        "client_id": "bench",
        "scope": scope,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key)


# -- server side (each variant in its own process) -------------------------------------------


def serve(kind: str, port: int, jwks: str, issuer: str) -> None:
    """One variant's server on 127.0.0.1:``port``: uvicorn as ``mcpward gateway`` runs it
    (uvloop, httptools), the ``mcp`` SDK app in stateless JSON mode (no session to pin a
    client to one replica: how a horizontally scaled MCP server is deployed)."""
    import uvicorn

    from mcpward.demo import create_demo_app
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard, protect

    app: Any
    if kind == "issuer":
        app = _issuer_app(issuer, jwks)
    elif kind == "canned":
        app = _canned_app()
    elif kind == "sdk-auth":
        app = _sdk_auth_app(f"http://127.0.0.1:{port}/mcp", jwks, issuer)
    else:
        app, manifest = create_demo_app(stateless_http=True, json_response=True)
        if kind == "guard":
            guard = make_guard(
                issuer=issuer,
                resource=f"http://127.0.0.1:{port}/mcp",
                manifest=manifest,
                keys=StaticKeys(json.loads(jwks)),
                # Limits on, but high enough not to refuse the benchmark's own traffic.
                rate_limits=RateLimits(per_token=Limit(RATE, 60)),
            )
            app = protect(app, guard)
    # The SDK sets INFO logging up; per-request log lines would be what we measure.
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("httpx", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        ws="none",
        loop="uvloop",
        http="httptools",
    )


def _canned_app() -> Any:
    """The demo server's answer to CALL, canned: an upstream that costs next to nothing,
    for measuring a gateway alone."""
    from mcpward.demo import _ORDERS

    result = [o for o in _ORDERS if "acme" in o["customer"]]
    answer = {
        "jsonrpc": "2.0",
        "id": 1,
        "result": {
            "content": [{"type": "text", "text": json.dumps(result)}],
            "structuredContent": {"result": result},
            "isError": False,
        },
    }
    body = json.dumps(answer, separators=(",", ":")).encode()
    start = {
        "type": "http.response.start",
        "status": 200,
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))],
    }

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return app


def _issuer_app(issuer: str, jwks: str) -> Any:
    """RFC 8414 metadata and the JWKS: all ``mcpward gateway`` needs of an issuer."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    document = {"issuer": issuer, "jwks_uri": f"{issuer}/jwks"}

    async def metadata(request: Request) -> JSONResponse:
        return JSONResponse(document)

    async def keys(request: Request) -> JSONResponse:
        return JSONResponse(json.loads(jwks))

    return Starlette(
        routes=[
            Route("/.well-known/oauth-authorization-server", metadata),
            Route("/jwks", keys),
        ]
    )


def _sdk_auth_app(resource: str, jwks: str, issuer: str) -> Any:
    """The same server with the ``mcp`` SDK's own bearer auth: an ES256 JWT verifier
    (joserfc) with a dict cache of verified tokens, what an SDK user would write."""
    from joserfc.jwk import KeySet
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from pydantic import AnyHttpUrl

    from mcpward.demo import create_demo_server

    keys = KeySet.import_key_set(json.loads(jwks))
    cache: dict[str, AccessToken] = {}

    class Verifier:
        async def verify_token(self, token: str) -> AccessToken | None:
            hit = cache.get(token)
            if hit is not None and (hit.expires_at or 0) > time.time():
                return hit
            try:
                claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
            except Exception:
                return None
            if claims.get("iss") != issuer or claims.get("aud") != resource:
                return None
            if claims.get("exp", 0) < time.time():
                return None
            cache[token] = AccessToken(
                token=token,
                client_id=claims["client_id"],
                scopes=claims["scope"].split(),
                expires_at=claims["exp"],
                resource=resource,
                subject=claims["sub"],
            )
            return cache[token]

    server = create_demo_server(
        token_verifier=Verifier(),
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(issuer),
            resource_server_url=AnyHttpUrl(resource),
            required_scopes=["orders.read"],
            validate_token_resource=False,  # the verifier checks aud itself
        ),
    )
    return server.streamable_http_app(stateless_http=True, json_response=True)


# -- load side: wrk -------------------------------------------------------------------------

RATE = 10_000_000  # the per-token limit: applied on every request, never reached here
VARIANTS = {
    "direct": "mcp SDK, unprotected (baseline)",
    "guard": "mcp SDK + mcpward guard in-process",
    "sdk-auth": "mcp SDK's own bearer auth (dict cache)",
    "gateway": "mcpward gateway -> the direct server",
    # Floors (bench/_floors.py): what a proxy process costs before any gateway work.
    "pipe": "floor: a byte pipe (uvloop) -> direct",
    "http-floor": "floor: least HTTP-aware proxy -> direct",
}
# With --before SRC: the same two mcpward variants run from another checkout's src (the
# code before a change), in the same rounds.
BEFORE = {
    "guard-before": "  the same, --before code",
    "gateway-before": "  the same, --before code",
}


@dataclass
class Variant:
    name: str
    url: str
    script: Path
    pids: list[int]  # the server processes that serve it (the gateway: both)
    busy: list[WrkResult] = field(default_factory=list)  # 16 connections
    single: list[WrkResult] = field(default_factory=list)  # 1 connection
    cpu: list[float] = field(default_factory=list)  # server CPU µs per request, busy runs
    cpu1: list[float] = field(default_factory=list)  # the same at 1 connection

    def run(self, wrk: Wrk, seconds: int) -> WrkResult:
        before = sum(cpu_ns(pid) for pid in self.pids)
        result = wrk.run(self.url, self.script, seconds, self.name)
        used = sum(cpu_ns(pid) for pid in self.pids) - before
        if wrk.connections > 1:
            self.busy.append(result)
            self.cpu.append(used / 1000 / result.requests)
        else:
            self.single.append(result)
            self.cpu1.append(used / 1000 / result.requests)
        return result


def _start(
    procs: Processes,
    work: Path,
    name: str,
    cmd: list[str],
    port: int,
    src: str | None = None,
) -> int:
    """Start a server (mcpward from ``src`` if given); wait until its port accepts
    connections; its pid."""
    log_path = work / f"{name}.log"
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src  # ahead of the editable install's own path
    proc = procs.start(cmd, log=log_path, env=env, cwd=work)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{name} exited ({proc.returncode}):\n{tail(log_path)}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc.pid
        time.sleep(0.05)
    raise BenchError(f"{name} did not start:\n{tail(log_path)}")


def start_variants(
    procs: Processes, work: Path, key: ECKey, before: str | None
) -> dict[str, Variant]:
    """Every server, started; each variant's URL and wrk script (its own token)."""
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    names = ["direct", "guard", "sdk-auth", "gateway"]
    if before is not None:
        names[2:2] = ["guard-before"]
        names.append("gateway-before")
    names += ["pipe", "http-floor"]
    ports = {name: free_port() for name in ("issuer", *names)}
    issuer = f"http://127.0.0.1:{ports['issuer']}"
    tokens = {n: mint(key, f"http://127.0.0.1:{ports[n]}/mcp", issuer=issuer) for n in names}
    pids: dict[str, list[int]] = {}
    for name in ("issuer", *names):
        kind = name.removesuffix("-before")
        src = before if name.endswith("-before") else None
        if kind in ("pipe", "http-floor"):
            own = [sys.executable, __file__, "--serve", kind, "--port", str(ports[name])]
            cmd = [*own, "--upstream-port", str(ports["direct"]), "--token", tokens[name]]
            pids[name] = [_start(procs, work, name, cmd, ports[name]), *pids["direct"]]
        elif kind == "gateway":
            cmd = [
                sys.executable,
                "-m",
                "mcpward",
                "gateway",
                "--upstream",
                f"http://127.0.0.1:{ports['direct']}/mcp",
                "--issuer",
                issuer,
                "--port",
                str(ports[name]),
                "--rate",
                f"{RATE}/60",
                # An operator's gateway writes its audit trail: here every event is built
                # and written, to nowhere.
                "--audit",
                f"file:{os.devnull}",
            ]
            pids[name] = [_start(procs, work, name, cmd, ports[name], src), *pids["direct"]]
        else:
            own = [sys.executable, __file__, "--serve", kind, "--port", str(ports[name])]
            cmd = [*own, "--jwks", jwks, "--issuer", issuer]
            pids[name] = [_start(procs, work, name, cmd, ports[name], src)]
    variants: dict[str, Variant] = {}
    for name in names:
        url = f"http://127.0.0.1:{ports[name]}/mcp"
        headers = dict(HEADERS)
        if name != "direct":
            headers["authorization"] = f"Bearer {tokens[name]}"
        script = work / f"{name}.lua"
        script.write_text(json_post_lua(json.dumps(CALL), headers, EXPECT))
        variants[name] = Variant(name, url, script, pids[name])
    return variants


def throughput(args: argparse.Namespace, key: ECKey) -> None:
    """wrk against every variant, server side pinned to CPU 1 (wrk on CPU 0) and then
    unpinned; per round every variant at 16 connections, then at 1 (latency)."""
    procs = Processes()
    with tempfile.TemporaryDirectory(prefix="mcpward-bench-guard-") as tmp:
        work = Path(tmp)
        try:
            variants = start_variants(procs, work, key, args.before)
            for mode in ("pinned", "unpinned"):
                cpus = {1} if mode == "pinned" else set(range(os.cpu_count() or 1))
                for proc in procs.running():
                    pin(proc.pid, cpus)
                wrk_cpus = "0" if mode == "pinned" else None
                busy = Wrk(threads=2, connections=args.concurrency, cpus=wrk_cpus)
                single = Wrk(threads=1, connections=1, cpus=wrk_cpus)
                for v in variants.values():  # warm-up: connections, caches, first calls
                    busy.run(v.url, v.script, 1, f"{v.name} warm-up")
                    v.busy, v.single, v.cpu, v.cpu1 = [], [], [], []
                for r in range(args.rounds):
                    log(f"{mode}: round {r + 1}/{args.rounds}, load {os.getloadavg()[0]:.1f}")
                    for v in variants.values():
                        v.run(busy, args.seconds)
                        v.run(single, args.seconds)
                _report(mode, variants, args)
            for name in variants:
                assert_clean_log(name, work / f"{name}.log")
        finally:
            procs.stop_all()


def _report(mode: str, variants: dict[str, Variant], args: argparse.Namespace) -> None:
    """Ratios and added latencies are taken within each round (the variants ran back to
    back), then the median over rounds: drift on the machine cancels better so."""
    direct = variants["direct"]
    rows = []
    for v in variants.values():
        ratio = median([b.rate / d.rate for b, d in zip(v.busy, direct.busy, strict=True)])
        added = median(
            [(s.p50_ms - d.p50_ms) * 1000 for s, d in zip(v.single, direct.single, strict=True)]
        )
        capacity = median([d / c for c, d in zip(v.cpu, direct.cpu, strict=True)])
        rows.append(
            [
                {**VARIANTS, **BEFORE}[v.name],
                f"{median([b.rate for b in v.busy]):,.0f}",
                f"{median([b.p50_ms for b in v.busy]):.2f}",
                f"{median([b.p99_ms for b in v.busy]):.2f}",
                f"{ratio:.3f}",
                f"{median(v.cpu):,.0f}",
                f"{capacity:.3f}",
                f"{median([s.rate for s in v.single]):,.0f}",
                f"{median([s.p50_ms for s in v.single]):.3f}",
                "" if v is direct else f"{added:,.0f}",
                f"{median(v.cpu1):,.0f}",
            ]
        )
    where = (
        "server side on CPU 1 (gateway and upstream both), wrk on CPU 0"
        if mode == "pinned"
        else "unpinned"
    )
    print_table(
        f"== tools/call search_orders, wrk, {where}; "
        f"{args.rounds} interleaved rounds x {args.seconds} s, medians",
        [
            "variant",
            f"req/s @{args.concurrency}",
            "p50 ms",
            "p99 ms",
            "vs direct",
            "CPU µs/req",
            "CPU vs direct",
            "req/s @1",
            "p50 ms @1",
            "added µs @1",
            "CPU µs/req @1",
        ],
        rows,
    )
    print(
        "CPU µs/req: the variant's server processes (the gateway: gateway + upstream), all\n"
        "threads, at 16 connections (and at 1); CPU vs direct = direct's CPU per request / the\n"
        "variant's: the capacity ratio of one core, which other work on the machine\n"
        "does not skew the way it skews req/s.\n"
    )


async def decision(args: argparse.Namespace, key: ECKey) -> None:
    from mcpward.demo import demo_manifest
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard
    from mcpward.guard._jsonrpc import parse
    from mcpward.revocation import InProcessRevocations

    resource = "http://127.0.0.1/mcp"
    jwks = {"keys": [key.as_dict(private=False)]}
    guard = make_guard(
        issuer=ISSUER,
        resource=resource,
        manifest=demo_manifest(),
        keys=StaticKeys(jwks),
        revocations=InProcessRevocations(),
        rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
    )
    body = json.dumps(CALL).encode()
    n = args.decisions

    async def decide(token: str) -> None:
        identity, _ = await guard.authenticate([f"Bearer {token}".encode()], b"")
        await guard.authorize(identity, parse(body))

    warm = mint(key, resource)
    await decide(warm)
    warm_times = []
    for _ in range(n):
        t = time.perf_counter_ns()
        await decide(warm)
        warm_times.append(time.perf_counter_ns() - t)
    fresh_tokens = [mint(key, resource) for _ in range(n // 5)]
    cold_times = []
    for token in fresh_tokens:
        t = time.perf_counter_ns()
        await decide(token)
        cold_times.append(time.perf_counter_ns() - t)
    public = ECKey.import_key(key.as_dict(private=False))
    bare = []
    for token in fresh_tokens:
        t = time.perf_counter_ns()
        jwt.decode(token, public, algorithms=["ES256"])
        bare.append(time.perf_counter_ns() - t)
    print(
        "\n== guard decision latency in-process (authenticate + scopes + revocation + rate limit)"
    )
    print(f"{'':<44}{'median µs':>10}{'p99 µs':>9}")
    for label, xs in (
        ("warm token (verified-token cache hit)", warm_times),
        ("first sight of a token (ES256 verify)", cold_times),
        ("baseline: bare joserfc ES256 decode", bare),
    ):
        xs.sort()
        median, p99 = statistics.median(xs) / 1000, xs[int(len(xs) * 0.99)] / 1000
        print(f"{label:<44}{median:>10.1f}{p99:>9.1f}")
    print(
        f"first-sight / bare verify = {statistics.median(cold_times) / statistics.median(bare):.2f}"
    )

    if args.redis:
        from redis.asyncio import Redis

        from mcpward.state import over_redis

        redis = Redis.from_url(args.redis)
        shared = over_redis(redis)
        rguard = make_guard(
            issuer=ISSUER,
            resource=resource,
            manifest=demo_manifest(),
            keys=StaticKeys(jwks),
            revocations=shared.revocations,
            rate_limiter=shared.rate_limiter,
            rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
        )
        identity, _ = await rguard.authenticate([f"Bearer {warm}".encode()], b"")
        calls = parse(body)
        await rguard.authorize(identity, calls)
        times = []
        ping = []
        for _ in range(n // 5):
            t = time.perf_counter_ns()
            await rguard.authorize(identity, calls)
            times.append(time.perf_counter_ns() - t)
            t = time.perf_counter_ns()
            await redis.ping()
            ping.append(time.perf_counter_ns() - t)
        await redis.aclose()
        print(
            f"{'warm, Redis rate limit + revocation':<44}{statistics.median(times) / 1000:>10.1f}"
        )
        print(f"{'baseline: one Redis PING round trip':<44}{statistics.median(ping) / 1000:>10.1f}")


# -- in-process overhead -------------------------------------------------------------------


class _AsgiDriver:
    """Calls an ASGI app the way a server would, minus the server: one prepared request,
    the response collected in memory. ``lifespan``: whether the app has one to start and
    stop (the canned answer does not)."""

    def __init__(self, app: Any, token: str | None, *, lifespan: bool = True) -> None:
        self.app = app
        self.lifespan = lifespan
        self.body = json.dumps(CALL).encode()
        headers = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
        headers += [(b"host", b"127.0.0.1:8000"), (b"content-length", b"%d" % len(self.body))]
        if token:
            headers.append((b"authorization", f"Bearer {token}".encode()))
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/mcp",
            "raw_path": b"/mcp",
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
        }
        self._lifespan: asyncio.Task[None] | None = None
        self._lifespan_in: asyncio.Queue[dict[str, Any]] = asyncio.Queue()

    async def start(self) -> None:
        if not self.lifespan:
            return
        started, self._stopped = asyncio.Event(), asyncio.Event()

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                started.set()
            elif message["type"] == "lifespan.shutdown.complete":
                self._stopped.set()

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await self._lifespan_in.put({"type": "lifespan.startup"})
        self._lifespan = asyncio.create_task(self.app(scope, self._lifespan_in.get, send))
        await started.wait()

    async def stop(self) -> None:
        if not self.lifespan:
            return
        await self._lifespan_in.put({"type": "lifespan.shutdown"})
        await self._stopped.wait()
        assert self._lifespan is not None
        await self._lifespan

    async def __call__(self) -> int:
        sent = False
        status = 0

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": self.body, "more_body": False}
            await asyncio.Event().wait()  # no disconnect: wait to be cancelled
            raise AssertionError

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(dict(self.scope), receive, send)
        return status


RESOURCE = "http://127.0.0.1:8000/mcp"  # what the in-process drivers' requests are for
OVERHEAD = {
    "plain": "mcp SDK app, unprotected",
    "guard": "mcp SDK app + guard",
    "guard+audit": "mcp SDK app + guard + audit to a file",
    "sdk-auth": "mcp SDK app + the SDK's own bearer auth",
    "canned": "canned-answer ASGI app, unprotected",
    "canned+guard": "canned-answer ASGI app + guard",
}


def _baseline(name: str) -> str:
    """The unprotected variant a variant is compared with."""
    return "canned" if name.startswith("canned") else "plain"


def overhead_driver(name: str, key: ECKey, audit: Any) -> _AsgiDriver:
    """One in-process variant (``OVERHEAD``): the throughput benchmark's configuration on
    its own copy of the demo app. ``audit``: the AuditLog of the ``+audit`` variant."""
    from mcpward.demo import create_demo_app, demo_manifest
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard, protect

    # The SDK sets INFO logging up; per-request log lines would be what we measure.
    for logger in ("httpx", "mcp"):
        logging.getLogger(logger).setLevel(logging.WARNING)
    jwks = {"keys": [key.as_dict(private=False)]}
    token = mint(key, RESOURCE)
    if name == "sdk-auth":
        return _AsgiDriver(_sdk_auth_app(RESOURCE, json.dumps(jwks), ISSUER), token)
    canned = _baseline(name) == "canned"
    app = _canned_app() if canned else create_demo_app(stateless_http=True, json_response=True)[0]
    if name == _baseline(name):
        return _AsgiDriver(app, None, lifespan=not canned)
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=demo_manifest(),
        keys=StaticKeys(jwks),
        rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
        audit=audit if name == "guard+audit" else None,
    )
    return _AsgiDriver(protect(app, guard), token, lifespan=not canned)


async def overhead(args: argparse.Namespace, key: ECKey) -> None:
    from mcpward.audit import AuditLog, FileSink

    audit = AuditLog([FileSink(os.devnull)])
    drivers = {name: overhead_driver(name, key, audit) for name in OVERHEAD}
    for driver in drivers.values():
        await driver.start()
        for _ in range(200):  # warm up: caches, the SDK's first-call paths
            assert await driver() == 200
    times: dict[str, list[int]] = {k: [] for k in drivers}
    # Interleaved, so drift on the machine hits every variant alike.
    for _ in range(args.overhead_requests):
        for name, driver in drivers.items():
            t = time.perf_counter_ns()
            await driver()
            times[name].append(time.perf_counter_ns() - t)
    for driver in drivers.values():
        await driver.stop()
    audit.close()
    med = {k: statistics.median(v) / 1000 for k, v in times.items()}
    print(
        f"\n== guard overhead per request, in-process ASGI (tools/call search_orders, "
        f"{args.overhead_requests} interleaved requests each, median)"
    )
    print(f"{'':<44}{'median µs':>10}{'overhead':>10}")
    for name, label in OVERHEAD.items():
        base = _baseline(name)
        extra = "" if name == base else f"{med[name] - med[base]:>10.1f}"
        print(f"{label:<44}{med[name]:>10.1f}{extra}")
    print(
        f"guard overhead = {med['guard'] - med['plain']:.1f} µs per request on the SDK app, "
        f"{med['canned+guard'] - med['canned']:.1f} µs on a canned answer (medians)"
    )


async def count_requests(name: str, requests: int) -> None:
    """``--count``: one in-process variant, started and warmed up, then ``requests``
    requests; what ``instruction_counts`` runs under callgrind."""
    from mcpward.audit import AuditLog, FileSink

    audit = AuditLog([FileSink(os.devnull)])
    driver = overhead_driver(name, ECKey.generate_key("P-256", parameters={"kid": "bench"}), audit)
    await driver.start()
    for _ in range(200 + requests):
        assert await driver() == 200
    await driver.stop()
    audit.close()


def instruction_counts(args: argparse.Namespace) -> None:
    """Each in-process variant's instructions per request (``_callgrind.py``), two
    valgrind runs at a time; the ratios of work that the timings above measure too."""
    if not _callgrind.available():
        log("valgrind not found: no instruction counts")
        return

    def count(name: str) -> float:
        def argv(requests: int) -> list[str]:
            return [sys.executable, __file__, "--count", name, "--requests", str(requests)]

        return _callgrind.per_request(argv, args.count_requests)

    log(f"instruction counts under callgrind: {len(OVERHEAD)} variants, a few minutes")
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(OVERHEAD, pool.map(count, OVERHEAD), strict=True))
    rows = []
    for name, label in OVERHEAD.items():
        base = counts[_baseline(name)]
        rows.append(
            [
                label,
                f"{counts[name]:,.0f}",
                "" if counts[name] == base else f"{counts[name] - base:,.0f}",
                # A ratio to a canned answer that costs next to nothing says nothing.
                "" if _baseline(name) == "canned" else f"{base / counts[name]:.3f}",
            ]
        )
    print_table(
        "\n== instructions per request, in-process ASGI (callgrind; the same driver as the "
        f"overhead above; {args.count_requests} and {3 * args.count_requests} requests)",
        ["variant", "instructions", "added", "unprotected / variant"],
        rows,
    )
    print(
        "Work only: no cache misses, no system calls (in-process, there are none). The same\n"
        "code and environment give the same counts whatever the machine's load.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--serve",
        choices=["issuer", "canned", "direct", "guard", "sdk-auth", "pipe", "http-floor"],
    )
    parser.add_argument("--count", choices=list(OVERHEAD), help=argparse.SUPPRESS)
    parser.add_argument("--requests", type=int, default=300, help=argparse.SUPPRESS)
    parser.add_argument(
        "--count-requests",
        type=int,
        default=300,
        help="requests per variant under callgrind (run at N and 3N)",
    )
    parser.add_argument("--skip-instructions", action="store_true")
    parser.add_argument("--upstream-port", type=int)
    parser.add_argument("--token")
    parser.add_argument("--port", type=int)
    parser.add_argument("--jwks")
    parser.add_argument("--issuer")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--overhead-requests", type=int, default=4000)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--redis", default=os.environ.get("MCPWARD_BENCH_REDIS"))
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument(
        "--before",
        metavar="SRC",
        help="also run the guard and the gateway from this src directory (e.g. a worktree "
        "of the commit before a change), in the same rounds",
    )
    parser.add_argument("--skip-in-process", action="store_true")
    args = parser.parse_args()
    if args.serve == "pipe":
        serve_pipe(args.port, args.upstream_port)
        return
    if args.serve == "http-floor":
        serve_http_floor(args.port, args.upstream_port, args.token, TOOL)
        return
    if args.serve:
        serve(args.serve, args.port, args.jwks, args.issuer)
        return
    if args.count:
        asyncio.run(count_requests(args.count, args.requests))
        return
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    log(f"load average before: {os.getloadavg()[0]:.2f}")

    async def in_process() -> None:
        await decision(args, key)
        await overhead(args, key)

    if not args.skip_in_process:
        asyncio.run(in_process())
        if not args.skip_instructions:
            instruction_counts(args)
    if not args.skip_throughput:
        throughput(args, key)
    log(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
