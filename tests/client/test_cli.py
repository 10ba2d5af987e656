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


AGENT = ("--client-id", "agent-basic", "--client-secret-env", "AGENT_SECRET")
INITIALIZE = (
    '{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    '"capabilities":{},"clientInfo":{"name":"curl","version":"1"}}}'
)
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


async def test_a_dpop_bound_token_for_scripts(stack: Stack, tmp_path: Path) -> None:
    """oidc-provider binds the agent's token to its DPoP key: `token` says so, `--proof`
    prints the two headers one request needs (good once), `curl` makes the requests."""
    import httpx

    code, out, err = await mcpward(tmp_path, "token", stack.mcp_url, *AGENT)
    assert code == 0, err
    assert "DPoP-bound" in err and out.strip().count(".") == 2

    code, out, err = await mcpward(
        tmp_path, "token", stack.mcp_url, *AGENT, "--proof", "post", stack.mcp_url
    )
    assert code == 0, err
    lines = dict(line.split(": ", 1) for line in out.strip().splitlines())
    assert lines["Authorization"].startswith("DPoP ") and lines["DPoP"].count(".") == 2
    headers = {**MCP_HEADERS, **lines}
    async with httpx.AsyncClient() as http:
        first = await http.post(stack.mcp_url, content=INITIALIZE, headers=headers)
        assert first.status_code == 200, first.text
        again = await http.post(stack.mcp_url, content=INITIALIZE, headers=headers)
        assert again.status_code == 401  # the proof was spent
        assert 'DPoP error="invalid_dpop_proof"' in again.headers["www-authenticate"]

    header_args = [arg for name, value in MCP_HEADERS.items() for arg in ("-H", f"{name}: {value}")]
    for _ in range(2):  # a fresh proof each time
        code, out, err = await mcpward(
            tmp_path, "curl", stack.mcp_url, *AGENT, *header_args, "-d", INITIALIZE
        )
        assert code == 0, err
        assert '"protocolVersion"' in out
    code, _, err = await mcpward(tmp_path, "curl", stack.mcp_url, *header_args, "-d", INITIALIZE)
    assert code == 1 and "mcpward login" in err  # as a person: no session yet


async def test_a_plain_bearer_token_for_scripts_that_cannot_sign_proofs(
    stack: Stack, tmp_path: Path
) -> None:
    """`--bearer` asks an agent's token without DPoP even where the server offers it: the
    token has no cnf, and `curl -H "Authorization: Bearer ..."` works with it."""
    import base64
    import json as _json

    import httpx

    code, out, err = await mcpward(tmp_path, "token", stack.mcp_url, *AGENT, "--bearer")
    assert code == 0, err
    token = out.strip()
    payload = token.split(".")[1]
    claims = _json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "cnf" not in claims and "DPoP-bound" not in err
    headers = {**MCP_HEADERS, "authorization": f"Bearer {token}"}
    async with httpx.AsyncClient() as http:
        answer = await http.post(stack.mcp_url, content=INITIALIZE, headers=headers)
    assert answer.status_code == 200, answer.text
    code, _, err = await mcpward(tmp_path, "token", stack.mcp_url, "--bearer")
    assert code == 2 and "--bearer is for agents" in err
