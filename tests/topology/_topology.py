"""A production topology on one machine, every part a real process on 127.0.0.1:
PostgreSQL, Redis, N ``mcpward serve`` replicas, M ``mcpward gateway`` processes in front
of one upstream MCP server, HAProxy in front of both, and (optionally) a Loki receiver
that the audit trail is pushed to.

What the replicas share is what the README's deployment section says they must: the
data key, the database, Redis, and the issuer (the load balancer's URL). Each replica has
its own port, data directory, log and audit file. The database is migrated once
(``mcpward db upgrade``) and the replicas start with ``--no-migrate``.

Kinds:

- ``redis``: replicas publish revocations to Redis, gateways read them there (``--redis``);
- ``table``: no Redis; gateways poll the revocations table (``--revocations-db``);
- ``embedded``: one ``mcpward serve --demo`` on SQLite, nothing else (the day-one default).

Every replica runs ``--demo``: the guarded demo MCP server at ``<issuer>/mcp`` is the
in-process guard of each replica. ``MCPWARD_TOPOLOGY_PYTHON`` names the Python whose
``mcpward`` runs in the replicas, gateways and CLI (another checkout's virtualenv, to run
the same tests against older code).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from tests.services import PostgresProcess, RedisProcess, create_database, free_port
from tests.topology._balancer import config, haproxy
from tests.topology._procs import Proc

Kind = Literal["redis", "table", "embedded"]
PUBLIC_CLIENT = "topology-cli"
REDIRECT_URI = "http://127.0.0.1:9/callback"


def default_python() -> str:
    return os.environ.get("MCPWARD_TOPOLOGY_PYTHON") or sys.executable


@dataclass(frozen=True)
class Spec:
    replicas: int = 2
    gateways: int = 2
    kind: Kind = "redis"
    loki: bool = False
    # Seconds between the table gateways' polls of the revocations table; None: the
    # gateway's default.
    poll_interval: float | None = None
    # Seconds a replica or a gateway keeps serving (readiness 503) after SIGTERM before it
    # closes its socket: longer than the balancer's check interval (100 ms).
    drain: float = 0.5
    # Whether the balancer retries a request whose replica refused or dropped it.
    balancer_retries: bool = True
    # MCPWARD_* settings for every replica (and the CLI).
    env: Mapping[str, str] = field(default_factory=dict)
    gateway_args: Sequence[str] = ()
    python: str = field(default_factory=default_python)


class Replica:
    def __init__(
        self, index: int, root: Path, argv: list[str], env: dict[str, str], port: int
    ) -> None:
        self.index = index
        self.port = port
        self.url = f"http://127.0.0.1:{self.port}"
        self.data_dir = replica_dir(root, index)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.audit_path = self.data_dir / "audit.jsonl"
        env = {
            **env,
            "MCPWARD_DATA_DIR": str(self.data_dir),
            "MCPWARD_AUDIT_SINK": f"file:{self.audit_path}",
        }
        self.proc = Proc(
            f"replica {index}",
            [*argv, "--host", "127.0.0.1", "--port", str(self.port)],
            log=self.data_dir / "serve.log",
            env=env,
        )

    def start(self, wait: bool = True) -> None:
        self.proc.start()
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        self.proc.wait_http(self.url + "/readyz")

    def restart(self) -> None:
        """SIGTERM (drain, then graceful shutdown), wait for the exit, start again."""
        self.proc.terminate()
        self.start()

    def kill(self) -> None:
        self.proc.kill()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return read_events(self.audit_path, name)

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")


def replica_dir(root: Path, index: int) -> Path:
    return root / f"replica{index}"


class Gateway:
    def __init__(self, index: int, root: Path, argv: list[str], env: dict[str, str]) -> None:
        self.index = index
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.mcp = self.url + "/mcp"
        self.audit_path = root / f"gateway{index}.audit.jsonl"
        self.proc = Proc(
            f"gateway {index}",
            [*argv, "--port", str(self.port), "--audit", f"file:{self.audit_path}"],
            log=root / f"gateway{index}.log",
            env=env,
        )

    def start(self) -> None:
        self.proc.start()
        self.proc.wait_http(self.url + "/readyz")

    def restart(self) -> None:
        """SIGTERM (drain, then graceful shutdown), wait for the exit, start again."""
        self.proc.terminate()
        self.start()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        return read_events(self.audit_path, name)

    def log(self) -> str:
        return self.proc.log.read_text(errors="replace")


class LokiReceiver:
    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.out = root / "loki.jsonl"
        self.proc = Proc(
            "loki receiver",
            [sys.executable, "-m", "tests.topology.loki_receiver", str(self.port), str(self.out)],
            log=root / "loki.log",
        )

    def start(self) -> None:
        self.proc.start()
        self.proc.wait_http(self.url + "/ready")

    def stop(self) -> None:
        self.proc.kill()

    def lines(self) -> list[dict[str, Any]]:
        """Every accepted line: ``{"labels": {...}, **event}``; rejected pushes fail."""
        found: list[dict[str, Any]] = []
        if not self.out.exists():
            return found
        for raw in self.out.read_text(encoding="utf-8").splitlines():
            entry = json.loads(raw)
            assert "rejected" not in entry, f"Loki would refuse a push: {entry['rejected']}"
            found.append({"labels": entry["labels"], **json.loads(entry["line"])})
        return found


def read_events(path: Path, name: str | None = None) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [e for e in events if name is None or e["event"] == name]


@dataclass(frozen=True)
class Credentials:
    """The demo's user and machine client (what ``mcpward serve --demo`` provisions)."""

    username: str
    password: str = field(default="", repr=False)
    agent_id: str = "demo-agent"
    agent_secret: str = field(default="", repr=False)


class Topology:
    """Started by :func:`topology`; every part is reachable as an attribute."""

    def __init__(self, spec: Spec, root: Path) -> None:
        self.spec = spec
        self.root = root
        self.postgres: PostgresProcess | None = None
        self.redis: RedisProcess | None = None
        self.loki: LokiReceiver | None = None
        self.database_url = ""
        self.replicas: list[Replica] = []
        self.gateways: list[Gateway] = []
        self.balancer: Proc | None = None
        self.upstream: Proc | None = None
        self.issuer = ""
        # The gateways' resource (the balancer's MCP URL) and the replicas' demo resource.
        self.resource = ""
        self.demo_resource = ""
        self.credentials = Credentials("")
        self.public_client = PUBLIC_CLIENT
        self.redirect_uri = REDIRECT_URI
        self.env: dict[str, str] = {}

    # -- the operator's command line, as every replica is configured -----------------

    def cli(self, *args: str, stdin: str | None = None, check: bool = True) -> str:
        proc = subprocess.run(
            [self.spec.python, "-m", "mcpward", *args],
            env={**self.env, "MCPWARD_AUDIT_SINK": "stderr"},
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(f"mcpward {' '.join(args)} failed:\n{proc.stderr}")
        return proc.stdout

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, "--json"))

    # -- life cycle ----------------------------------------------------------------

    def _start(self, stack: ExitStack) -> None:
        spec = self.spec
        embedded = spec.kind == "embedded"
        if not embedded:
            self.postgres = PostgresProcess()
            stack.callback(self.postgres.close)
            self.postgres.start()
            self.database_url = create_database(self.postgres.url, "mcpward")
        if spec.kind == "redis":
            self.redis = RedisProcess()
            stack.callback(self.redis.close)
            self.redis.start()
        if spec.loki:
            self.loki = LokiReceiver(self.root)
            stack.callback(self.loki.stop)
            self.loki.start()

        auth_port = free_port()
        mcp_port = free_port()
        replica_count = 1 if embedded else spec.replicas
        gateway_count = 0 if embedded else spec.gateways
        ports = [free_port() for _ in range(replica_count)]
        # Embedded: the one process is the issuer; otherwise the balancer is.
        self.issuer = f"http://127.0.0.1:{ports[0] if embedded else auth_port}"
        self.demo_resource = self.issuer + "/mcp"
        self.resource = f"http://127.0.0.1:{mcp_port}/mcp" if gateway_count else ""
        self.env = self._replica_env()
        # The CLI's data directory: embedded, the process's own (its SQLite file, its key).
        cli_dir = replica_dir(self.root, 0) if embedded else self.root / "cli"
        self.env["MCPWARD_DATA_DIR"] = str(cli_dir)

        if not embedded:
            self.cli("db", "upgrade")
        self.cli(
            "clients", "create", PUBLIC_CLIENT, "--auth-method", "none",
            "--redirect-uri", REDIRECT_URI, "--grant", "authorization_code",
            "--grant", "refresh_token",
        )  # fmt: skip
        if gateway_count:
            manifest = str(resources.files("mcpward.demo").joinpath("manifest.json"))
            self.cli("resources", "add", self.resource, "--manifest", manifest, "--name", "gw")

        serve = [spec.python, "-m", "mcpward", "serve", "--demo"]
        if not embedded:
            serve.append("--no-migrate")
        for i, port in enumerate(ports):
            replica = Replica(i, self.root, serve, self.env, port)
            stack.callback(replica.proc.stop)
            self.replicas.append(replica)
        # The first replica creates the demo user and client; the others find them.
        self.replicas[0].start()
        with ThreadPoolExecutor() as pool:
            list(pool.map(lambda r: r.start(), self.replicas[1:]))
        demo = json.loads((self.replicas[0].data_dir / "demo.json").read_text())
        self.credentials = Credentials(
            demo["username"], demo["password"], demo["client_id"], demo["client_secret"]
        )

        if gateway_count:
            self.upstream = Proc(
                "upstream",
                [sys.executable, "-m", "tests.topology.upstream", str(up_port := free_port())],
                log=self.root / "upstream.log",
            )
            stack.callback(self.upstream.stop)
            self.upstream.start()
            self.upstream.wait_until(lambda: _listening(up_port))
            argv = self._gateway_argv(f"http://127.0.0.1:{up_port}/mcp")
            for i in range(gateway_count):
                gateway = Gateway(i, self.root, argv, self._gateway_env())
                stack.callback(gateway.proc.stop)
                self.gateways.append(gateway)
            with ThreadPoolExecutor() as pool:
                list(pool.map(lambda g: g.start(), self.gateways))

        if not embedded:
            cfg = config(
                auth_port=auth_port,
                replicas=[r.port for r in self.replicas],
                mcp_port=mcp_port if gateway_count else None,
                gateways=[g.port for g in self.gateways],
                errorfile=self.root / "503.http",
                retries=spec.balancer_retries,
            )
            self.balancer = haproxy(self.root, cfg)
            stack.callback(self.balancer.stop)
            self.balancer.start()
            self.balancer.wait_http(self.issuer + "/readyz")

    def _replica_env(self) -> dict[str, str]:
        spec = self.spec
        env = {
            **os.environ,
            "MCPWARD_CONFIG": str(self.root / "absent.toml"),
            "MCPWARD_ISSUER": self.issuer,
            "MCPWARD_LIFETIMES__SIGNING_KEY_PUBLISH_LEAD": "0",
        }
        if spec.kind != "embedded":
            key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
            env["MCPWARD_DATA_KEY"] = key
            env["MCPWARD_DATABASE_URL"] = self.database_url
        if self.redis is not None:
            env["MCPWARD_REDIS_URL"] = self.redis.url
        if spec.drain:
            env["MCPWARD_SHUTDOWN_DRAIN"] = str(spec.drain)
        if self.loki is not None:
            env["MCPWARD_LOKI_URL"] = self.loki.url
        env.update(spec.env)
        return env

    def _gateway_env(self) -> dict[str, str]:
        # Nothing of the replicas' secrets: a gateway knows only what its flags say.
        return {k: v for k, v in os.environ.items() if not k.startswith("MCPWARD_")}

    def _gateway_argv(self, upstream: str) -> list[str]:
        spec = self.spec
        argv = [
            spec.python, "-m", "mcpward", "gateway", "--upstream", upstream,
            "--issuer", self.issuer, "--resource", self.resource, "--rate", "off",
        ]  # fmt: skip
        if self.redis is not None:
            argv += ["--redis", self.redis.url]
        else:
            argv += ["--revocations-db", self.database_url]
            if spec.poll_interval is not None:
                argv += ["--poll-interval", str(spec.poll_interval)]
        if self.loki is not None:
            argv += ["--loki", self.loki.url]
        if spec.drain:
            argv += ["--shutdown-drain", str(spec.drain)]
        return argv + list(spec.gateway_args)

    def check_alive(self) -> None:
        """Raise, with its log's tail, if any process of the topology has died."""
        procs = [r.proc for r in self.replicas] + [g.proc for g in self.gateways]
        for proc in [*procs, self.balancer, self.upstream]:
            if proc is not None:
                proc.check_alive()

    def describe(self) -> dict[str, Any]:
        """URLs and credentials, for people (``scripts/topology.py up``)."""
        return {
            "kind": self.spec.kind,
            "issuer": self.issuer,
            "demo_mcp": self.demo_resource,
            "gateway_mcp": self.resource or None,
            "replicas": [r.url for r in self.replicas],
            "gateways": [g.mcp for g in self.gateways],
            "postgres": self.database_url or None,
            "redis": self.redis.url if self.redis else None,
            "loki": self.loki.url if self.loki else None,
            "user": {"username": self.credentials.username, "password": self.credentials.password},
            "agent": {
                "client_id": self.credentials.agent_id,
                "client_secret": self.credentials.agent_secret,
            },
            "public_client": {"client_id": PUBLIC_CLIENT, "redirect_uri": REDIRECT_URI},
            "logs": str(self.root),
        }


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def topology(spec: Spec | None = None, root: Path | None = None) -> Iterator[Topology]:
    """Start every part, yield the running topology, stop everything on exit."""
    spec = spec or Spec()
    owned = root is None
    root = root or Path(tempfile.mkdtemp(prefix="mcpward-topology-"))
    root.mkdir(parents=True, exist_ok=True)
    topo = Topology(spec, root)
    with ExitStack() as stack:
        topo._start(stack)
        yield topo
    if owned:
        import shutil

        shutil.rmtree(root, ignore_errors=True)


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
