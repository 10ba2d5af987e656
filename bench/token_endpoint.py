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
import contextlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import httpx
import jwt
from _harness import (
    NODE_DIR,
    ROOT,
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
    median,
    node_binary,
    node_version,
    print_table,
    refresh_chains_lua,
    serve_mcpward,
    static_post_lua,
    summary,
    tail,
    wait_ready,
)

from tests.services import free_port, postgres_server

BASELINE_JS = ROOT / "tests" / "node" / "oidc_provider_m2m.mjs"

CONCURRENCY = 16
THREADS = 2
WRK_LOAD = Wrk(threads=THREADS, connections=CONCURRENCY)
DURATION = 5  # seconds per measured run
RUNS = 3
WARMUP = 2  # seconds
RESOURCE_PATH = "/mcp"
SCOPE = "orders.read"
REDIRECT_URI = "http://127.0.0.1:9/callback"
CC_CLIENT = "bench-m2m"
RT_CLIENT = "bench-agent"


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
    cc: list[WrkResult] = field(default_factory=list)
    rt: list[WrkResult] = field(default_factory=list)


def start_mcpward(
    procs: Processes, name: str, work: Path, database_url: str | None
) -> tuple[Target, dict[str, str]]:
    data_dir = work / name.replace(" ", "-")
    data_dir.mkdir(mode=0o700)
    env = mcpward_env(data_dir, database_url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    resource = base + RESOURCE_PATH
    env["MCPWARD_ISSUER"] = base
    mcpward_cli(
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
    cc = json.loads(mcpward_cli(["clients", "create", CC_CLIENT, "--scope", SCOPE, "--json"], env))
    rt = json.loads(
        mcpward_cli(
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
    target = Target(
        name=name,
        base_url=base,
        resource=resource,
        cc_secret=str(cc["client_secret"]),
        rt_secret=str(rt["client_secret"]),
        log=serve_mcpward(procs, env, data_dir, port),
    )
    return target, env


def start_oidc_provider(procs: Processes, work: Path) -> Target:
    node_bin = node_binary()
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
    script.write_text(refresh_chains_lua(basic(RT_CLIENT, target.rt_secret), chains_dir, "/token"))
    return script


# -- report ------------------------------------------------------------------------------------


def cc_row(target: Target, baseline: Target | None) -> list[str]:
    ratio = "1.00 (baseline)"
    if baseline is not None:
        rate = median([r.rate for r in target.cc])
        ratio = f"{rate / median([r.rate for r in baseline.cc]):.2f}"
    return [target.name, *summary(target.cc), ratio]


def rt_row(target: Target) -> list[str]:
    return [target.name, *summary(target.rt), str(sum(r.requests for r in target.rt))]


# -- main --------------------------------------------------------------------------------------


def bench(work: Path, database_url: str) -> None:
    procs = Processes()
    minters: list[CodeMinter] = []
    try:
        log("starting oidc-provider, mcpward (SQLite), mcpward (PostgreSQL)")
        baseline = start_oidc_provider(procs, work)
        sqlite, sqlite_env = start_mcpward(procs, "mcpward SQLite", work, None)
        pg, pg_env = start_mcpward(procs, "mcpward PostgreSQL", work, database_url)
        targets = [baseline, sqlite, pg]
        cc_scripts: dict[str, Path] = {}
        for target in targets:
            log(f"{target.name}: {check_one_token(target)} token verified against its JWKS")
            script = cc_scripts[target.name] = work / f"cc-{target.name.replace(' ', '-')}.lua"
            script.write_text(
                static_post_lua(
                    cc_body(target),
                    basic(CC_CLIENT, target.cc_secret),
                    expect='"access_token":"',
                )
            )

        # client_credentials: warm up each, then interleave the measured runs.
        for target in targets:
            WRK_LOAD.run(target.base_url + "/token", cc_scripts[target.name], WARMUP, target.name)
        for run in range(RUNS):
            for target in targets:
                result = WRK_LOAD.run(
                    target.base_url + "/token", cc_scripts[target.name], DURATION, target.name
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
            WRK_LOAD.run(target.base_url + "/token", script, WARMUP, target.name + " refresh")
        for run in range(RUNS):
            for target, minter in zip((sqlite, pg), minters, strict=True):
                script = write_chain_script(target, minter, work, str(run))
                result = WRK_LOAD.run(
                    target.base_url + "/token", script, DURATION, target.name + " refresh"
                )
                target.rt.append(result)
                log(
                    f"refresh run {run + 1}/{RUNS} {target.name}: {result.rate:,.0f}/s "
                    f"p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms"
                )
        for target in targets:
            assert_clean_log(target.name, target.log)
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
