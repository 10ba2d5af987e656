"""When the store refuses or is gone, `mcpward clients rotate-due` (the real CLI) says so
in one line, exits 1, and leaves no valid secret whose only copy is lost: either nothing
was committed, or the new secret is staged in the store while the old one stays current
and valid, until the next run finishes the rotation.

AWS Secrets Manager is moto's server mode, an emulator of the real API, run as its own
process with IAM enforced (each request signed with an IAM user's key and checked
against the user's policy: by action, since moto authorises Secrets Manager calls on
resource "*"). Vault is the KV v2 stand-in of fake_vault.py, enforcing the README's HCL
policies; no Vault server can be installed here."""

from __future__ import annotations

import json
from pathlib import Path

from mcpward.server import AuthorizationServer
from tests.secret_stores.stores import CLIENTS, ROTATOR, moto_server, readme_iam_actions, store
from tests.secret_stores.support import Cli, cli_for, open_server, valid

RESOURCE = "http://127.0.0.1:8400/mcp"
NAME = f"{CLIENTS}/agent"
WITHIN = str(91 * 86400)  # every secret is due


def first_secret(cli: Cli) -> None:
    cli.json("resources", "add", RESOURCE, "--scope", "orders.read=Read orders")
    cli.json("clients", "create", "agent", "--scope", "orders.read")
    assert cli.json("clients", "rotate-secret", "agent", "--overlap", "0")["delivered"]


def failed_run(cli: Cli, *args: str, secrets: tuple[str, ...] = ()) -> dict[str, object]:
    """rotate-due exits 1 and reports the failure; no secret in what it prints."""
    done = cli.run("clients", "rotate-due", "--within", WITHIN, "--json", *args)
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert not any(s in done.stdout + done.stderr for s in secrets)
    report: dict[str, object] = json.loads(done.stdout)
    return report


def secret_count(cli: Cli) -> int:
    return len(cli.json("clients", "show", "agent")["secrets"])


def nothing_on_disk(tmp_path: Path, secrets: list[str]) -> None:
    """Only hashes reach the database; no file under the data directory, configuration
    or audit trail holds a secret."""
    for path in tmp_path.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(s.encode() in content for s in secrets), path


async def test_aws_refusals_and_an_outage_lose_no_valid_secret(tmp_path: Path) -> None:
    with moto_server() as moto:
        actions = readme_iam_actions("McpwardRotation")
        rotator = moto.iam_user("rotator", actions)
        moto.enforce_iam()
        cli = cli_for(tmp_path, f"aws-sm:{CLIENTS}/{{client_id}}", moto.env(rotator))
        first_secret(cli)
        first = moto.value(NAME)
        server: AuthorizationServer = await open_server(tmp_path)
        try:
            # Staging refused: nothing committed, the old secret current and valid.
            moto.set_policy("rotator", [a for a in actions if not a.endswith("PutSecretValue")])
            count = secret_count(cli)
            report = failed_run(cli, secrets=(first,))
            assert report["rotated"] == []
            assert report["failed"] == {
                "agent": "AWS Secrets Manager denied secretsmanager:PutSecretValue on "
                f"{NAME}: the IAM policy must allow it for this secret's name prefix"
            }
            assert secret_count(cli) == count
            assert moto.value(NAME) == first and await valid(server, "agent", first)

            # Promotion refused: committed and staged; the old secret still current.
            moto.set_policy("rotator", [a for a in actions if not a.endswith("VersionStage")])
            report = failed_run(cli, secrets=(first,))
            assert report["rotated"] == ["agent"]
            failure = report["failed"]
            assert isinstance(failure, dict)
            assert "denied secretsmanager:UpdateSecretVersionStage" in failure["agent"]
            assert "committed and staged in the store" in failure["agent"]
            staged = moto.value(NAME, "AWSPENDING")
            assert moto.value(NAME) == first
            assert await valid(server, "agent", staged) and await valid(server, "agent", first)

            # Allowed again: the next run finishes the rotation, nothing else.
            moto.set_policy("rotator", actions)
            report = cli.json("clients", "rotate-due")
            assert report == {"rotated": [], "finished": ["agent"], "discarded": [], "failed": {}}
            assert moto.value(NAME) == staged and moto.value(NAME, "AWSPREVIOUS") == first
            assert moto.labels(NAME) == [["AWSCURRENT"], ["AWSPREVIOUS"]]

            # The store is gone: nothing committed.
            count = secret_count(cli)
            moto.stop()
            report = failed_run(cli, secrets=(first, staged))
            failure = report["failed"]
            assert isinstance(failure, dict)
            assert failure["agent"].startswith("AWS Secrets Manager DescribeSecret on ")
            assert failure["agent"].endswith("failed: EndpointConnectionError")
            assert secret_count(cli) == count
            assert await valid(server, "agent", staged)
        finally:
            await server.close()
        nothing_on_disk(tmp_path, [first, staged])


async def test_vault_refusals_and_an_outage_lose_no_valid_secret(tmp_path: Path) -> None:
    tokens = {
        "elsewhere": 'path "secret/data/other-team/*" { capabilities = ["create", "read"] }',
        "read-only": 'path "secret/data/mcpward/clients/*" { capabilities = ["read"] }',
    }
    with store("vault", tmp_path, tokens) as where:
        assert where.vault is not None
        cli = cli_for(tmp_path, where.spec, where.env)
        first_secret(cli)
        first = where.current("agent")
        assert first is not None
        server = await open_server(tmp_path)
        try:
            count = secret_count(cli)
            expected = {
                "elsewhere": f"Vault denied read on secret/data/{NAME}: the token's policy "
                "must grant it",
                "read-only": f"Vault denied write on secret/data/{NAME}: the token's policy "
                "must grant it",
            }
            for token, message in expected.items():
                done = cli.run(
                    "clients", "rotate-due", "--within", WITHIN, "--json",
                    extra_env={"VAULT_TOKEN": token},
                )  # fmt: skip
                assert done.returncode == 1 and first not in done.stdout + done.stderr
                assert json.loads(done.stdout)["failed"] == {"agent": message}
                assert secret_count(cli) == count

            # A mount that is not there, named on the command line.
            done = cli.run(
                "clients", "rotate-secret", "agent", "--sink", "vault:kv/mcpward/{client_id}"
            )
            assert done.returncode == 1
            assert done.stderr == "Error: Vault has no KV version 2 engine mounted at kv/\n"
            assert secret_count(cli) == count

            # Vault is gone.
            where.vault.stop()
            report = failed_run(cli, secrets=(first,))
            failure = report["failed"]
            assert isinstance(failure, dict)
            assert failure["agent"].startswith(f"cannot reach Vault for read on secret/data/{NAME}")
            assert secret_count(cli) == count
            assert await valid(server, "agent", first)
        finally:
            await server.close()
        assert ROTATOR not in (tmp_path / "mcpward.toml").read_text()
        nothing_on_disk(tmp_path, [first])
