"""The load balancer in front of the replicas and the gateways: HAProxy (Debian's
package), configured the way the README's deployment section recommends.

- Health checks: ``GET /readyz`` on every replica and gateway every 100 ms; one failure
  takes it out of rotation, one success puts it back. A replica or gateway that is
  shutting down answers 503 there while it drains, so it leaves rotation before it stops
  listening.
- No connection reuse towards a backend (``http-server-close``): a request never lands
  on a connection the backend is closing.
- A request whose connection failed, or whose backend died before answering (kill -9),
  is retried once on another backend (``retry-on conn-failure empty-response`` with
  ``redispatch``). The retried request may have been processed (a refresh rotation that
  committed): the authorization server answers such a retry with the same result.
- ``retries=False`` turns retries off, to show what readiness and draining alone do.
- With no backend ready, the answer is the server's own outage answer: 503, Retry-After,
  an OAuth error body.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

from tests.topology._procs import Proc

UNAVAILABLE = (
    "HTTP/1.1 503 Service Unavailable\r\n"
    "Content-Type: application/json\r\n"
    "Cache-Control: no-store\r\n"
    "Retry-After: 5\r\n"
    "Connection: close\r\n"
    "\r\n"
    '{"error":"temporarily_unavailable","error_description":"no replica is ready, retry"}\n'
)


def config(
    *,
    auth_port: int,
    replicas: Sequence[int],
    mcp_port: int | None,
    gateways: Sequence[int],
    errorfile: Path,
    retries: bool = True,
) -> str:
    lines = [
        "global",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 1s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout check 1s",
        "    option http-server-close",
        *(
            ["    retries 2", "    option redispatch 1", "    retry-on conn-failure empty-response"]
            if retries
            # A balancer that never retries (as kube-proxy does not): only readiness and
            # the replicas' drain keep a restart from losing requests.
            else ["    retries 0", "    retry-on none"]
        ),
        f"    errorfile 503 {errorfile}",
        "frontend auth",
        f"    bind 127.0.0.1:{auth_port}",
        "    default_backend replicas",
        "backend replicas",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    default-server inter 100ms fall 1 rise 1",
        *(f"    server r{i} 127.0.0.1:{port} check" for i, port in enumerate(replicas)),
    ]
    if mcp_port is not None and gateways:
        lines += [
            "frontend mcp",
            f"    bind 127.0.0.1:{mcp_port}",
            "    default_backend gateways",
            "backend gateways",
            "    balance roundrobin",
            # A gateway's readiness: 503 while it drains, or when its upstream is gone.
            "    option httpchk GET /readyz",
            "    http-check expect status 200",
            "    default-server inter 100ms fall 1 rise 1",
            *(f"    server g{i} 127.0.0.1:{port} check" for i, port in enumerate(gateways)),
        ]
    return "\n".join(lines) + "\n"


def haproxy(root: Path, cfg: str) -> Proc:
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(binary).exists():
        raise RuntimeError("haproxy not found: run scripts/install-test-deps.sh")
    errorfile = root / "503.http"
    errorfile.write_text(UNAVAILABLE)
    path = root / "haproxy.cfg"
    path.write_text(cfg)
    return Proc("haproxy", [binary, "-db", "-f", str(path)], log=root / "haproxy.log")
