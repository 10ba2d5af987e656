"""`mcpward login | whoami | token | logout URL` as a person and a script would run them:
separate processes, the session in a 0600 file (no keychain in these processes), against
oidc-provider and the guarded demo server."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.client.conftest import AGENT_SECRET, Stack
from tests.client.support import DevInteractionsBrowser

pytestmark = pytest.mark.node


def cli_env(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "AGENT_SECRET": AGENT_SECRET,
    }


async def mcpward(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcpward",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path),
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_login_whoami_token_logout(stack: Stack, tmp_path: Path) -> None:
    url = stack.mcp_url
    code, _, err = await mcpward(tmp_path, "token", url)
    assert code == 1 and f"mcpward login {url}" in err

    login = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mcpward",
        "login",
        url,
        "--no-browser",
        "--scope",
        "orders.read",
        "--timeout",
        "30",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=cli_env(tmp_path),
    )
    assert login.stderr is not None and login.stdout is not None
    authorization_url, stderr = "", ""
    while not authorization_url:
        line = (await asyncio.wait_for(login.stderr.readline(), 30)).decode()
        stderr += line
        assert line, "login exited before printing the sign-in URL"
        if line.strip().startswith("http"):
            authorization_url = line.strip()
    await DevInteractionsBrowser(login="bob")(authorization_url)
    out = (await asyncio.wait_for(login.stdout.read(), 30)).decode()
    assert await login.wait() == 0
    assert f"Signed in to {url}" in out
    assert "no OS keychain available" in stderr

    code, out, err = await mcpward(tmp_path, "whoami", url)
    assert code == 0, err
    assert stack.issuer in out and "orders.read" in out

    code, token, err = await mcpward(tmp_path, "token", url)
    assert code == 0, err
    token = token.strip()
    assert token.count(".") == 2  # oidc-provider issues JWT access tokens for the resource
    state = (tmp_path / "state" / "mcpward" / "credentials.json").read_text()
    assert token not in state

    # Two scripts at once: each refreshes under the session lock with the newest refresh
    # token, so neither burns the other's (rotation would revoke the whole family).
    results = await asyncio.gather(*(mcpward(tmp_path, "token", url) for _ in range(3)))
    assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
    code, _, err = await mcpward(tmp_path, "whoami", url)
    assert code == 0, err

    code, out, err = await mcpward(tmp_path, "logout", url)
    assert code == 0, err
    code, _, err = await mcpward(tmp_path, "token", url)
    assert code == 1 and "mcpward login" in err


async def test_token_as_an_agent(stack: Stack, tmp_path: Path) -> None:
    code, out, err = await mcpward(
        tmp_path,
        "token",
        stack.mcp_url,
        "--client-id",
        "agent-basic",
        "--client-secret-env",
        "AGENT_SECRET",
        "--scope",
        "orders.read",
    )
    assert code == 0, err
    assert out.strip().count(".") == 2
    assert AGENT_SECRET not in out + err
