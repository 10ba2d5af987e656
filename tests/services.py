"""Real servers for the tests: PostgreSQL and Redis, each started once per test session in a
temporary directory on a free 127.0.0.1 port, and stopped at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} not found: run scripts/install-test-deps.sh")
    return path


class PostgresProcess:
    """A throw-away PostgreSQL cluster on a free port that a test can stop and start again
    on the same port and data (outages). ``url`` is an asyncpg SQLAlchemy URL of the
    ``postgres`` database."""

    def __init__(self) -> None:
        self._root = Path(tempfile.mkdtemp(prefix="mcpward-pg-"))
        self._data = self._root / "data"
        self.port = free_port()
        self.url = f"postgresql+asyncpg://mcpward@127.0.0.1:{self.port}/postgres"
        self._proc: subprocess.Popen[bytes] | None = None
        # PostgreSQL refuses to run as root; CI runs as root, so run it as postgres.
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self._root, user.pw_uid, user.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        subprocess.run(
            [*self._as_user, _pg_bin("initdb"), "-D", str(self._data), "-U", "mcpward",
             "--auth=trust", "-E", "UTF8"],
            check=True,
            capture_output=True,
        )  # fmt: skip

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [*self._as_user, _pg_bin("postgres"), "-D", str(self._data), "-p", str(self.port),
             "-h", "127.0.0.1", "-k", str(self._root), "-c", "fsync=off",
             "-c", "max_connections=200"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        _wait_for_port(self.port)
        for _ in range(100):
            ready = subprocess.run(
                [_pg_bin("pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError("PostgreSQL did not become ready")

    def stop(self) -> None:
        """Fast shutdown (SIGINT): every client connection is cut, as in an outage. The
        signal goes to the postmaster itself (runuser does not pass SIGINT on)."""
        if self._proc is not None:
            pid = int((self._data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGINT)
            self._proc.wait(timeout=30)
            self._proc = None

    def close(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=30)
            self._proc = None
        shutil.rmtree(self._root, ignore_errors=True)


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster; yields an asyncpg SQLAlchemy URL."""
    server = PostgresProcess()
    try:
        server.start()
        yield server.url
    finally:
        server.close()


def create_database(admin_url: str, name: str) -> str:
    """A fresh database in the session's cluster, so tests do not share rows."""
    port = admin_url.rsplit(":", 1)[1].split("/")[0]
    subprocess.run(
        [_pg_bin("createdb"), "-h", "127.0.0.1", "-p", port, "-U", "mcpward", name],
        check=True,
        capture_output=True,
    )
    return admin_url.rsplit("/", 1)[0] + "/" + name


@contextmanager
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server not found: run scripts/install-test-deps.sh")
    root = Path(tempfile.mkdtemp(prefix="mcpward-redis-"))
    port = free_port()
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(root, ignore_errors=True)


class RedisProcess:
    """A redis-server that a test can stop and start again on the same port (outages)."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server not found: run scripts/install-test-deps.sh")
        self._binary = binary
        self._root = Path(tempfile.mkdtemp(prefix="mcpward-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [
                self._binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self._root),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(timeout=30)
            self._proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._root, ignore_errors=True)


@contextmanager
def restartable_redis() -> Iterator[RedisProcess]:
    redis = RedisProcess()
    redis.start()
    try:
        yield redis
    finally:
        redis.close()
