"""What DPoP (RFC 9449) costs, each figure against its bearer baseline in the same run.

1. The guard, in-process: the decision for a warm token (verified-token cache hit;
   scopes, revocation, rate limit applied) presented as a bearer token, and the same
   token DPoP-bound with a fresh proof per request (proof verified, ``jti`` spent); the
   difference is the proof's cost, quoted against one ES256 verify (joserfc's decode of
   a JWT, what the guard pays for a token it has not seen; the issue's goal: added cost
   <= 1.2 x that). Rounds are interleaved and medians reported. Also the proof check on
   its own, and with a real Redis (started here) the same two decisions, where the proof's
   ``jti`` rides in the rate-limit script: no round trip added.
2. The token endpoint: ``mcpward serve`` (SQLite, one process) answering
   client_credentials with and without a DPoP proof, ``wrk -t2 -c16`` with every response
   checked (a 200 carrying a DPoP token), runs interleaved, medians. Each DPoP request
   carries its own proof (one-time use), made before the run and read by wrk's Lua.

Run from the repository root: ``.venv/bin/python bench/dpop.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import quote

from _harness import (
    WRK,
    BenchError,
    Processes,
    Wrk,
    WrkResult,
    assert_clean_log,
    basic,
    log,
    mcpward_cli,
    mcpward_env,
    print_table,
    serve_mcpward,
    static_post_lua,
    summary,
)
from joserfc import jwt
from joserfc.jwk import ECKey

from tests.services import free_port, redis_server

ISSUER = "https://as.bench.test"
RESOURCE = "http://127.0.0.1/mcp"
CALL = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/call",
    "params": {"name": "search_orders", "arguments": {"query": "acme"}},
}
THREADS, CONNECTIONS, DURATION, RUNS, WARMUP = 2, 16, 5, 3, 2
WRK_LOAD = Wrk(threads=THREADS, connections=CONNECTIONS)
CLIENT = "bench-m2m"


def mint(key: ECKey, jkt: str | None = None) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "bench",
        "aud": RESOURCE,
        "client_id": "bench",
        "scope": "orders.read",
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 3600,
    }
    if jkt is not None:
        claims["cnf"] = {"jkt": jkt}
    return jwt.encode({"alg": "ES256", "typ": "at+jwt", "kid": key.kid}, claims, key)


def med_us(samples: list[int]) -> float:
    return statistics.median(samples) / 1000


# -- 1. the guard ----------------------------------------------------------------------------


async def guard_costs(n: int, rounds: int, redis_url: str | None) -> list[list[str]]:
    from mcpward.demo import demo_manifest
    from mcpward.dpop import ProofKey, ProofVerifier
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard
    from mcpward.guard._jsonrpc import parse
    from mcpward.revocation import InProcessRevocations

    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    jwks = {"keys": [key.as_dict(private=False)]}
    client_key = ProofKey.generate()
    bearer_token, bound_token = mint(key), mint(key, client_key.jkt)
    calls = parse(json.dumps(CALL).encode())

    def guard_with(**kwargs: Any) -> Any:
        return make_guard(
            issuer=ISSUER,
            resource=RESOURCE,
            manifest=demo_manifest(),
            keys=StaticKeys(jwks),
            rate_limits=RateLimits(per_token=Limit(10_000_000, 60)),
            **kwargs,
        )

    async def bearer(guard: Any) -> None:
        identity, _ = await guard.authenticate([f"Bearer {bearer_token}".encode()], b"")
        await guard.authorize(identity, calls)

    async def dpop(guard: Any, proof: bytes) -> None:
        identity, checked = await guard.authenticate(
            [f"DPoP {bound_token}".encode()], b"", dpop=[proof], method="POST", path="/mcp"
        )
        await guard.authorize(identity, calls, checked)

    def proofs(count: int) -> list[bytes]:
        # Signed before the clock starts: a client's cost, not the guard's.
        return [
            client_key.proof("POST", RESOURCE, access_token=bound_token).encode()
            for _ in range(count)
        ]

    async def measure(guard: Any) -> tuple[list[int], list[int]]:
        await bearer(guard)
        await dpop(guard, proofs(1)[0])
        plain: list[int] = []
        bound: list[int] = []
        for _ in range(rounds):
            batch = proofs(n)
            for _ in range(n):
                t = time.perf_counter_ns()
                await bearer(guard)
                plain.append(time.perf_counter_ns() - t)
            for proof in batch:
                t = time.perf_counter_ns()
                await dpop(guard, proof)
                bound.append(time.perf_counter_ns() - t)
        return plain, bound

    plain, bound = await measure(guard_with(revocations=InProcessRevocations()))

    # Baselines: one ES256 verify (a JWT the guard has not seen), and the proof alone.
    public = ECKey.import_key(key.as_dict(private=False))
    fresh = [mint(key) for _ in range(n)]
    verifier = ProofVerifier()
    bare: list[int] = []
    proof_only: list[int] = []
    for _ in range(rounds):
        for token in fresh:
            t = time.perf_counter_ns()
            jwt.decode(token, public, algorithms=["ES256"])
            bare.append(time.perf_counter_ns() - t)
        batch = [p.decode() for p in proofs(n)]
        for proof in batch:
            t = time.perf_counter_ns()
            verifier.verify([proof], method="POST", url=RESOURCE, access_token=bound_token)
            proof_only.append(time.perf_counter_ns() - t)

    added = med_us(bound) - med_us(plain)
    rows = [
        ["bearer token, warm (baseline)", f"{med_us(plain):.1f}", ""],
        ["DPoP-bound token, warm, fresh proof", f"{med_us(bound):.1f}", ""],
        ["added by the proof", f"{added:.1f}", f"{added / med_us(bare):.2f}"],
        ["the proof check alone (ProofVerifier)", f"{med_us(proof_only):.1f}", ""],
        ["one ES256 verify (joserfc decode)", f"{med_us(bare):.1f}", "1.00"],
    ]
    if redis_url:
        from mcpward.state import open_redis, over_redis

        shared = over_redis(open_redis(redis_url))
        redis_guard = guard_with(
            revocations=shared.revocations, rate_limiter=shared.rate_limiter, replay=shared.replay
        )
        r_plain, r_bound = await measure(redis_guard)
        script, script_once = await redis_script(shared.rate_limiter, n, rounds)
        rows += [
            ["Redis: bearer, warm (one script)", f"{med_us(r_plain):.1f}", ""],
            ["Redis: DPoP, warm (jti in the same script)", f"{med_us(r_bound):.1f}", ""],
            ["Redis: added by the proof", f"{med_us(r_bound) - med_us(r_plain):.1f}", ""],
            ["Redis script alone: limit + revocation", f"{med_us(script):.1f}", ""],
            ["Redis script alone: ... + the proof's jti", f"{med_us(script_once):.1f}", ""],
        ]
        await shared.aclose()
    return rows


async def redis_script(limiter: Any, n: int, rounds: int) -> tuple[list[int], list[int]]:
    """The one round trip on its own, without and with a proof's jti (SET NX) in it."""
    from mcpward.revocation import TokenRef
    from mcpward.state import Bucket, Limit

    buckets = [Bucket("t:bench", Limit(10_000_000, 60), "token")]
    ref = TokenRef(jti="j", family=None, subject="s", client_id="c", issued_at=time.time())
    keys = [f"dpop:rs:bench:{uuid.uuid4().hex}" for _ in range(n * rounds)]
    plain: list[int] = []
    once: list[int] = []
    for i in range(n * rounds):
        t = time.perf_counter_ns()
        await limiter.hit_unless_revoked(buckets, ref, time.time())
        plain.append(time.perf_counter_ns() - t)
        t = time.perf_counter_ns()
        await limiter.hit_first_use(buckets, ref, keys[i], time.time() + 90, time.time())
        once.append(time.perf_counter_ns() - t)
    return plain, once


# -- 2. the token endpoint -------------------------------------------------------------------

_LUA_PROOFS = r"""
function init(args)
  bad = 0
  starved = 0
  sample = ""
  queue = {}
  head = 1
  tail = 0
  local f = assert(io.open([==[DIR]==] .. "/proofs-" .. tid .. ".txt", "r"))
  for line in f:lines() do
    tail = tail + 1
    queue[tail] = line
  end
  f:close()
end
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = [==[AUTH]==],
}
function request()
  local proof = "starved"
  if head <= tail then
    proof = queue[head]
    queue[head] = nil
    head = head + 1
  else
    starved = starved + 1
  end
  headers["DPoP"] = proof
  return wrk.format("POST", "/token", headers, [==[BODY]==])
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"token_type":"DPoP"', 1, true) then
    fail(status, body)
  end
end
"""


def dpop_script(work: Path, run: str, base: str, auth: str, body: str, count: int) -> Path:
    """A wrk script whose every request carries its own fresh proof (made now)."""
    from _harness import _LUA_REPORT

    from mcpward.dpop import ProofKey

    key = ProofKey.generate()
    folder = work / f"proofs-{run}"
    folder.mkdir()
    per_thread = count // THREADS + CONNECTIONS
    for t in range(THREADS):
        lines = [key.proof("POST", base + "/token") for _ in range(per_thread)]
        (folder / f"proofs-{t + 1}.txt").write_text("\n".join(lines) + "\n")
    script = folder / "dpop.lua"
    lua = _LUA_PROOFS.replace("DIR", str(folder)).replace("AUTH", auth).replace("BODY", body)
    script.write_text(_LUA_REPORT + lua)
    return script


def token_endpoint(work: Path) -> list[list[str]]:
    procs = Processes()
    try:
        data_dir = work / "mcpward"
        data_dir.mkdir(mode=0o700)
        env = mcpward_env(data_dir, None)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env["MCPWARD_ISSUER"] = base
        resource = base + "/mcp"
        mcpward_cli(["resources", "add", resource, "--scope", "orders.read=Read"], env)
        created = mcpward_cli(
            ["clients", "create", CLIENT, "--scope", "orders.read", "--json"], env
        )
        auth = basic(CLIENT, str(json.loads(created)["client_secret"]))
        body = (
            f"grant_type=client_credentials&scope=orders.read&resource={quote(resource, safe='')}"
        )
        server_log = serve_mcpward(procs, env, data_dir, port)
        bearer_script = work / "bearer.lua"
        bearer_script.write_text(static_post_lua(body, auth, '"token_type":"Bearer"'))
        url = base + "/token"
        warm = WRK_LOAD.run(url, bearer_script, WARMUP, "bearer warm-up")
        # Proofs for half again the bearer rate: DPoP is not faster, so they suffice.
        budget = int(warm.rate * DURATION * 1.5)
        WRK_LOAD.run(
            url, dpop_script(work, "warm", base, auth, body, int(warm.rate * WARMUP * 1.5)),
            WARMUP, "dpop warm-up",
        )  # fmt: skip
        plain: list[WrkResult] = []
        bound: list[WrkResult] = []
        for run in range(RUNS):
            plain.append(WRK_LOAD.run(url, bearer_script, DURATION, "bearer"))
            script = dpop_script(work, str(run), base, auth, body, budget)
            bound.append(WRK_LOAD.run(url, script, DURATION, "dpop"))
            rates = f"bearer {plain[-1].rate:,.0f}/s, DPoP {bound[-1].rate:,.0f}/s"
            log(f"run {run + 1}/{RUNS}: {rates}")
        assert_clean_log("mcpward", server_log)
    finally:
        procs.stop_all()
    ratio = statistics.median(b.rate / p.rate for b, p in zip(bound, plain, strict=True))
    return [
        ["client_credentials, bearer (baseline)", *summary(plain), "1.00"],
        ["client_credentials, DPoP proof", *summary(bound), f"{ratio:.2f}"],
    ]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-http", action="store_true", help="skip the token endpoint")
    args = parser.parse_args()
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mcpward-bench-dpop-"))
    try:
        with redis_server() as redis_url:
            rows = asyncio.run(guard_costs(args.decisions, args.rounds, redis_url))
        print()
        print_table(
            f"guard decision in-process, {args.rounds} x {args.decisions} interleaved, medians",
            ["", "median µs", "x ES256 verify"],
            rows,
        )
        if not args.no_http:
            if not Path(WRK).exists():
                print(f"{WRK} not found: install the Debian package wrk", file=sys.stderr)
                return 2
            print_table(
                f"token endpoint, mcpward serve (SQLite), wrk -t{THREADS} -c{CONNECTIONS}, "
                f"{RUNS} x {DURATION} s interleaved, medians",
                ["", "tokens/s", "p50 ms", "p99 ms", "runs tokens/s", "vs bearer"],
                token_endpoint(work),
            )
    except BenchError as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Total run time {time.monotonic() - started:.0f} s (a shared machine: quote ratios).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
