"""The operator commands this layer added, run as an operator (or cron) runs them: a
subprocess per command against the server's database. Each action's audit event names
the OS user who ran it."""

from __future__ import annotations

import asyncio
import getpass
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from mcpward.storage.records import ClientRecord
from mcpward.storage.sql import SqlStore

DAY = 86400.0


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MCPWARD_DATA_DIR": str(tmp_path / "data"),
        "MCPWARD_CONFIG": str(tmp_path / "none.toml"),
        "MCPWARD_AUDIT_SINK": f"file:{tmp_path / 'audit.jsonl'}",
    }


def mcpward(env: dict[str, str], *args: str, ok: bool = True, stdin: str = "") -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "mcpward", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    if "--json" in args and proc.returncode == 0:
        return json.loads(proc.stdout)
    return proc


def audit(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def _add_registrations(database: str, ages: dict[str, float]) -> None:
    store = await SqlStore.open(database)
    now = time.time()
    try:
        for client_id, age in ages.items():
            await store.clients.create(
                ClientRecord(client_id, "mcp-remote", "dcr", "none", ("authorization_code",),
                             ("http://127.0.0.1:3334/cb",), created_at=now - age)
            )  # fmt: skip
        await store.clients.touch("used", now - 40 * DAY)
    finally:
        await store.close()


def test_prune_deletes_old_never_used_registrations(env: dict[str, str], tmp_path: Path) -> None:
    mcpward(env, "db", "upgrade")
    database = f"sqlite+aiosqlite:///{(tmp_path / 'data' / 'mcpward.db').resolve()}"
    ages = {"abandoned-1": 45 * DAY, "abandoned-2": 31 * DAY, "recent": 2 * DAY, "used": 60 * DAY}
    asyncio.run(_add_registrations(database, ages))
    mcpward(env, "clients", "create", "agent", "--scope", "orders.read")  # never pruned

    dry = mcpward(env, "clients", "prune", "--dry-run", "--json")
    assert dry == {
        "dry_run": True,
        "older_than": 30 * DAY,
        "clients": ["abandoned-1", "abandoned-2"],
    }
    listed = [c["client_id"] for c in mcpward(env, "clients", "list", "--json")]
    assert {"abandoned-1", "abandoned-2", "recent", "used", "agent"} == set(listed)

    narrow = mcpward(env, "clients", "prune", "--older-than", "40d", "--json")
    assert narrow["clients"] == ["abandoned-1"]
    readable = mcpward(env, "clients", "prune", "--older-than", "720h").stdout
    assert readable.splitlines() == ["deleted 1 never-used registered client(s)", "  abandoned-2"]
    listed = [c["client_id"] for c in mcpward(env, "clients", "list", "--json")]
    assert set(listed) == {"recent", "used", "agent"}

    pruned = [e for e in audit(tmp_path) if e["event"] == "client.pruned"]
    assert [e["client_id"] for e in pruned] == ["abandoned-1", "abandoned-2"]
    assert all(e["actor"] == f"cli:{getpass.getuser()}" for e in pruned)
    bad = mcpward(env, "clients", "prune", "--older-than", "soon", ok=False)
    assert bad.returncode != 0 and "is not a duration" in bad.stderr


def test_operator_role_needs_password_and_totp(env: dict[str, str], tmp_path: Path) -> None:
    password = "an operator passphrase\n"
    mcpward(env, "users", "add", "olivia", "--password-stdin", stdin=password)
    refused = mcpward(env, "users", "grant-operator", "olivia", ok=False)
    assert refused.returncode != 0
    assert "needs a password and a TOTP second factor" in refused.stderr
    assert "Traceback" not in refused.stderr
    mcpward(env, "users", "reset-totp", "olivia", "--enroll")
    granted = mcpward(env, "users", "grant-operator", "olivia", "--json")
    assert granted["username"] == "olivia" and granted["operator_since"] > 0
    again = mcpward(env, "users", "grant-operator", "olivia", "--json")
    assert again["operator_since"] == granted["operator_since"]
    assert mcpward(env, "users", "revoke-operator", "olivia", "--json")["operator"] is False
    missing = mcpward(env, "users", "grant-operator", "nobody", ok=False)
    assert "no user nobody" in missing.stderr
    events = [e for e in audit(tmp_path) if e["event"].startswith("operator.")]
    assert [e["event"] for e in events] == [
        "operator.granted",
        "operator.granted",
        "operator.revoked",
    ]
    assert all(e["actor"] == f"cli:{getpass.getuser()}" for e in events)


def test_cli_actions_name_their_operator(env: dict[str, str], tmp_path: Path) -> None:
    """The commands routed through the operations layer audit with ``cli:<user>``."""
    mcpward(env, "clients", "create", "agent", "--scope", "orders.read")
    mcpward(env, "keys", "rotate")
    mcpward(env, "tokens", "revoke", "--jti", "leaked-jti")
    mcpward(env, "tokens", "revoke", "--client", "agent")
    mcpward(env, "clients", "disable", "agent")
    actor = f"cli:{getpass.getuser()}"
    by_event = {e["event"]: e for e in audit(tmp_path)}
    for name in (
        "client.created",
        "key.rotated",
        "token.revoked",
        "tokens.revoked",
        "client.disabled",
    ):
        assert by_event[name]["actor"] == actor, name
    assert by_event["token.revoked"]["jti"] == "leaked-jti"


def test_serve_refuses_to_start_without_its_console(env: dict[str, str]) -> None:
    """The console's port is taken: `mcpward serve` says so and stops, before serving
    the authorization server without the console it was configured with."""
    import socket

    from tests.services import free_port

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "mcpward", "serve", "--port", str(free_port())],
            env={**env, "MCPWARD_CONSOLE__ENABLED": "true", "MCPWARD_CONSOLE__PORT": str(port)},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1
    assert f"the operator console cannot listen on 127.0.0.1:{port}" in proc.stderr
    assert "Traceback" not in proc.stderr
