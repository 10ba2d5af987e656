"""A rotation cut off between its steps (the process died, the machine rebooted) is put
right by the next `mcpward clients rotate-due`, run as the real CLI: a secret staged but
never committed is discarded, one committed but not yet promoted is promoted. The stores
are real processes: a directory, moto's server mode (an emulator of AWS Secrets Manager)
and the KV v2 stand-in for Vault (see fake_vault.py for why no real Vault runs here)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcpward.server import AuthorizationServer
from tests.secret_stores.stores import CLIENTS, Store, store
from tests.secret_stores.support import Cli, cli_for, open_server
from tests.secret_stores.support import valid as valid_for

RESOURCE = "http://127.0.0.1:8400/mcp"


@pytest.fixture(params=["dir", "aws-sm", "vault"])
def kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def valid(server: AuthorizationServer, secret: str | None) -> bool:
    return await valid_for(server, "agent", secret)


@pytest.fixture
async def setup(kind: str, tmp_path: Path) -> AsyncIterator[tuple[Store, Cli]]:
    with store(kind, tmp_path) as where:
        cli = cli_for(tmp_path, where.spec, where.env)
        cli.json("resources", "add", RESOURCE, "--scope", "orders.read=Read orders")
        cli.json("clients", "create", "agent", "--scope", "orders.read")
        # The first secret into the store, the printed one retired at once.
        assert cli.json("clients", "rotate-secret", "agent", "--overlap", "0")["delivered"]
        yield where, cli


async def test_a_secret_staged_but_never_committed_is_discarded(
    setup: tuple[Store, Cli], tmp_path: Path
) -> None:
    where, cli = setup
    first = where.current("agent")
    server = await open_server(tmp_path)
    try:
        assert await valid(server, first)
        # The process stages a new secret and dies before committing it.
        lost = server.clients.new_secret("agent")
        await where.sink.stage("agent", lost.secret, lost.expires_at)
        found = await where.sink.staged("agent")
        assert found is not None and found.secret == lost.secret
        assert where.current("agent") == first  # readers never saw it

        report = cli.json("clients", "rotate-due")
        assert report == {"rotated": [], "finished": [], "discarded": ["agent"], "failed": {}}
        assert await where.sink.staged("agent") is None
        assert where.current("agent") == first
        assert await valid(server, first) and not await valid(server, lost.secret)
    finally:
        await server.close()


async def test_a_secret_committed_but_not_promoted_is_promoted(
    setup: tuple[Store, Cli], tmp_path: Path, kind: str
) -> None:
    where, cli = setup
    first = where.current("agent")
    server = await open_server(tmp_path)
    try:
        # The process stages and commits, then dies before promoting: the new secret is
        # valid and its one copy is the staged one; the old one is still current.
        new = server.clients.new_secret("agent")
        await where.sink.stage("agent", new.secret, new.expires_at)
        await server.clients.rotate_secret("agent", secret=new)
        assert where.current("agent") == first
        assert await valid(server, first) and await valid(server, new.secret)

        # Not due (the new secret lives 90 days), but the staged one is finished.
        report = cli.json("clients", "rotate-due")
        assert report == {"rotated": [], "finished": ["agent"], "discarded": [], "failed": {}}
        assert where.current("agent") == new.secret
        assert await where.sink.staged("agent") is None
        assert await valid(server, first)  # until the overlap ends
        if where.moto is not None:
            assert where.moto.value(f"{CLIENTS}/agent", "AWSPREVIOUS") == first
            assert where.moto.labels(f"{CLIENTS}/agent") == [["AWSCURRENT"], ["AWSPREVIOUS"]]
        if where.vault is not None:
            # v1 staged the first secret, v2 promoted it; v3 staged the new one next to
            # it, v4 promoted it. The old secret stays readable in v2 and v3.
            versions = [where.vault.read(f"{CLIENTS}/agent", v)["data"] for v in (2, 3, 4)]
            assert [v.get("client_secret") for v in versions] == [first, first, new.secret]
            assert versions[1]["pending_client_secret"] == new.secret
            assert "pending_client_secret" not in versions[2]

        # A second run finds nothing left to do.
        again = cli.json("clients", "rotate-due")
        assert again == {"rotated": [], "finished": [], "discarded": [], "failed": {}}
    finally:
        await server.close()


async def test_a_store_left_with_an_older_secret_is_rotated_again(
    setup: tuple[Store, Cli], tmp_path: Path
) -> None:
    where, cli = setup
    first = where.current("agent")
    # A client whose secret was only printed, never put in the store: not ours to move.
    cli.json("clients", "create", "printed-only", "--scope", "orders.read")
    server = await open_server(tmp_path)
    try:
        # A rotation committed in mcpward whose copy never became current (it lost a
        # race with another rotation of the same client): readers still get `first`.
        orphan = await server.clients.rotate_secret("agent")
        assert where.current("agent") == first

        report = cli.json("clients", "rotate-due")
        assert report == {"rotated": ["agent"], "finished": [], "discarded": [], "failed": {}}
        newest = where.current("agent")
        assert newest not in (None, first, orphan.secret)
        for secret in (first, orphan.secret, newest):  # the old ones for the overlap
            assert await valid(server, secret)
        assert where.current("printed-only") is None
    finally:
        await server.close()
