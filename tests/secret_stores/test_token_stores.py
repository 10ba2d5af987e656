"""Sessions kept in AWS Secrets Manager and Vault KV v2 (`AwsSecretsManagerStore`,
`VaultStore`): stored and read back, locked across processes by a lease written with the
store's conditional writes, and two real processes racing refreshes of one session
against a real mcpward server without spending a refresh token twice.

AWS is moto's server mode, an emulator of the real API, in its own process; Vault is the
KV v2 stand-in of fake_vault.py enforcing the README's session policy (no Vault server
can be installed here)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from mcpward._clock import system_clock
from mcpward.client import (
    AwsSecretsManagerStore,
    HumanAuth,
    Registration,
    SharedTokenStore,
    StoredSession,
    VaultStore,
)
from mcpward.client._discovery import canonical_resource
from mcpward.client._shared_store import SharedStore
from mcpward.client._token_store import session_key
from tests.client.conftest import serve_demo
from tests.pages.support import (
    REDIRECT,
    Browserish,
    Site,
    authorize_params,
    new_verifier,
    redeem,
)
from tests.pages.support import start_site as start_pages_site
from tests.secret_stores.stores import ROOT, fake_vault, moto_server, readme_vault_policy
from tests.services import free_port

SESSIONS_TOKEN = "sessions-token"  # a Vault token holding the README's session policy


@dataclass
class Sessions:
    """A session store, and how another process reaches the same one."""

    make: Callable[[], SharedStore]
    env: dict[str, str]
    raw: Callable[[str], dict[str, object]]  # the stored document, read directly
    held: Callable[[str], bool]  # whether a lease is on it, read directly
    versions: Callable[[str], int]  # how many versions the store keeps


@contextmanager
def sessions(kind: str) -> Iterator[Sessions]:
    if kind == "aws-sm":
        with moto_server() as moto:

            def aws_raw(name: str) -> dict[str, object]:
                got = moto.secrets_manager().get_secret_value(SecretId=name)
                document: dict[str, object] = json.loads(got["SecretString"])
                return document

            def aws_store() -> SharedStore:
                return AwsSecretsManagerStore(client=moto.secrets_manager())

            def aws_held(name: str) -> bool:
                labels = moto.labels(name)
                return any(label.startswith("mcpward-lock-") for ls in labels for label in ls)

            def aws_versions(name: str) -> int:
                return len(moto.labels(name))

            yield Sessions(aws_store, moto.env(), aws_raw, aws_held, aws_versions)
    else:
        policy = readme_vault_policy("sessions kept by VaultStore")
        with fake_vault({SESSIONS_TOKEN: policy}) as vault:

            def vault_raw(name: str) -> dict[str, object]:
                document: dict[str, object] = vault.read(name)["data"]
                return document

            def vault_store() -> SharedStore:
                return VaultStore(client=vault.client(SESSIONS_TOKEN))

            def vault_held(name: str) -> bool:
                return vault_raw(name)["lease"] is not None

            def vault_versions(name: str) -> int:
                version: int = vault.read(name)["metadata"]["version"]
                return version

            env = vault.env(SESSIONS_TOKEN)
            yield Sessions(vault_store, env, vault_raw, vault_held, vault_versions)


KINDS = pytest.mark.parametrize("kind", ["aws-sm", "vault"])
KEY = "https://mcp.example.com/mcp"
SESSION = StoredSession(
    resource=KEY,
    registration=Registration("https://as.example.com", "client-1", "none", None, ("x",)),
    refresh_token="mcpw_rt_example",
    scope="orders.read",
)


@KINDS
async def test_sessions_round_trip_and_lock_across_store_objects(kind: str) -> None:
    with sessions(kind) as where:
        one, other = where.make(), where.make()
        assert isinstance(one, SharedTokenStore)
        assert one.load(KEY) is None
        one.save(KEY, SESSION)
        assert other.load(KEY) == SESSION
        name = one.name(KEY)
        assert name.startswith("mcpward/sessions/https---mcp-example-com-mcp-")
        assert where.raw(name)["lease"] is None and not where.held(name)
        before = where.versions(name)

        # The lease: the second holder waits for the first, which saves and releases.
        order: list[str] = []

        async def hold(store: SharedStore, label: str, token: str) -> None:
            async with store.lock(KEY):
                order.append(f"{label} in")
                assert where.held(name)
                await asyncio.sleep(0.2)
                session = store.load(KEY)
                assert session is not None
                store.save(KEY, StoredSession(KEY, session.registration, token, session.scope))
                order.append(f"{label} out")

        await asyncio.gather(hold(one, "a", "rt-a"), hold(other, "b", "rt-b"))
        assert order in (["a in", "a out", "b in", "b out"], ["b in", "b out", "a in", "a out"])
        last = order[-1][0]
        final = one.load(KEY)
        assert final is not None and final.refresh_token == f"rt-{last}"
        assert not where.held(name)
        # A refresh costs AWS one version (its quota allows about one per 10 minutes);
        # Vault two, a lease and a save.
        assert where.versions(name) - before == (2 if kind == "aws-sm" else 4)

        one.delete(KEY)
        assert other.load(KEY) is None


@KINDS
async def test_a_lease_left_by_a_crashed_process_expires(kind: str, tmp_path: Path) -> None:
    with sessions(kind) as where:
        store = where.make()
        store.save(KEY, SESSION)
        crash = (
            "import asyncio, os, sys\n"
            "from mcpward.client import AwsSecretsManagerStore, VaultStore\n"
            "store = AwsSecretsManagerStore() if sys.argv[1] == 'aws-sm' else VaultStore()\n"
            "async def main():\n"
            f"    async with store.lock({KEY!r}):\n"
            "        os._exit(3)  # dies holding the lease\n"
            "asyncio.run(main())\n"
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", crash, kind, env={**os.environ, **where.env}, cwd=ROOT
        )
        assert await proc.wait() == 3
        assert where.held(store.name(KEY))

        # A process 61 s later (its clock moved on, rather than this test waiting) takes it.
        later = where.make()
        later._clock = lambda: time.time() + later.lease_ttl + 1
        async with later.lock(KEY):
            assert later.load(KEY) == SESSION


@pytest.fixture
async def signed_in(tmp_path: Path) -> AsyncIterator[tuple[Site, StoredSession]]:
    """A real authorization server with its sign-in pages, a guarded MCP server, and the
    session a person's sign-in through those pages leaves."""
    mcp_port = free_port()
    resource = f"http://127.0.0.1:{mcp_port}/mcp"
    async with start_pages_site(tmp_path, clock=system_clock, resource=resource) as site:
        await site.add_user()
        await site.add_client()
        verifier = new_verifier()
        async with Browserish(site) as browser:
            code = await browser.code_for(authorize_params(site, verifier))
        answer = await redeem(site, code, verifier)
        assert answer.status_code == 200, answer.text
        session = StoredSession(
            resource=canonical_resource(resource),
            registration=Registration(site.issuer, "cli", "none", None, (REDIRECT,)),
            refresh_token=answer.json()["refresh_token"],
            scope=answer.json()["scope"],
        )
        async with serve_demo(site.issuer, resource, mcp_port):
            yield site, session


ROUNDS = 4


@KINDS
async def test_two_processes_racing_never_spend_one_refresh_token_twice(
    kind: str, tmp_path: Path, signed_in: tuple[Site, StoredSession]
) -> None:
    site, session = signed_in
    with sessions(kind) as where:
        where.make().save(session_key(session.resource, site.issuer), session)
        racers = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.secret_stores.racer",
                kind,
                session.resource,
                str(ROUNDS),
                env={**os.environ, **where.env, "XDG_STATE_HOME": str(tmp_path / f"state{i}")},
                cwd=ROOT,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
            )
            for i in range(2)
        ]
        for racer in racers:
            assert racer.stdout is not None
            assert await racer.stdout.readline() == b"ready\n"
        results = await asyncio.gather(*(racer.communicate(b"go\n") for racer in racers))
        assert [r.returncode for r in racers] == [0, 0]
        assert [json.loads(out) for out, _ in results] == [{"tokens": ROUNDS}] * 2
        # Every round refreshed, one at a time: no refresh token was presented twice.
        assert len(site.events("token.refreshed")) == 2 * ROUNDS
        assert not [e for e in site.events() if e["outcome"] == "reuse_detected"]

        # The session left in the store still refreshes.
        last = HumanAuth(session.resource, store=where.make(), interactive=False)
        try:
            assert await last.token()
        finally:
            await last.aclose()
