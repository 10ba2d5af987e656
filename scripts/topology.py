#!/usr/bin/env python3
"""Start a production topology on this machine, every part a real process on 127.0.0.1:
PostgreSQL, Redis, N `mcpward serve` replicas, M `mcpward gateway` processes, HAProxy in
front of both (and with --loki a Loki receiver the audit trail is pushed to). Prints the
URLs and the demo credentials, then runs until Ctrl-C, and stops everything.

    scripts/topology.py up --replicas 2 --gateways 2
    scripts/topology.py up --kind table --json       # gateways poll the revocations table
    scripts/topology.py up --kind embedded           # one process on SQLite

Needs what `make test` installs (scripts/install-test-deps.sh: PostgreSQL, Redis, HAProxy).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.topology import Spec, topology  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser("up", help="start the topology and run until Ctrl-C")
    up.add_argument("--replicas", type=int, default=2)
    up.add_argument("--gateways", type=int, default=2)
    up.add_argument("--kind", choices=["redis", "table", "embedded"], default="redis")
    up.add_argument("--loki", action="store_true", help="push audit events to a Loki receiver")
    up.add_argument("--root", type=Path, help="directory for data and logs (default: temp)")
    up.add_argument("--json", action="store_true", help="print the description as JSON")
    args = parser.parse_args()

    spec = Spec(replicas=args.replicas, gateways=args.gateways, kind=args.kind, loki=args.loki)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with topology(spec, args.root) as topo:
        info = topo.describe()
        if args.json:
            print(json.dumps(info, indent=2), flush=True)
        else:
            print(f"issuer (HAProxy)   {info['issuer']}")
            print(f"demo MCP (guarded) {info['demo_mcp']}")
            if info["gateway_mcp"]:
                print(f"gateways (HAProxy) {info['gateway_mcp']}")
            for i, url in enumerate(info["replicas"]):
                print(f"replica {i}          {url}")
            for i, url in enumerate(info["gateways"]):
                print(f"gateway {i}          {url}")
            for name in ("postgres", "redis", "loki"):
                if info[name]:
                    print(f"{name:<18} {info[name]}")
            user, agent = info["user"], info["agent"]
            print(f"user               {user['username']} / {user['password']}")
            print(f"agent              {agent['client_id']} / {agent['client_secret']}")
            print(f"public client      {info['public_client']['client_id']}")
            print(f"logs               {info['logs']}")
            print("Ctrl-C stops everything.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()


if __name__ == "__main__":
    main()
