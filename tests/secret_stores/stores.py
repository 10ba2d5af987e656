"""The stores the secret-store tests run against, each a separate process on a free
127.0.0.1 port: moto's server mode (an emulator of the AWS Secrets Manager and IAM APIs;
no AWS account is reachable from here) and the KV v2 stand-in for Vault in
``fake_vault.py`` (no Vault server can be installed here; that module says why); and the
policies the README documents for them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import httpx
import hvac
import hvac.exceptions

from mcpward._secret_stores.aws import AwsSecrets
from mcpward._secret_stores.vault import VaultKv
from mcpward.server.secret_sinks import (
    AwsSecretsManagerSink,
    DirectorySink,
    SecretSink,
    VaultSink,
)
from tests.services import free_port

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
REGION = "us-east-1"
ROOT_TOKEN = "root"  # the Vault stand-in's token that may do anything
ROTATOR = "rotator-token"  # a Vault token holding the README's rotation policy
CLIENTS = "mcpward/clients"


# -- moto ------------------------------------------------------------------------------


@dataclass
class Moto:
    url: str
    process: subprocess.Popen[bytes] = field(repr=False)
    # Until enforce_iam(), any key is accepted; after it, the admin user's.
    admin: tuple[str, str] = ("testing", "testing")

    def env(self, key: tuple[str, str] | None = None) -> dict[str, str]:
        """The standard AWS configuration a process needs to reach this emulator."""
        key_id, secret = key or self.admin
        return {
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": self.url,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": key_id,
            "AWS_SECRET_ACCESS_KEY": secret,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }

    def secrets_manager(self, key: tuple[str, str] | None = None) -> SecretsManagerClient:
        client: SecretsManagerClient = self._client("secretsmanager", key)
        return client

    def value(self, name: str, stage: str = "AWSCURRENT") -> str:
        """The client secret in the version labelled ``stage``."""
        got = self.secrets_manager().get_secret_value(SecretId=name, VersionStage=stage)
        secret: str = json.loads(got["SecretString"])["client_secret"]
        return secret

    def labels(self, name: str) -> list[list[str]]:
        stages = self.secrets_manager().describe_secret(SecretId=name)["VersionIdsToStages"]
        return sorted(sorted(labels) for labels in stages.values())

    def iam_user(self, name: str, actions: list[str]) -> tuple[str, str]:
        """An IAM user allowed ``actions``, and its access key. moto authorises Secrets
        Manager calls by action on resource "*", so a policy's resource restriction (the
        README's one name prefix) cannot be tested against it: statements here use "*"."""
        iam = self._client("iam", None)
        iam.create_user(UserName=name)
        self.set_policy(name, actions)
        key = iam.create_access_key(UserName=name)["AccessKey"]
        return key["AccessKeyId"], key["SecretAccessKey"]

    def set_policy(self, name: str, actions: list[str]) -> None:
        document = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
        }
        self._client("iam", None).put_user_policy(
            UserName=name, PolicyName="mcpward", PolicyDocument=json.dumps(document)
        )

    def enforce_iam(self) -> None:
        """From now on every request must be signed by an IAM user's key and allowed."""
        self.admin = self.iam_user("admin", ["iam:*", "secretsmanager:*"])
        answer = httpx.post(
            f"{self.url}/moto-api/reset-auth",
            content=b"0",
            headers={"Content-Type": "text/plain"},
            timeout=10,
        )
        answer.raise_for_status()

    def _client(self, service: str, key: tuple[str, str] | None) -> Any:
        key_id, secret = key or self.admin
        return boto3.client(
            service,  # type: ignore[call-overload]
            region_name=REGION,
            endpoint_url=self.url,
            aws_access_key_id=key_id,
            aws_secret_access_key=secret,
        )

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def moto_server() -> Iterator[Moto]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    moto = Moto(f"http://127.0.0.1:{port}", process)
    try:
        _wait_until_answering(f"{moto.url}/moto-api/", process)
        yield moto
    finally:
        if process.poll() is None:
            moto.stop()


# -- Vault KV v2 ------------------------------------------------------------------------


@dataclass
class FakeVault:
    url: str
    process: subprocess.Popen[str] = field(repr=False)

    def client(self, token: str = ROOT_TOKEN) -> hvac.Client:
        return hvac.Client(url=self.url, token=token)

    def env(self, token: str) -> dict[str, str]:
        return {"VAULT_ADDR": self.url, "VAULT_TOKEN": token}

    def read(self, path: str, version: int | None = None, mount: str = "secret") -> Any:
        """A version's data, read with the root token through hvac."""
        got = self.client().secrets.kv.v2.read_secret_version(
            path, version=version, mount_point=mount, raise_on_deleted_version=True
        )
        return got["data"]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


@contextmanager
def fake_vault(
    tokens: dict[str, str], mounts: tuple[str, ...] = ("secret",)
) -> Iterator[FakeVault]:
    """``tokens`` maps a token to its ACL policy in HCL; the token "root" may do anything."""
    config = {"mounts": list(mounts), "tokens": {ROOT_TOKEN: "root", **tokens}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(config, f)
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.secret_stores.fake_vault", f.name],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line:
            raise RuntimeError("the Vault stand-in did not start")
        vault = FakeVault(f"http://127.0.0.1:{json.loads(line)['port']}", process)
        yield vault
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=10)
        os.unlink(f.name)


def _wait_until_answering(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited with {process.returncode}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{url} does not answer")


# -- the README's policies ----------------------------------------------------------------


def readme_section() -> str:
    text = README.read_text()
    start = text.index("## Secret stores")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def readme_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", readme_section(), re.S)


def readme_vault_policy(comment: str) -> str:
    """The HCL block of the README's secret-store section whose first line is ``comment``."""
    for block in readme_blocks("hcl"):
        if block.startswith(f"# {comment}"):
            return block
    raise AssertionError(f"no Vault policy '# {comment}' in the README")


def readme_iam_actions(sid: str) -> list[str]:
    """The actions of the README's IAM policy statement ``sid``."""
    for block in readme_blocks("json"):
        for statement in json.loads(block)["Statement"]:
            if statement.get("Sid") == sid:
                actions: list[str] = statement["Action"]
                return actions
    raise AssertionError(f"no IAM statement {sid} in the README")


# -- one store, three ways to reach it ---------------------------------------------------


@dataclass
class Store:
    """A store as the tests use it: the ``secret_sink`` spec and environment the CLI gets,
    the same sink built in-process, and what readers would get from it now."""

    spec: str
    env: dict[str, str]
    sink: SecretSink
    current: Callable[[str], str | None]
    moto: Moto | None = None
    vault: FakeVault | None = None


@contextmanager
def store(kind: str, tmp_path: Path, vault_tokens: dict[str, str] | None = None) -> Iterator[Store]:
    """``vault_tokens``: more Vault tokens and their policies, beside the rotator's."""
    if kind == "dir":
        directory = tmp_path / "secrets"

        def from_file(client_id: str) -> str | None:
            path = directory / client_id
            return path.read_text().strip() if path.exists() else None

        yield Store(f"dir:{directory}", {}, DirectorySink(directory), from_file)
    elif kind == "aws-sm":
        with moto_server() as moto:

            def from_aws(client_id: str) -> str | None:
                try:
                    return moto.value(f"{CLIENTS}/{client_id}")
                except moto.secrets_manager().exceptions.ResourceNotFoundException:
                    return None

            aws = AwsSecretsManagerSink(store=AwsSecrets(moto.secrets_manager()))
            yield Store(f"aws-sm:{CLIENTS}/{{client_id}}", moto.env(), aws, from_aws, moto=moto)
    elif kind == "vault":
        tokens = {ROTATOR: readme_vault_policy("mcpward rotation"), **(vault_tokens or {})}
        with fake_vault(tokens) as vault:

            def from_vault(client_id: str) -> str | None:
                try:
                    data = vault.read(f"{CLIENTS}/{client_id}")["data"]
                except hvac.exceptions.InvalidPath:
                    return None
                secret: str = data["client_secret"]
                return secret

            kv = VaultSink(VaultKv("secret", vault.client(ROTATOR)))
            spec = f"vault:secret/{CLIENTS}/{{client_id}}"
            yield Store(spec, vault.env(ROTATOR), kv, from_vault, vault=vault)
    else:
        raise ValueError(kind)
