"""An agent that keeps getting tokens from a real mcpward server (``mcpward serve --demo``,
its own process) while the operator CLI rotates its secret into a store, and reads the
secret from that store with no restart. The stores are separate processes too: moto's
server mode, an emulator of AWS Secrets Manager (no AWS account is reachable here), and
the KV v2 stand-in for Vault (no Vault server can be installed here; see fake_vault.py).

Access tokens live 4 s, so the agent renews one every 2 s in the background, as it would
every 7.5 minutes in production."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from mcpward.client import AgentAuth, AwsSecret, SecretSource, VaultSecret
from tests.secret_stores.stores import CLIENTS, Store, readme_vault_policy, store
from tests.secret_stores.support import TokenRequests, arun, cli_for, refused, serving, token_status

AGENT = "agent-backfill"
AGENT_TOKEN = "agent-token"  # a Vault token holding the README's agent policy


@contextmanager
def reader_for(where: Store) -> Iterator[SecretSource]:
    if where.moto is not None:
        yield AwsSecret(f"{CLIENTS}/{AGENT}", client=where.moto.secrets_manager())
    else:
        assert where.vault is not None
        yield VaultSecret(f"{CLIENTS}/{AGENT}", client=where.vault.client(AGENT_TOKEN))


@pytest.mark.parametrize("kind", ["aws-sm", "vault"])
async def test_an_agent_keeps_working_across_rotations(kind: str, tmp_path: Path) -> None:
    agent_policy = {AGENT_TOKEN: readme_vault_policy("an agent reading")}
    with store(kind, tmp_path, agent_policy) as where, reader_for(where) as reader:
        cli = cli_for(tmp_path, where.spec, where.env)
        async with serving(cli, MCPWARD_LIFETIMES__ACCESS_TOKEN="4") as issuer:
            printed = (await arun(cli, "clients", "create", AGENT, "--scope", "orders.read"))[
                "client_secret"
            ]
            # The first secret into the store; the printed one retired at once.
            await arun(cli, "clients", "rotate-secret", AGENT, "--overlap", "0")
            first = where.current(AGENT)
            assert first is not None and first != printed
            await refused(issuer, AGENT, printed)

            requests = TokenRequests()
            http = httpx.AsyncClient(event_hooks=requests.hooks())
            auth = AgentAuth(f"{issuer}/mcp", client_id=AGENT, client_secret=reader, http=http)
            try:
                async with (
                    httpx2.AsyncClient(auth=auth) as mcp_http,
                    Client(streamable_http_client(f"{issuer}/mcp", http_client=mcp_http)) as mcp,
                ):
                    found = await mcp.call_tool("search_orders", {"query": "acme"})
                    assert not found.is_error
                    assert requests.seen and set(requests.seen) == {(first, 200)}

                    # The daily job: a new secret, the old one kept for the overlap.
                    due = await arun(cli, "clients", "rotate-due", "--within", str(91 * 86400))
                    assert AGENT in due["rotated"] and not due["failed"]
                    assert all(status == 200 for _, status in requests.seen), [
                        (secret == first, status) for secret, status in requests.seen
                    ]
                    second = where.current(AGENT)
                    assert second not in (None, first)
                    assert await token_status(issuer, AGENT, first) == 200
                    assert await token_status(issuer, AGENT, second) == 200
                    if where.moto is not None:
                        assert where.moto.value(f"{CLIENTS}/{AGENT}", "AWSPREVIOUS") == first
                    # The agent's next renewal reads the new secret.
                    await requests.wait_for(lambda seen: (second, 200) in seen)
                    assert not (await mcp.call_tool("search_orders", {"query": "acme"})).is_error

                    # Cut short: a rotation with no overlap lands while the agent's next
                    # token request, made with the secret it just read, is on its way.
                    async def rotate_now() -> None:
                        await arun(cli, "clients", "rotate-secret", AGENT, "--overlap", "0")
                        await refused(issuer, AGENT, second)

                    requests.before_next = rotate_now

                    def answered(seen: list[tuple[str, int]]) -> bool:
                        return requests.raced_at is not None and len(seen) > requests.raced_at + 1

                    await requests.wait_for(answered)
                    third = where.current(AGENT)
                    assert third not in (None, first, second)
                    # Refused as invalid_client, re-read the store, and carried on.
                    assert requests.raced_at is not None
                    at = requests.raced_at
                    assert requests.seen[at : at + 2] == [(second, 401), (third, 200)]
                    assert not (await mcp.call_tool("search_orders", {"query": "acme"})).is_error
            finally:
                await auth.aclose()
                await http.aclose()
            assert await token_status(issuer, AGENT, first) == 401
            assert await token_status(issuer, AGENT, second) == 401
            assert await token_status(issuer, AGENT, third) == 200
