"""What an operator writes: the README's configuration sections load as shown, a bad one
is refused without echoing a value, and a real ``mcpward serve`` process configured that
way (with a loopback issuer standing in for the cluster) takes a workload JWT for a
client created with the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from mcpward.config import load_settings
from mcpward.errors import ConfigError
from tests.enterprise.support import serve_issuer
from tests.services import free_port

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_sections_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    start = README.index("## Enterprise and workload identity")
    section = README[start : README.index("\n## ", start)]
    blocks = re.findall(r"```toml\n(.*?)```", section, flags=re.S)
    config = tmp_path / "mcpward.toml"
    config.write_text("\n".join(blocks))
    monkeypatch.setenv("MCPWARD_CONFIG", str(config))
    settings = load_settings()
    federation = settings.federation
    assert [i.issuer for i in federation.trusted_issuers] == [
        "https://acme.okta.com",
        "https://kubernetes.default.svc.cluster.local",
        "https://token.actions.githubusercontent.com",
    ]
    assert [(r.name, r.client_id) for r in federation.workload_rules] == [
        ("backfill", "agent-backfill"),
        ("release", "release-bot"),
    ]
    assert federation.workload_rules[1].claims == {
        "repository_owner": "acme",
        "workflow": "release",
    }
    [policy] = federation.token_exchange
    assert (policy.client_id, policy.scopes, policy.lifetime) == (
        "orders-mcp",
        ["inventory.read"],
        300,
    )


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        (
            '[[workload_rules]]\nname = "x"\nissuer = "https://ci.example"\nsubject = "s"\n'
            'client_id = "c"\n',
            "workload rule x: its issuer is not a trusted issuer with the workload profile",
        ),
        (
            '[[trusted_issuers]]\nissuer = "http://idp.example"\nprofiles = ["id-jag"]\n',
            "plain http only on loopback",
        ),
        (
            '[[trusted_issuers]]\nissuer = "https://idp.example"\nprofiles = ["id-jag"]\n'
            'algorithms = ["HS256"]\n',
            "algorithms must be among",
        ),
        (
            '[[token_exchange]]\nclient_id = "m"\nfrom_resource = "https://a.example"\n'
            'to_resource = "https://a.example"\nscopes = ["s"]\n',
            "an exchange policy leads from one resource to another",
        ),
    ],
    ids=["rule-without-issuer", "plain-http", "symmetric-alg", "exchange-to-itself"],
)
def test_a_bad_configuration_is_refused_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str
) -> None:
    config = tmp_path / "mcpward.toml"
    config.write_text(toml)
    monkeypatch.setenv("MCPWARD_CONFIG", str(config))
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_settings()


def _mcpward(env: dict[str, str], *args: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "mcpward", *args], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


async def test_a_served_process_takes_a_workload_jwt(tmp_path: Path) -> None:
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    resource = issuer + "/mcp"
    async with serve_issuer() as platform:
        config = tmp_path / "mcpward.toml"
        config.write_text(
            f'issuer = "{issuer}"\n'
            f'[[trusted_issuers]]\nissuer = "{platform.url}"\nprofiles = ["workload"]\n'
            f'[[workload_rules]]\nname = "backfill"\nissuer = "{platform.url}"\n'
            'subject = "system:serviceaccount:batch:backfill"\nclient_id = "agent-backfill"\n'
            'scopes = ["orders.read"]\n'
        )
        env = {
            **os.environ,
            "MCPWARD_CONFIG": str(config),
            "MCPWARD_DATA_DIR": str(tmp_path / "data"),
            "MCPWARD_AUDIT_SINK": f"file:{tmp_path / 'audit.jsonl'}",
        }
        _mcpward(env, "resources", "add", resource, "--scope", "orders.read=Read orders")
        created = json.loads(
            _mcpward(
                env,
                "clients",
                "create",
                "agent-backfill",
                "--auth-method",
                "none",
                "--grant",
                "jwt-bearer",
                "--scope",
                "orders.read",
                "--json",
            )
        )
        assert created["grant_types"] == ["urn:ietf:params:oauth:grant-type:jwt-bearer"]
        assert "client_secret" not in created
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mcpward", "serve", "--port", str(port), env=env,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        try:
            async with httpx.AsyncClient(base_url=issuer) as http:
                await _ready(http)
                meta = (await http.get("/.well-known/oauth-authorization-server")).json()
                assert (
                    "urn:ietf:params:oauth:grant-type:jwt-bearer" in meta["grant_types_supported"]
                )
                assert "authorization_grant_profiles_supported" not in meta
                # The served process's clock is the real one: so is the JWT's.
                now = time.time()
                response = await http.post(
                    "/token",
                    data={
                        "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
                        "assertion": platform.workload(now, aud=issuer),
                        "resource": resource,
                    },
                )
        finally:
            proc.send_signal(signal.SIGTERM)
            await proc.wait()
    assert response.status_code == 200, response.text
    assert response.json()["scope"] == "orders.read"
    lines = (tmp_path / "audit.jsonl").read_text().splitlines()
    events = [json.loads(line)["event"] for line in lines]
    assert "token.issued_from_assertion" in events


async def _ready(http: httpx.AsyncClient) -> None:
    for _ in range(300):
        try:
            if (await http.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)
    raise AssertionError("mcpward serve did not become ready")
