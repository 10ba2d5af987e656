"""Session storage: the real Secret Service (gnome-keyring under dbus-run-session), the
0600 file fallback and its one-time notice, and the cross-process refresh lock."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcpward.client import FileStore, Registration, StoredSession
from mcpward.client._token_store import session_lock

SESSION = StoredSession(
    resource="https://mcp.example.com/mcp",
    registration=Registration("https://as.example.com", "client-1", "none", None, ("x",)),
    refresh_token="rt-secret-value",
    scope="orders.read",
)

KEYRING_SCRIPT = textwrap.dedent(
    """
    from mcpward.client import KeyringStore, default_store
    from mcpward.client._token_store import StoredSession, keyring_usable
    import json, sys, keyring
    session = StoredSession.from_json(sys.argv[1])
    assert keyring_usable(), keyring.get_keyring()
    store = default_store()
    assert isinstance(store, KeyringStore), store
    store.save(session.resource, session)
    again = KeyringStore().load(session.resource)
    assert again == session, again
    # The item lives in the Secret Service collection, not in a file of ours.
    assert keyring.get_password("mcpward", session.resource) == session.to_json()
    store.delete(session.resource)
    assert store.load(session.resource) is None
    store.delete(session.resource)  # deleting twice is fine
    print("backend", type(keyring.get_keyring()).__module__)
    """
)


@pytest.mark.skipif(
    shutil.which("gnome-keyring-daemon") is None or shutil.which("dbus-run-session") is None,
    reason="needs gnome-keyring and dbus (scripts/install-test-deps.sh installs them)",
)
def test_sessions_round_trip_through_the_real_secret_service(tmp_path: Path) -> None:
    script = tmp_path / "keyring_check.py"
    script.write_text(KEYRING_SCRIPT)
    inner = (
        "echo -n test-password | gnome-keyring-daemon --unlock --components=secrets >/dev/null"
        f" && {sys.executable} {script} '{SESSION.to_json()}'"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    env["HOME"] = str(tmp_path)  # a fresh keyring, not the developer's
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    result = subprocess.run(
        ["dbus-run-session", "--", "sh", "-c", inner],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert "backend keyring.backends.SecretService" in result.stdout


def test_without_a_keychain_a_private_file_is_used_and_announced_once(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import logging, sys
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
        from mcpward.client import FileStore, default_store
        from mcpward.client._token_store import StoredSession
        session = StoredSession.from_json(sys.argv[1])
        for _ in range(3):
            store = default_store()
            assert isinstance(store, FileStore), store
        store.save(session.resource, session)
        """
    )
    env = {**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"}
    env["XDG_STATE_HOME"] = str(tmp_path / "state")
    result = subprocess.run(
        [sys.executable, "-c", code, SESSION.to_json()],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("no OS keychain available") == 1
    assert "rt-secret-value" not in result.stderr
    path = tmp_path / "state" / "mcpward" / "credentials.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700


def test_file_store_round_trip_and_repairs_loose_permissions(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "c.json")
    store.save("k", SESSION)
    assert store.load("k") == SESSION
    (tmp_path / "c.json").chmod(0o644)
    assert store.load("k") == SESSION
    assert (tmp_path / "c.json").stat().st_mode & 0o777 == 0o600
    store.delete("k")
    assert store.load("k") is None
    assert "rt-secret-value" not in repr(SESSION)


async def test_session_lock_excludes_other_holders(tmp_path: Path) -> None:
    order: list[str] = []

    async def hold(name: str) -> None:
        async with session_lock("https://mcp.example.com/mcp", tmp_path):
            order.append(f"{name} in")
            await asyncio.sleep(0.05)
            order.append(f"{name} out")

    await asyncio.gather(hold("a"), hold("b"))
    assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
