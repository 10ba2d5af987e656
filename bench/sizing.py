"""Sizing: what one vCPU of each mcpward process sustains, in the form Keycloak publishes.

Every measured process is pinned to CPU 1; the load generators, PostgreSQL and the
gateway's upstream run on CPU 0. Per row: the rate one core sustains (median of runs),
p50/p99 latency, and database work per 100 requests from PostgreSQL's own statistics
(``pg_stat_database``: committed transactions and rows inserted + updated + deleted),
and how busy the measured process kept its core (near 100 %: the rate is the core's).

1. client_credentials grants (wrk, 16 connections, every response checked);
2. refresh-token rotations (wrk, 16 one-time-use chains, as bench/token_endpoint.py);
3. sign-ins: the real pages over HTTP as a browser posts them (GET /authorize, the login
   form with its CSRF token, the consent form, then the code exchanged at /token), each
   by a new session; argon2id verifies every password; each user's consent is given
   (and remembered) in the warm-up, so the measured sign-ins are returning users';
4. guard decisions in-process (warm token: revocation and rate limit still applied);
5. gateway requests: ``mcpward gateway`` (uvloop, httptools, its own pool) in front of a
   canned-answer upstream on CPU 0, so the gateway's core is the one saturated.

    .venv/bin/python bench/sizing.py [--seconds 5] [--runs 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode

import httpx
from _harness import (
    BenchError,
    Processes,
    Wrk,
    WrkResult,
    assert_clean_log,
    basic,
    json_post_lua,
    log,
    mcpward_cli,
    median,
    pin,
    print_table,
    static_post_lua,
    tail,
)
from token_endpoint import (
    CC_CLIENT,
    SCOPE,
    CodeMinter,
    Target,
    cc_body,
    start_mcpward,
    write_chain_script,
)

from tests.services import free_port, postgres_server

MEASURED = {1}  # the core every measured process runs on
LOAD = {0}  # load generators, PostgreSQL, the gateway's upstream
WRK = Wrk(threads=2, connections=16, cpus="0")  # as bench/token_endpoint.py (its chains)
APP = "bench-app"
REDIRECT = "http://127.0.0.1:9/callback"
PASSWORD = "correct horse battery staple"
T = TypeVar("T")


@dataclass
class Row:
    what: str
    rates: list[float]
    p50: list[float]
    p99: list[float]
    commits: float | None = None  # per 100 requests
    rows: float | None = None
    busy: float | None = None  # the measured process's CPU time / wall time, measured runs

    def cells(self) -> list[str]:
        # None: the process never touches the database.
        per = "none" if self.commits is None else f"{self.commits:,.0f}"
        rows = "none" if self.rows is None else f"{self.rows:,.0f}"
        busy = "100 (a loop)" if self.busy is None else f"{100 * self.busy:.0f}"
        rate = median(self.rates)
        shown = f"{rate:,.0f}" if rate >= 100 else f"{rate:,.1f}"
        return [
            self.what,
            shown,
            _ms(median(self.p50)),
            _ms(median(self.p99)),
            per,
            rows,
            busy,
            " / ".join(f"{r:,.0f}" if r >= 100 else f"{r:.1f}" for r in self.rates),
        ]


def _ms(value: float) -> str:
    return f"{value:.1f}" if value >= 1 else f"{value:.3f}"


# -- PostgreSQL's counters -----------------------------------------------------------------


class PgStats:
    """Committed transactions and rows written in the database, from pg_stat_database.
    A backend publishes its counters at most once a second and within 10 s of going idle,
    so a reading waits until they stop moving."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy.engine import make_url

        url = make_url(database_url)
        self.args = ["-h", str(url.host), "-p", str(url.port), "-U", str(url.username)]
        self.database = str(url.database)
        self.reads = 0  # each reading is a committed transaction of its own

    def _read(self) -> tuple[int, int]:
        self.reads += 1
        query = (
            "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted "
            "FROM pg_stat_database WHERE datname = current_database()"
        )
        out = subprocess.run(
            ["psql", *self.args, "-d", self.database, "-Atc", query],
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
        commits, rows = out.split("|")
        return int(commits), int(rows)

    def settled(self) -> tuple[int, int]:
        last = self._read()
        stable_since = time.monotonic()
        deadline = stable_since + 30
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self._read()
            if now[1] != last[1]:
                last, stable_since = now, time.monotonic()
            elif time.monotonic() - stable_since >= 11:
                return now
        return last


def process_cpu_ns(pid: int) -> int:
    """CPU time of process ``pid``, its threads that have ended included (argon2's are
    started and joined per hash): utime + stime of /proc/PID/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return ticks * 1_000_000_000 // os.sysconf("SC_CLK_TCK")


class Busy:
    """How busy the measured process kept its core while ``around``'s function ran:
    its CPU time (all threads) over the wall time. Near 100: the rate is what one core
    sustains; well below: something else (the database, the load) was the bottleneck."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.share = 0.0

    def around(self, run: Callable[[], T]) -> Callable[[], T]:
        def measured() -> T:
            cpu, wall = process_cpu_ns(self.pid), time.monotonic_ns()
            out = run()
            self.share = (process_cpu_ns(self.pid) - cpu) / (time.monotonic_ns() - wall)
            return out

        return measured


def per_hundred(
    stats: PgStats,
    warm_up: Callable[[], object],
    run: Callable[[], list[tuple[int, float, float, float]]],
) -> tuple[list[tuple[int, float, float, float]], float, float]:
    """``warm_up``, then ``run`` (its results: requests, rate, p50, p99 per run) between
    two settled readings; the commits and rows written per 100 measured requests. The
    readings' own queries (one transaction each) are subtracted."""
    warm_up()
    c0, r0 = stats.settled()
    reads = stats.reads
    results = run()
    c1, r1 = stats.settled()
    requests = sum(r[0] for r in results)
    commits = max(0, c1 - c0 - (stats.reads - reads))
    return results, 100 * commits / requests, 100 * (r1 - r0) / requests


# -- the rows -------------------------------------------------------------------------------


def wrk_runs(url: str, script: Path, seconds: int, runs: int, label: str) -> list[WrkResult]:
    results = []
    for i in range(runs):
        result = WRK.run(url, script, seconds, label)
        log(f"{label} {i + 1}/{runs}: {result.rate:,.1f}/s p99 {result.p99_ms:.1f} ms")
        results.append(result)
    return results


def as_tuples(results: list[WrkResult]) -> list[tuple[int, float, float, float]]:
    return [(r.requests, r.rate, r.p50_ms, r.p99_ms) for r in results]


def row(
    what: str,
    results: list[tuple[int, float, float, float]],
    c: float | None = None,
    r: float | None = None,
    busy: float | None = None,
) -> Row:
    return Row(
        what,
        [x[1] for x in results],
        [x[2] for x in results],
        [x[3] for x in results],
        c,
        r,
        busy,
    )


async def sign_in(http: httpx.AsyncClient, target: Target, username: str) -> None:
    """One person signing in from a new browser session: the pages' forms as posted by a
    browser, then the code exchanged for tokens."""
    verifier = secrets.token_urlsafe(48)
    from mcpward.server._rfc7636 import s256

    params = {
        "response_type": "code",
        "client_id": APP,
        "redirect_uri": REDIRECT,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "scope": SCOPE,
        "state": secrets.token_urlsafe(8),
        "resource": target.resource,
    }
    http.cookies.clear()
    page = await http.get("/authorize?" + urlencode(params))
    _expect(page, 200, "the login page")
    login = await http.post(
        "/login",
        data={
            "csrf": _field(page.text, "csrf"),
            "request": _field(page.text, "request"),
            "username": username,
            "password": PASSWORD,
        },
    )
    _expect(login, 303, "the login form")
    location = login.headers["location"]
    # Redirects within the pages (resuming the authorization request), then either the
    # consent page or the app's callback (a consent remembered from an earlier sign-in).
    while not location.startswith(REDIRECT):
        page = await http.get(location)
        if page.status_code in (302, 303):
            location = page.headers["location"]
            continue
        _expect(page, 200, "the consent page")
        pairs = [
            ("csrf", _field(page.text, "csrf")),
            ("request", _field(page.text, "request")),
            ("decision", "approve"),
            ("remember", "yes"),
            *(("scope", s) for s in re.findall(r'name="scope" value="([^"]+)"', page.text)),
        ]
        done = await http.post(
            "/consent",
            content=urlencode(pairs),
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        _expect(done, 303, "the consent form")
        location = done.headers["location"]
    code = httpx.URL(location).params["code"]
    token = await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "client_id": APP,
            "code": code,
            "code_verifier": verifier,
            "redirect_uri": REDIRECT,
            "resource": target.resource,
        },
    )
    _expect(token, 200, "the code exchange")
    if "access_token" not in token.json():
        raise BenchError(f"no access token: {token.text[:200]}")


async def first_sign_ins(target: Target, users: list[str]) -> None:
    """Every user signs in once and consents (remembered): the warm-up of the sign-ins."""
    async with httpx.AsyncClient(base_url=target.base_url, timeout=30) as http:
        for name in users:
            await sign_in(http, target, name)


def _expect(response: httpx.Response, status: int, what: str) -> None:
    if response.status_code != status:
        raise BenchError(f"{what}: {response.status_code} {response.text[:300]}")


def _field(page: str, name: str) -> str:
    import html

    match = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    if match is None:
        raise BenchError(f"no {name} field in the page")
    return html.unescape(match.group(1))


async def sign_ins(
    target: Target, users: list[str], seconds: int, concurrency: int
) -> tuple[int, float, float, float]:
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    queue = list(users)

    async def worker(i: int) -> None:
        async with httpx.AsyncClient(base_url=target.base_url, timeout=30) as http:
            n = i
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                await sign_in(http, target, queue[n % len(queue)])
                latencies.append(time.perf_counter() - started)
                n += concurrency

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    elapsed = time.perf_counter() - began
    latencies.sort()
    return (
        len(latencies),
        len(latencies) / elapsed,
        statistics.median(latencies) * 1000,
        latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    )


def decisions(seconds: int, runs: int) -> list[tuple[int, float, float, float]]:
    """The guard's decision loop in a process of its own on the measured core."""
    out = subprocess.run(
        ["taskset", "-c", "1", sys.executable, __file__, "--decisions", str(seconds), str(runs)],
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds * runs + 120,
    ).stdout
    return [(int(n), rate, p50, p99) for n, rate, p50, p99 in json.loads(out)]


def decision_loop(seconds: int, runs: int) -> None:
    from joserfc import jwt
    from joserfc.jwk import ECKey

    from mcpward.demo import demo_manifest
    from mcpward.guard import Limit, RateLimits, StaticKeys, make_guard
    from mcpward.guard._jsonrpc import parse

    key = ECKey.generate_key("P-256", parameters={"kid": "k"})
    resource = "http://127.0.0.1/mcp"
    guard = make_guard(
        issuer="https://as.bench.test",
        resource=resource,
        manifest=demo_manifest(),
        keys=StaticKeys({"keys": [key.as_dict(private=False)]}),
        rate_limits=RateLimits(per_token=Limit(10**9, 60)),
    )
    now = int(time.time())
    token = jwt.encode(
        {"alg": "ES256", "typ": "at+jwt", "kid": "k"},
        {
            "iss": "https://as.bench.test",
            "sub": "u",
            "aud": resource,
            "client_id": "c",
            "scope": SCOPE,
            "jti": "j",
            "iat": now,
            "exp": now + 3600,
        },
        key,
    )
    header = [f"Bearer {token}".encode()]
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search_orders"}}'

    async def go() -> list[tuple[int, float, float, float]]:
        results = []
        for _ in range(runs + 1):  # the first is the warm-up
            times: list[int] = []
            deadline = time.perf_counter() + seconds
            began = time.perf_counter()
            while time.perf_counter() < deadline:
                t = time.perf_counter_ns()
                identity, proof = await guard.authenticate(header, b"")
                await guard.authorize(identity, parse(body), proof)
                times.append(time.perf_counter_ns() - t)
            elapsed = time.perf_counter() - began
            times.sort()
            results.append(
                (
                    len(times),
                    len(times) / elapsed,
                    statistics.median(times) / 1e6,
                    times[int(len(times) * 0.99)] / 1e6,
                )
            )
        return results[1:]

    print(json.dumps(asyncio.run(go())))


# -- main ------------------------------------------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise BenchError(f"no VmHWM for {pid}")


def bench(
    work: Path, database_url: str, args: argparse.Namespace, memory: dict[str, float]
) -> list[Row]:
    procs = Processes()
    stats = PgStats(database_url)
    minter: CodeMinter | None = None
    rows: list[Row] = []
    try:
        target, env = start_mcpward(procs, "mcpward", work, database_url)
        (serve,) = procs.running()
        pin(serve.pid, MEASURED)
        busy = Busy(serve.pid)
        # A public app that people sign in to, and the people.
        mcpward_cli(
            [
                "clients",
                "create",
                APP,
                "--auth-method",
                "none",
                "--grant",
                "authorization_code",
                "--grant",
                "refresh_token",
                "--redirect-uri",
                REDIRECT,
                "--json",
            ],
            env,
        )
        users = [f"user{i}" for i in range(args.users)]
        for name in users:
            subprocess.run(
                [sys.executable, "-m", "mcpward", "users", "add", name, "--password-stdin"],
                input=PASSWORD,
                text=True,
                env=env,
                capture_output=True,
                check=True,
                timeout=60,
            )

        cc_script = work / "cc.lua"
        cc_script.write_text(
            static_post_lua(cc_body(target), basic(CC_CLIENT, target.cc_secret), '"access_token":"')
        )
        url = target.base_url + "/token"
        results, c, r = per_hundred(
            stats,
            lambda: WRK.run(url, cc_script, 2, "cc warm-up"),
            busy.around(lambda: as_tuples(wrk_runs(url, cc_script, args.seconds, args.runs, "cc"))),
        )
        rows.append(row("client_credentials grants", results, c, r, busy.share))

        minter = CodeMinter(target, env)
        minter.open()
        scripts = [write_chain_script(target, minter, work, str(i)) for i in range(args.runs + 1)]

        def rotations() -> list[tuple[int, float, float, float]]:
            out = []
            for i, script in enumerate(scripts[1:]):
                result = WRK.run(url, script, args.seconds, "refresh")
                log(f"refresh {i + 1}/{args.runs}: {result.rate:,.0f}/s")
                out.append(result)
            return as_tuples(out)

        warm = scripts[0]
        results, c, r = per_hundred(
            stats, lambda: WRK.run(url, warm, 2, "refresh warm-up"), busy.around(rotations)
        )
        rows.append(row("refresh-token rotations", results, c, r, busy.share))

        def people() -> list[tuple[int, float, float, float]]:
            out = []
            for i in range(args.runs):
                result = asyncio.run(
                    sign_ins(target, users, args.seconds * 2, args.sign_in_concurrency)
                )
                log(f"sign-ins {i + 1}/{args.runs}: {result[1]:.1f}/s")
                out.append(result)
            return out

        results, c, r = per_hundred(
            stats, lambda: asyncio.run(first_sign_ins(target, users)), busy.around(people)
        )
        # Each user consented once, in the warm-up: measured sign-ins are returning users.
        rows.append(row("sign-ins (login form + code exchange)", results, c, r, busy.share))
        assert_clean_log("mcpward serve", target.log)
        memory["mcpward serve"] = peak_rss_mb(serve.pid)

        results = decisions(args.seconds, args.runs)
        rows.append(row("guard decisions, in-process (warm token)", results))

        rows.append(gateway_row(procs, work, args, memory))
    except BenchError:
        for path in sorted(work.glob("**/*.log")):
            log(f"--- {path.name} (tail)\n{tail(path)}")
        raise
    finally:
        if minter is not None:
            minter.close()
        procs.stop_all()
    return rows


def gateway_row(
    procs: Processes, work: Path, args: argparse.Namespace, memory: dict[str, float]
) -> Row:
    """``mcpward gateway`` on the measured core; a canned upstream and the issuer on the
    load core (they cost far less per request than the gateway)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from joserfc.jwk import ECKey

    import guard as guard_bench

    key = ECKey.generate_key("P-256", parameters={"kid": "bench"})
    jwks = json.dumps({"keys": [key.as_dict(private=False)]})
    issuer_port, upstream_port, gateway_port = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{issuer_port}"
    for kind, port in (("issuer", issuer_port), ("canned", upstream_port)):
        cmd = [sys.executable, guard_bench.__file__, "--serve", kind, "--port", str(port)]
        guard_bench._start(procs, work, kind, [*cmd, "--jwks", jwks, "--issuer", issuer], port)
    gateway = [
        sys.executable,
        "-m",
        "mcpward",
        "gateway",
        "--upstream",
        f"http://127.0.0.1:{upstream_port}/mcp",
        "--issuer",
        issuer,
        "--port",
        str(gateway_port),
        "--rate",
        f"{10**9}/60",
        "--audit",
        f"file:{work / 'gateway-audit.jsonl'}",
    ]
    pid = guard_bench._start(procs, work, "gateway", gateway, gateway_port)
    pin(pid, MEASURED)
    url = f"http://127.0.0.1:{gateway_port}/mcp"
    headers = dict(guard_bench.HEADERS)
    headers["authorization"] = f"Bearer {guard_bench.mint(key, url, issuer=issuer)}"
    script = work / "gateway.lua"
    script.write_text(json_post_lua(json.dumps(guard_bench.CALL), headers, guard_bench.EXPECT))
    WRK.run(url, script, 2, "gateway warm-up")
    busy = Busy(pid)
    results = busy.around(lambda: wrk_runs(url, script, args.seconds, args.runs, "gateway"))()
    assert_clean_log("gateway", work / "gateway.log")
    memory["mcpward gateway"] = peak_rss_mb(pid)
    return row("gateway requests (tools/call, audit on)", as_tuples(results), busy=busy.share)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=8)
    parser.add_argument("--sign-in-concurrency", type=int, default=4)
    parser.add_argument("--decisions", nargs=2, type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.decisions:
        decision_loop(*args.decisions)
        return 0
    if os.cpu_count() is None or os.cpu_count() < 2:  # type: ignore[operator]
        print("sizing needs two CPUs: one measured, one for the load", file=sys.stderr)
        return 2
    # This process and all it starts (PostgreSQL, wrk, the sign-in clients) run on the
    # load core; the measured processes are moved to their own core once started.
    os.sched_setaffinity(0, LOAD)
    started = time.monotonic()
    log(f"load average before: {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory(prefix="mcpward-sizing-") as tmp:
        try:
            with postgres_server() as database_url:
                memory: dict[str, float] = {}
                rows = bench(Path(tmp), database_url, args, memory)
        except BenchError as error:
            print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
            return 1
    load = os.getloadavg()[0]
    print()
    print_table(
        f"Per vCPU: each measured process alone on CPU 1 (load generators, PostgreSQL "
        f"and the gateway's upstream on CPU 0); {args.runs} runs, medians",
        [
            "per vCPU",
            "per second",
            "p50 ms",
            "p99 ms",
            "DB commits /100",  # every committed transaction, reads included
            "DB rows written /100",
            "core busy %",
            "runs",
        ],
        [r.cells() for r in rows],
    )
    print(
        "Peak resident memory: "
        + ", ".join(f"{name} {mb:,.0f} MiB" for name, mb in memory.items())
        + "."
    )
    print(
        f"PostgreSQL {_pg_version()} (fsync off, as the test cluster runs), the same machine; "
        f"load average after: {load:.2f}; {time.monotonic() - started:.0f} s."
    )
    return 0


def _pg_version() -> str:
    from tests.services import _pg_bin

    out = subprocess.run([_pg_bin("postgres"), "--version"], capture_output=True, text=True)
    # "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
    match = re.search(r"\(PostgreSQL\) (\S+)", out.stdout)
    return match.group(1) if match else out.stdout.strip()


if __name__ == "__main__":
    sys.exit(main())
