"""Benchmark of the mcpward guard, every figure measured in this one run.

1. Throughput: the demo tool (``search_orders``) served by the ``mcp`` SDK unprotected,
   behind the guard, and behind the gateway; requests/s, p50 and p99 for each, and ratios
   against the unprotected baseline. Each server runs in its own process; the load comes
   from this one (httpx, keep-alive, N concurrent workers). Rounds are interleaved and
   the median round is reported, so drift on the machine hits every variant alike.
2. The guard's own decision latency in-process: a warm token (verified-token cache hit;
   revocation and rate limit still applied) and a token seen for the first time (ES256
   signature verify), against a bare joserfc verify as the baseline.
3. With ``--redis URL``: the same decision with the Redis rate limiter carrying the
   revocation check (one round trip).
4. The guard's overhead per request in-process: the same ``mcp`` SDK app driven directly
   as ASGI (prepared scope, receive and send; no HTTP, no sockets), unprotected and
   protected, interleaved; the difference of the medians. Far less noisy than the HTTP
   throughput ratio on a small shared machine. Also with an audit sink writing every
   event (to ``/dev/null``), since the throughput servers have none.

    .venv/bin/python bench/guard.py [--seconds 4] [--concurrency 16] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import ECKey

ISSUER = "https://as.bench.test"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "search_orders", "arguments": {"query": "acme"}},
}
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


def mint(key: ECKey, resource: str, scope: str = "orders.read") -> str:
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "sub": "bench",
        "aud": resource,
        "client_id": "bench",
        "scope": scope,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 3600,
    }
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key)


# -- server side (run as a subprocess) ------------------------------------------------------


def serve(kind: str, port: int, jwks: str, upstream: str | None) -> None:
    import uvicorn

    from mcpward.demo import create_demo_app
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard, protect
    from mcpward.guard.gateway import create_gateway

    app, manifest = create_demo_app(stateless_http=True, json_response=True)
    resource = f"http://127.0.0.1:{port}/mcp"
    if kind == "sdk-auth":
        app = _sdk_auth_app(resource, jwks)
    elif kind != "plain":
        guard = make_guard(
            issuer=ISSUER,
            resource=resource,
            manifest=manifest,
            keys=StaticKeys(json.loads(jwks)),
            # Limits on, but high enough not to refuse the benchmark's own traffic.
            rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
        )
        if kind == "protected":
            app = protect(app, guard)
        else:
            assert upstream is not None
            app = create_gateway(upstream, guard)
    # The SDK sets INFO logging up; per-request log lines would be what we measure.
    logging.getLogger().setLevel(logging.WARNING)
    for name in ("httpx", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="error", access_log=False, ws="none")


def _sdk_auth_app(resource: str, jwks: str) -> Any:
    """The same server with the ``mcp`` SDK's own bearer auth and an ES256 JWT verifier
    (joserfc, no cache: what an SDK user writes), for comparison."""
    from joserfc.jwk import KeySet
    from mcp.server.auth.provider import AccessToken
    from mcp.server.auth.settings import AuthSettings
    from pydantic import AnyHttpUrl

    from mcpward.demo import create_demo_server

    keys = KeySet.import_key_set(json.loads(jwks))

    class Verifier:
        async def verify_token(self, token: str) -> AccessToken | None:
            try:
                claims = jwt.decode(token, keys, algorithms=["ES256"]).claims
            except Exception:
                return None
            if claims.get("iss") != ISSUER or claims.get("aud") != resource:
                return None
            if claims.get("exp", 0) < time.time():
                return None
            return AccessToken(
                token=token,
                client_id=claims["client_id"],
                scopes=claims["scope"].split(),
                expires_at=claims["exp"],
                resource=resource,
                subject=claims["sub"],
            )

    server = create_demo_server(
        token_verifier=Verifier(),
        auth=AuthSettings(
            issuer_url=AnyHttpUrl(ISSUER),
            resource_server_url=AnyHttpUrl(resource),
            required_scopes=["orders.read"],
            validate_token_resource=False,  # the verifier checks aud itself
        ),
    )
    return server.streamable_http_app(stateless_http=True, json_response=True)


# -- load side --------------------------------------------------------------------------------


async def load(url: str, token: str | None, seconds: float, concurrency: int) -> dict[str, float]:
    headers = dict(HEADERS)
    if token:
        headers["authorization"] = f"Bearer {token}"
    body = json.dumps(CALL).encode()
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        # Warm up: connections, caches, the SDK's first-call paths.
        for _ in range(50):
            await http.post(url, content=body, headers=headers)
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                r = await http.post(url, content=body, headers=headers)
                latencies.append(time.perf_counter() - started)
                if r.status_code != 200:
                    errors += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50": latencies[len(latencies) // 2] * 1000,
        "p99": latencies[int(len(latencies) * 0.99)] * 1000,
        "errors": errors,
    }


def start(kind: str, port: int, jwks: str, upstream: str | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--jwks", jwks]
    if upstream:
        args += ["--upstream", upstream]
    proc = subprocess.Popen(args)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{kind} server did not start")


async def throughput(args: argparse.Namespace, key: ECKey) -> None:
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    ports = {k: free_port() for k in ("plain", "protected", "sdk-auth", "gateway")}
    plain_url = f"http://127.0.0.1:{ports['plain']}/mcp"
    procs = [
        start("plain", ports["plain"], jwks),
        start("protected", ports["protected"], jwks),
        start("sdk-auth", ports["sdk-auth"], jwks),
        start("gateway", ports["gateway"], jwks, upstream=plain_url),
    ]
    try:
        rounds: dict[str, list[dict[str, float]]] = {k: [] for k in ports}
        for _ in range(args.rounds):
            for kind, port in ports.items():
                url = f"http://127.0.0.1:{port}/mcp"
                token = mint(key, url) if kind != "plain" else None
                rounds[kind].append(await load(url, token, args.seconds, args.concurrency))
    finally:
        for p in procs:
            p.terminate()
            p.wait()
    med = {k: _median_round(v) for k, v in rounds.items()}
    print(
        f"\n== throughput: tools/call search_orders, mcp SDK stateless JSON, "
        f"{args.concurrency} concurrent, {args.rounds} x {args.seconds:.0f} s rounds (median)"
    )
    # Ratios are taken within each round (variants run back to back), then the median
    # over rounds: noise from other work on the machine cancels better than across rounds.
    ratios = {
        k: statistics.median(r["rps"] / p["rps"] for r, p in zip(v, rounds["plain"], strict=True))
        for k, v in rounds.items()
    }
    print(f"{'variant':<34}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'ratio':>8}{'errors':>8}")
    names = {
        "plain": "mcp SDK, unprotected (baseline)",
        "protected": "mcp SDK + mcpward guard",
        "sdk-auth": "mcp SDK's own bearer auth (ES256)",
        "gateway": "mcpward gateway -> mcp SDK",
    }
    for kind, m in med.items():
        print(
            f"{names[kind]:<34}{m['rps']:>9.0f}{m['p50']:>9.2f}{m['p99']:>9.2f}"
            f"{ratios[kind]:>8.3f}{m['errors']:>8.0f}"
        )
    print(
        f"guard/unprotected = {ratios['protected']:.3f} (goal >= 0.95)   "
        f"SDK auth/unprotected = {ratios['sdk-auth']:.3f}   "
        f"gateway/direct = {ratios['gateway']:.3f}"
    )


def _median_round(results: list[dict[str, float]]) -> dict[str, float]:
    ordered = sorted(results, key=lambda r: r["rps"])
    return ordered[len(ordered) // 2]


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
    the response collected in memory."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
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


async def overhead(args: argparse.Namespace, key: ECKey) -> None:
    from mcpward.audit import AuditLog, FileSink
    from mcpward.demo import create_demo_app
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard, protect

    resource = "http://127.0.0.1:8000/mcp"
    jwks = {"keys": [key.as_dict(private=False)]}
    token = mint(key, resource)
    for name in ("httpx", "mcp"):
        logging.getLogger(name).setLevel(logging.WARNING)

    def guarded(audit: AuditLog | None) -> Any:
        # The throughput benchmark's configuration, on its own copy of the demo app.
        app, manifest = create_demo_app(stateless_http=True, json_response=True)
        guard = make_guard(
            issuer=ISSUER,
            resource=resource,
            manifest=manifest,
            keys=StaticKeys(jwks),
            rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
            audit=audit,
        )
        return protect(app, guard)

    audit = AuditLog([FileSink(os.devnull)])
    drivers = {
        "plain": _AsgiDriver(create_demo_app(stateless_http=True, json_response=True)[0], None),
        "guard": _AsgiDriver(guarded(None), token),
        "guard+audit": _AsgiDriver(guarded(audit), token),
    }
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
    labels = {
        "plain": "mcp SDK app, unprotected",
        "guard": "mcp SDK app + guard",
        "guard+audit": "mcp SDK app + guard + audit to a file",
    }
    for name, label in labels.items():
        extra = "" if name == "plain" else f"{med[name] - med['plain']:>10.1f}"
        print(f"{label:<44}{med[name]:>10.1f}{extra}")
    print(f"guard overhead = {med['guard'] - med['plain']:.1f} µs per request (median)")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--serve", choices=["plain", "protected", "sdk-auth", "gateway"])
    parser.add_argument("--port", type=int)
    parser.add_argument("--jwks")
    parser.add_argument("--upstream")
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--overhead-requests", type=int, default=4000)
    parser.add_argument("--decisions", type=int, default=5000)
    parser.add_argument("--redis", default=os.environ.get("MCPWARD_BENCH_REDIS"))
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.jwks, args.upstream)
        return
    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})

    async def run() -> None:
        await decision(args, key)
        await overhead(args, key)
        if not args.skip_throughput:
            await throughput(args, key)

    asyncio.run(run())


if __name__ == "__main__":
    main()
