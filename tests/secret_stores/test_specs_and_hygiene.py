"""Sink specs and names, the install hint when boto3 or hvac is missing, and no secret in
any log record even with every logger at DEBUG (botocore logs request and response
bodies there). AWS is moto's server mode, an emulator of the real API, in its own
process; Vault is the KV v2 stand-in of fake_vault.py (no Vault server can be installed
here)."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from mcpward._secret_stores.aws import AwsSecrets
from mcpward._secret_stores.vault import VaultKv
from mcpward.client import AwsSecret, AwsSecretsManagerStore, VaultSecret, VaultStore
from mcpward.client._registration import Registration
from mcpward.client._token_store import StoredSession
from mcpward.compose.server import open_server
from mcpward.config import Settings
from mcpward.server.secret_rotation import rotate
from mcpward.server.secret_sinks import (
    AwsSecretsManagerSink,
    CommandSink,
    DirectorySink,
    VaultSink,
    name_for,
    sink_from_spec,
)
from mcpward.storage.records import ClientRecord
from tests.secret_stores.stores import (
    CLIENTS,
    ROOT,
    ROTATOR,
    fake_vault,
    moto_server,
    readme_vault_policy,
)
from tests.secret_stores.support import cli_for


def test_specs_name_one_secret_per_client() -> None:
    aws = sink_from_spec("aws-sm:team-a/mcpward/{client_id}/secret")
    assert isinstance(aws, AwsSecretsManagerSink)
    assert aws.name("agent-backfill") == "team-a/mcpward/agent-backfill/secret"
    assert isinstance(sink_from_spec("aws-sm:mcpward/clients/"), AwsSecretsManagerSink)
    assert name_for("mcpward/clients/", "https://app.example/id x") == (
        "mcpward/clients/https___app.example_id_x"
    )
    vault = sink_from_spec("vault:kv-team/mcpward/clients")
    assert isinstance(vault, VaultSink)
    assert (vault.kv.mount_point, vault.path("a")) == ("kv-team", "mcpward/clients/a")
    assert isinstance(sink_from_spec("dir:/run/secrets"), DirectorySink)
    assert isinstance(sink_from_spec("command:push-secret --to x"), CommandSink)
    for bad in ("vault:secret", "aws-sm:", "s3:bucket", "dir"):
        with pytest.raises(ValueError, match="secret_sink"):
            sink_from_spec(bad)


def test_a_bad_spec_is_a_usage_error(tmp_path: Path) -> None:
    cli = cli_for(tmp_path, "s3:bucket", {})
    done = cli.run("clients", "rotate-due")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "secret_sink must be dir:PATH, command:COMMAND" in done.stderr


def test_without_the_extra_the_error_says_what_to_install() -> None:
    code = textwrap.dedent(
        """
        import asyncio, sys
        for name in ("boto3", "botocore", "hvac"):
            sys.modules[name] = None  # as if not installed
        from mcpward._secret_stores import SecretStoreError
        from mcpward.client import AwsSecret, VaultSecret
        from mcpward.server.secret_sinks import sink_from_spec
        attempts = [
            lambda: AwsSecret("mcpward/clients/a").read(),
            lambda: VaultSecret("mcpward/clients/a").read(),
            lambda: asyncio.run(sink_from_spec("aws-sm:mcpward/clients").current("a")),
            lambda: asyncio.run(sink_from_spec("vault:secret/mcpward").current("a")),
        ]
        for attempt in attempts:
            try:
                attempt()
            except SecretStoreError as exc:
                print(exc)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "botocore.exceptions is not installed: pip install 'mcpward[aws]'",
        "hvac.exceptions is not installed: pip install 'mcpward[vault]'",
        "botocore.exceptions is not installed: pip install 'mcpward[aws]'",
        "hvac.exceptions is not installed: pip install 'mcpward[vault]'",
    ]


async def test_no_secret_in_any_log_record_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[str] = []
    policy = {ROTATOR: readme_vault_policy("mcpward rotation")}
    with moto_server() as moto, fake_vault(policy) as vault:
        server = await open_server(Settings(issuer="http://127.0.0.1:8400", data_dir=tmp_path))
        try:
            created = await server.clients.create(
                ClientRecord(
                    client_id="agent",
                    name="agent",
                    source="preregistered",
                    token_endpoint_auth_method="client_secret_basic",
                    grant_types=("client_credentials",),
                    redirect_uris=(),
                )
            )
            assert created is not None
            seen.append(created.secret)
            aws_client = moto.secrets_manager()
            aws = AwsSecretsManagerSink(store=AwsSecrets(aws_client))
            kv = VaultSink(VaultKv("secret", vault.client(ROTATOR)))
            for sink in (aws, kv):
                seen.append((await rotate(server, sink, "agent")).secret)
            assert AwsSecret(f"{CLIENTS}/agent", client=aws_client).read() == seen[1]
            vault_reader = VaultSecret(f"{CLIENTS}/agent", client=vault.client(ROTATOR))
            assert vault_reader.read() == seen[2]
        finally:
            await server.close()
        session = StoredSession(
            "https://mcp.example.com/mcp",
            Registration("https://as.example.com", "c", "none", None, ()),
            refresh_token="mcpw_rt_never_logged",
        )
        seen.append("mcpw_rt_never_logged")
        store = AwsSecretsManagerStore(client=aws_client)
        store.save(session.resource, session)
        async with store.lock(session.resource):
            assert store.load(session.resource) == session
        vault_store = VaultStore(prefix="mcpward/clients/sessions", client=vault.client(ROTATOR))
        vault_store.save(session.resource, session)
        assert vault_store.load(session.resource) == session
    messages = [record.getMessage() for record in caplog.records]
    assert any(r.name.startswith("botocore") for r in caplog.records)  # DEBUG was on
    for secret in seen:
        assert not [m for m in messages if secret in m]
