"""The operator CLI, run as a user would run it: a subprocess per command, --json parsed."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

RESOURCE = "http://127.0.0.1:8400/mcp"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "MCPWARD_DATA_DIR": str(tmp_path / "data"),
        "MCPWARD_CONFIG": str(tmp_path / "none.toml"),
        "MCPWARD_AUDIT_SINK": f"file:{tmp_path / 'audit.jsonl'}",
    }


def mcpward(env: dict[str, str], *args: str, ok: bool = True) -> Any:
    proc = subprocess.run(
        [sys.executable, "-m", "mcpward", *args], env=env, capture_output=True, text=True
    )
    if ok:
        assert proc.returncode == 0, proc.stderr
    if "--json" in args and proc.returncode == 0:
        return json.loads(proc.stdout)
    return proc


def test_client_lifecycle(env: dict[str, str], tmp_path: Path) -> None:
    mcpward(env, "resources", "add", RESOURCE, "--scope", "orders.read=Read orders")
    created = mcpward(
        env, "clients", "create", "agent-backfill", "--scope", "orders.read", "--json"
    )
    first = created["client_secret"]
    assert first.startswith("mcpw_cs_")

    listed = mcpward(env, "clients", "list", "--json")
    assert [c["client_id"] for c in listed] == ["agent-backfill"]
    shown = mcpward(env, "clients", "show", "agent-backfill", "--json")
    assert len(shown["secrets"]) == 1 and first not in json.dumps(shown)

    rotated = mcpward(env, "clients", "rotate-secret", "agent-backfill", "--json")
    assert rotated["client_secret"] != first
    shown = mcpward(env, "clients", "show", "agent-backfill", "--json")
    assert len(shown["secrets"]) == 2

    # rotate-due with a horizon past the new secret's expiry rotates it and hands the new
    # secret to the sink, never to stdout.
    sink = tmp_path / "secrets"
    due = mcpward(
        env,
        "clients",
        "rotate-due",
        "--within",
        str(91 * 86400),
        "--sink",
        f"dir:{sink}",
        "--json",
    )
    assert due == {"rotated": ["agent-backfill"], "finished": [], "discarded": [], "failed": {}}
    written = (sink / "agent-backfill").read_text().strip()
    assert written.startswith("mcpw_cs_") and written not in json.dumps(due)
    assert stat.S_IMODE((sink / "agent-backfill").stat().st_mode) == 0o600

    disabled = mcpward(env, "clients", "disable", "agent-backfill", "--json")
    assert disabled["disabled"] is True

    audit = (tmp_path / "audit.jsonl").read_text()
    assert '"event":"client.secret_rotated"' in audit
    for secret in (first, rotated["client_secret"], written):
        assert secret not in audit


def test_created_client_shows_when_it_was_created(env: dict[str, str]) -> None:
    """`clients create --json` prints the stored record: its real creation time, the same
    one `clients show` reads back later."""
    before = time.time()
    created = mcpward(env, "clients", "create", "agent-new", "--scope", "orders.read", "--json")
    after = time.time()
    assert before <= created["created_at"] <= after
    shown = mcpward(env, "clients", "show", "agent-new", "--json")
    assert shown["created_at"] == created["created_at"]


def test_keys_and_token_revocation(env: dict[str, str]) -> None:
    keys = mcpward(env, "keys", "list", "--json")
    assert [k["state"] for k in keys] == ["signing"]
    new = mcpward(env, "keys", "rotate", "--json")
    keys = mcpward(env, "keys", "list", "--json")
    assert {k["kid"]: k["state"] for k in keys}[new["kid"]] == "pending"

    revoked = mcpward(env, "tokens", "revoke", "--user", "alice", "--json")
    assert revoked["kind"] == "subject" and revoked["key"] == "alice"
    proc = mcpward(env, "tokens", "revoke", ok=False)
    assert proc.returncode == 2 and "exactly one" in proc.stderr


def test_secret_in_config_file_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "mcpward.toml"
    config.write_text('database_url = "postgresql://u:hunter2@db/mcpward"\n')
    proc = mcpward({**env, "MCPWARD_CONFIG": str(config)}, "clients", "list", ok=False)
    assert proc.returncode != 0
    assert "must not be written in the configuration file" in proc.stderr
    assert "hunter2" not in proc.stderr


def test_plain_http_issuer_refused_off_loopback(env: dict[str, str]) -> None:
    proc = mcpward(
        {**env, "MCPWARD_ISSUER": "http://auth.example.com"}, "clients", "list", ok=False
    )
    assert proc.returncode != 0 and "https" in proc.stderr


def test_a_client_created_with_dpop_must_send_proofs(env: dict[str, str]) -> None:
    mcpward(env, "resources", "add", RESOURCE, "--scope", "orders.read=Read orders")
    created = mcpward(
        env, "clients", "create", "strict", "--scope", "orders.read", "--dpop", "--json"
    )
    assert created["dpop_bound_access_tokens"] is True
    assert mcpward(env, "clients", "show", "strict", "--json")["dpop_bound_access_tokens"]
    plain = mcpward(env, "clients", "create", "relaxed", "--scope", "orders.read", "--json")
    assert plain["dpop_bound_access_tokens"] is False
