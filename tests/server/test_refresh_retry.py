"""Benign concurrency on the refresh grant (issue 14, finding 5), on SQLite and PostgreSQL
with a clock the tests move: a spent refresh token presented again by its client within
the retry window gets the same successor and a new access token; outside the window, or
once the successor itself was used, it is a reuse and revokes the family; the successor
is stored encrypted, bound to its row, and erased when the window closes or the chain
moves on. Across real replicas: tests/topology/test_refresh_replicas.py."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest
from alembic import command
from cryptography.exceptions import InvalidTag
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection

from mcpward._secrets import credential_hash
from mcpward.storage.database import _alembic_config, current_revision, open_engine, upgrade
from mcpward.storage.schema import refresh_tokens
from tests.server.conftest import Running
from tests.server.support import get_code, public_client, redeem, refresh


async def first_tokens(running: Running) -> dict[str, str]:
    await public_client(running)
    verifier = secrets.token_urlsafe(48)
    resp = await redeem(running, await get_code(running, verifier), verifier)
    assert resp.status_code == 200, resp.text
    body: dict[str, str] = resp.json()
    return body


def events(running: Running, name: str) -> list[dict[str, object]]:
    return [e for e in running.audit.events() if e["event"] == name]


async def stored(running: Running, token: str) -> tuple[bytes | None, float | None]:
    async with running.engine.connect() as conn:
        row = (
            await conn.execute(
                select(refresh_tokens.c.successor_enc, refresh_tokens.c.successor_until).where(
                    refresh_tokens.c.token_hash == credential_hash(token)
                )
            )
        ).one()
    return row.successor_enc, row.successor_until


async def test_a_retry_within_the_window_gets_the_same_successor(running: Running) -> None:
    first = await first_tokens(running)
    rotated = (await refresh(running, first["refresh_token"])).json()
    running.clock.advance(5)
    retried = await refresh(running, first["refresh_token"])
    assert retried.status_code == 200, retried.text
    again = retried.json()
    assert again["refresh_token"] == rotated["refresh_token"]
    assert again["access_token"] != rotated["access_token"]  # a fresh one, same grant
    assert again["scope"] == rotated["scope"]
    # Nothing was revoked: the successor rotates as usual.
    assert (await refresh(running, rotated["refresh_token"])).status_code == 200
    assert len(events(running, "token.refreshed")) == 2
    [event] = events(running, "refresh.retried")
    assert event["client_id"] == "cli" and event["outcome"] == "ok"
    assert not events(running, "refresh.reuse_detected")
    assert all(rotated["refresh_token"] not in line for line in running.audit.lines)


async def test_a_replay_after_the_window_revokes_the_family(running: Running) -> None:
    first = await first_tokens(running)
    rotated = (await refresh(running, first["refresh_token"])).json()
    running.clock.advance(running.server.settings.refresh_retry_window + 0.5)
    replay = await refresh(running, first["refresh_token"])
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"
    # The family is gone: the legitimate holder's successor dies with it.
    assert (await refresh(running, rotated["refresh_token"])).json()["error"] == "invalid_grant"
    assert len(events(running, "refresh.reuse_detected")) == 1


async def test_a_fork_is_caught_at_the_next_rotation(running: Running) -> None:
    """Two holders of one token both get its successor (inside the window); when both use
    that successor, the second use (outside its own window) is a reuse."""
    first = await first_tokens(running)
    a = (await refresh(running, first["refresh_token"])).json()
    b = (await refresh(running, first["refresh_token"])).json()
    assert a["refresh_token"] == b["refresh_token"]
    running.clock.advance(600)
    assert (await refresh(running, a["refresh_token"])).status_code == 200
    running.clock.advance(running.server.settings.refresh_retry_window + 1)
    forked = await refresh(running, b["refresh_token"])
    assert forked.json()["error"] == "invalid_grant"
    assert len(events(running, "refresh.reuse_detected")) == 1


async def test_once_the_successor_is_used_its_predecessor_is_a_reuse(running: Running) -> None:
    first = await first_tokens(running)
    second = (await refresh(running, first["refresh_token"])).json()
    assert (await refresh(running, second["refresh_token"])).status_code == 200
    # Still inside the first token's window, but the chain has moved on.
    assert (await stored(running, first["refresh_token"]))[0] is None
    replay = await refresh(running, first["refresh_token"])
    assert replay.json()["error"] == "invalid_grant"
    assert len(events(running, "refresh.reuse_detected")) == 1


async def test_another_client_gets_no_successor(running: Running) -> None:
    first = await first_tokens(running)
    await public_client(running, "other")
    await refresh(running, first["refresh_token"])
    resp = await refresh(running, first["refresh_token"], client_id="other")
    assert resp.json()["error"] == "invalid_grant"
    assert "refresh_token" not in resp.json()


async def test_the_successor_is_stored_sealed_and_erased_when_the_window_closes(
    running: Running,
) -> None:
    first = await first_tokens(running)
    rotated = (await refresh(running, first["refresh_token"])).json()
    sealed, until = await stored(running, first["refresh_token"])
    assert sealed is not None and until is not None
    assert rotated["refresh_token"].encode() not in sealed
    # Bound to its row: it does not open as another token's successor.
    key = running.server.successor_key
    assert key.decrypt(sealed, "refresh successor of " + credential_hash(first["refresh_token"]))
    with pytest.raises(InvalidTag):
        key.decrypt(sealed, "refresh successor of " + credential_hash(rotated["refresh_token"]))
    running.clock.advance(running.server.settings.refresh_retry_window + 1)
    await running.server.store.grants.purge_expired(running.clock())
    assert await stored(running, first["refresh_token"]) == (None, None)


async def test_fifty_concurrent_refreshes_rotate_once_and_share_the_successor(
    running: Running,
) -> None:
    first = await first_tokens(running)
    data = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
    limits = httpx.Limits(max_connections=50)
    async with httpx.AsyncClient(base_url=running.url, limits=limits, timeout=60) as http:
        responses = await asyncio.gather(
            *[http.post("/token", data={**data, "client_id": "cli"}) for _ in range(50)]
        )
    assert [r.status_code for r in responses] == [200] * 50, [r.text for r in responses]
    assert len({r.json()["refresh_token"] for r in responses}) == 1
    assert len({r.json()["access_token"] for r in responses}) == 50
    assert len(events(running, "token.refreshed")) == 1
    assert len(events(running, "refresh.retried")) == 49


async def test_strict_mode_revokes_on_the_first_retry(strict_running: Running) -> None:
    running = strict_running
    first = await first_tokens(running)
    rotated = (await refresh(running, first["refresh_token"])).json()
    assert (await stored(running, first["refresh_token"])) == (None, None)
    assert (await refresh(running, first["refresh_token"])).json()["error"] == "invalid_grant"
    assert (await refresh(running, rotated["refresh_token"])).json()["error"] == "invalid_grant"
    assert len(events(running, "refresh.reuse_detected")) == 1


async def test_migration_0004_upgrades_downgrades_and_upgrades_again(database_url: str) -> None:
    engine = open_engine(database_url)

    def columns(connection: Connection) -> set[str]:
        return {c["name"] for c in inspect(connection).get_columns("refresh_tokens")}

    def downgrade(connection: Connection) -> None:
        config = _alembic_config(str(engine.url))
        config.attributes["connection"] = connection
        command.downgrade(config, "0003")

    added = {"parent_hash", "successor_enc", "successor_until"}
    try:
        await upgrade(engine, "0004")
        async with engine.connect() as conn:
            assert added <= await conn.run_sync(columns)
        async with engine.begin() as conn:
            await conn.run_sync(downgrade)
        assert await current_revision(engine) == "0003"
        async with engine.connect() as conn:
            assert not added & await conn.run_sync(columns)
        await upgrade(engine, "0004")
        assert await current_revision(engine) == "0004"
    finally:
        await engine.dispose()
