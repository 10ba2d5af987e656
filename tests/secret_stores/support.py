"""The stores the secret-store tests run against, each a separate process on a free
127.0.0.1 port: moto's server mode (an emulator of the AWS Secrets Manager and IAM APIs;
no AWS account is reachable from here) and the KV v2 stand-in for Vault in
``fake_vault.py`` (no Vault server can be installed here; that module says why). Plus
the operator CLI as a subprocess, and the policies the README documents."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from asyncio.subprocess import DEVNULL, PIPE
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, unquote_plus

import boto3
import httpx
import hvac

from mcpward._secret_stores.aws import AwsSecrets
from mcpward._secret_stores.vault import VaultKv
from mcpward.config import Settings
from mcpward.server import AuthorizationServer
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
MCPWARD = str(Path(sys.executable).with_name("mcpward"))  # the venv's console script


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


# -- the operator CLI --------------------------------------------------------------------


@dataclass
class Cli:
    """``mcpward`` as an operator runs it, on one data directory and configuration."""

    env: dict[str, str]

    def run(
        self, *args: str, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [MCPWARD, *args],
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )

    def json(self, *args: str, extra_env: dict[str, str] | None = None) -> Any:
        done = self.run(*args, "--json", extra_env=extra_env)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)


def cli_for(tmp_path: Path, sink: str, store_env: dict[str, str]) -> Cli:
    """A configuration file naming the sink, a data directory, an audit file."""
    config = tmp_path / "mcpward.toml"
    config.write_text(f'secret_sink = "{sink}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "VAULT_", "MCPWARD_"))}
    env.update(
        MCPWARD_CONFIG=str(config),
        MCPWARD_DATA_DIR=str(tmp_path / "data"),
        MCPWARD_AUDIT_SINK=f"file:{tmp_path / 'audit.jsonl'}",
        **store_env,
    )
    return Cli(env)


# -- one store, three ways to reach it ---------------------------------------------------

ROTATOR = "rotator-token"  # a Vault token holding the README's rotation policy
CLIENTS = "mcpward/clients"


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
                return moto.value(f"{CLIENTS}/{client_id}")

            aws = AwsSecretsManagerSink(store=AwsSecrets(moto.secrets_manager()))
            yield Store(f"aws-sm:{CLIENTS}/{{client_id}}", moto.env(), aws, from_aws, moto=moto)
    elif kind == "vault":
        tokens = {ROTATOR: readme_vault_policy("mcpward rotation"), **(vault_tokens or {})}
        with fake_vault(tokens) as vault:

            def from_vault(client_id: str) -> str | None:
                secret: str = vault.read(f"{CLIENTS}/{client_id}")["data"]["client_secret"]
                return secret

            kv = VaultSink(VaultKv("secret", vault.client(ROTATOR)))
            spec = f"vault:secret/{CLIENTS}/{{client_id}}"
            yield Store(spec, vault.env(ROTATOR), kv, from_vault, vault=vault)
    else:
        raise ValueError(kind)


# -- a running authorization server --------------------------------------------------------


async def arun(cli: Cli, *args: str) -> Any:
    """``cli.json`` without blocking the event loop (an agent keeps running in it)."""
    proc = await asyncio.create_subprocess_exec(
        MCPWARD, *args, "--json", env=cli.env, stdout=PIPE, stderr=PIPE
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return json.loads(out)


@asynccontextmanager
async def serving(cli: Cli, **env: str) -> AsyncIterator[str]:
    """``mcpward serve --demo`` on the CLI's data directory; yields the issuer. The demo
    registers the resource ISSUER/mcp (scopes orders.read ...) behind the guard."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        MCPWARD,
        "serve",
        "--demo",
        "--port",
        str(port),
        env={**cli.env, **env},
        stdout=DEVNULL,
        stderr=DEVNULL,
    )
    issuer = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 60
            while True:
                assert proc.returncode is None, "mcpward serve exited"
                assert time.monotonic() < deadline, "mcpward serve does not answer"
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(f"{issuer}/healthz")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield issuer
    finally:
        proc.terminate()
        await proc.wait()


async def token_status(issuer: str, client_id: str, secret: str) -> int:
    """What the token endpoint answers a client_credentials request with this secret."""
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{issuer}/token",
            data={"grant_type": "client_credentials", "resource": f"{issuer}/mcp"},
            auth=(client_id, secret),
        )
    return answer.status_code


async def refused(issuer: str, client_id: str, secret: str) -> None:
    """Wait until the server refuses ``secret``: it caches a client for ``cache_ttl``
    (2 s), so a rotation by another process reaches it within that."""
    deadline = time.monotonic() + 30
    while await token_status(issuer, client_id, secret) != 401:
        assert time.monotonic() < deadline, "the old secret is still accepted"
        await asyncio.sleep(0.1)


def presented_secret(request: httpx.Request) -> str:
    """The client secret in a token request (client_secret_basic or _post)."""
    header = request.headers.get("authorization", "")
    if header.startswith("Basic "):
        _, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        return unquote_plus(secret)
    return parse_qs(request.content.decode()).get("client_secret", [""])[0]


@dataclass
class TokenRequests:
    """httpx event hooks on an agent's HTTP client: what it sent to the token endpoint
    and what came back, and an action run just before the next request leaves, while
    the agent already holds the secret it read (a rotation racing with it)."""

    seen: list[tuple[str, int]] = field(default_factory=list)
    before_next: Callable[[], Awaitable[None]] | None = None
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def hooks(self) -> dict[str, list[Callable[..., Any]]]:
        return {"request": [self._request], "response": [self._response]}

    async def _request(self, request: httpx.Request) -> None:
        if request.url.path == "/token" and self.before_next is not None:
            action, self.before_next = self.before_next, None
            await action()

    async def _response(self, response: httpx.Response) -> None:
        if response.request.url.path == "/token":
            self.seen.append((presented_secret(response.request), response.status_code))
            self._changed.set()

    async def wait_for(self, condition: Callable[[list[tuple[str, int]]], bool]) -> None:
        deadline = time.monotonic() + 90
        while not condition(self.seen):
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), deadline - time.monotonic())


# -- what mcpward itself accepts -------------------------------------------------------------


async def open_server(tmp_path: Path) -> AuthorizationServer:
    """The CLI's database and data key (``cli_for``), opened in this process."""
    return await AuthorizationServer.open(
        Settings(issuer="http://127.0.0.1:8400", data_dir=tmp_path / "data")
    )


async def valid(server: AuthorizationServer, client_id: str, secret: str | None) -> bool:
    server.clients.invalidate(client_id)  # the CLI changed the database behind our cache
    return secret is not None and await server.clients.check_secret(client_id, secret)
