"""With 10,000 clients and 10,000 token families the console's lists stay fast: every
list is a keyset page read along an index, so page 200 costs what page 1 costs. Measured
on SQLite and PostgreSQL, through the operations layer and through the console's HTTP
pages, with OFFSET paging (what the indexes avoid) measured in the same run as the
baseline, and so is loading every client at once (what `mcpward clients list` does).
Figures are printed; the machine is shared, so the bounds are generous and
the ratios are what to read."""

from __future__ import annotations

import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select

from mcpward.operations import Operations
from mcpward.operations._base import time_cursor
from mcpward.storage.schema import clients, refresh_tokens, token_families, users
from tests.console.support import OperatorClient, start_console

CLIENTS = 10_000
FAMILIES = 10_000
HEAVY = "claude-desktop"  # one client holding half of the families
RUNS = 15


async def median_ms(run: Callable[[], Awaitable[Any]]) -> float:
    await run()  # warm: connection, statement cache
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        await run()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


async def fill(engine: Any, now: float) -> None:
    """10,000 clients (a DCR flood, some pre-registered), 200 users, 10,000 families
    (half on one client) with two refresh tokens each, inserted in bulk."""
    sources = ("dcr",) * 9 + ("preregistered",)
    client_rows: list[dict[str, Any]] = [
        {
            "client_id": HEAVY if i == 0 else f"client-{i:05d}",
            "name": "Claude" if i % 3 else f"Agent {i}",
            "source": sources[i % 10],
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "redirect_uris": [f"http://127.0.0.1:{20000 + i % 40000}/callback"],
            "application_type": "native",
            "metadata": {},
            "created_at": now - (CLIENTS - i) * 60.0,
            "disabled_at": now if i % 97 == 0 else None,
        }
        for i in range(CLIENTS)
    ]
    user_rows: list[dict[str, Any]] = [
        {"id": f"user-{u:03d}", "username": f"user{u:03d}", "password_hash": None,
         "created_at": now - 1e6}
        for u in range(200)
    ]  # fmt: skip
    family_rows: list[dict[str, Any]] = []
    refresh_rows: list[dict[str, Any]] = []
    for f in range(FAMILIES):
        at = now - (FAMILIES - f) * 30.0
        family_rows.append(
            {
                "id": f"fam-{f:05d}",
                "client_id": HEAVY if f % 2 == 0 else f"client-{1 + f % (CLIENTS - 1):05d}",
                "subject": f"user-{f % 200:03d}",
                "resource": "https://mcp.example/mcp",
                "scope": "orders.read",
                "created_at": at,
                "absolute_expires_at": at + 90 * 86400,
                "revoked_at": at + 10 if f % 11 == 0 else None,
                "revoked_reason": "refresh_reuse" if f % 11 == 0 else None,
            }
        )
        for r in range(2):
            refresh_rows.append(
                {"token_hash": f"{f:05d}-{r}", "family_id": f"fam-{f:05d}", "scope": "orders.read",
                 "created_at": at + r * 5, "expires_at": at + 86400 * 30,
                 "used_at": at + 5 if r == 0 else None}
            )  # fmt: skip
    async with engine.begin() as conn:
        tables = (clients, users, token_families, refresh_tokens)
        for table, rows in zip(
            tables, (client_rows, user_rows, family_rows, refresh_rows), strict=True
        ):
            for start in range(0, len(rows), 2000):
                await conn.execute(insert(table), rows[start : start + 2000])


async def test_lists_stay_fast_with_ten_thousand_rows(database_url: str, tmp_path: Path) -> None:
    async with start_console(tmp_path, database_url=database_url) as site:
        engine = site.server.store.engine  # type: ignore[attr-defined]
        await fill(engine, site.clock())
        ops = Operations(site.server)
        deep_client = await _position(engine, 9_000)
        deep_family = await _family_position(engine, 2_400)

        figures = {
            "clients, page 1": await median_ms(lambda: ops.clients.page(limit=50)),
            "clients, page 181 (cursor)": await median_ms(
                lambda: ops.clients.page(deep_client, limit=50)
            ),
            "one query: keyset page at row 9,000": await median_ms(
                lambda: site.server.store.clients.page(before=time_cursor(deep_client), limit=50)
            ),
            "one query: OFFSET 9,000 (baseline)": await median_ms(lambda: _offset(engine, 9_000)),
            "every client at once (baseline: clients list)": await median_ms(
                site.server.store.clients.all
            ),
            "clients, DCR and active": await median_ms(
                lambda: ops.clients.page(limit=50, source="dcr", status="active")
            ),
            "clients, search 'agent 99'": await median_ms(
                lambda: ops.clients.page(limit=50, search="agent 99")
            ),
            "grants of one client (5,000), page 1": await median_ms(
                lambda: ops.grants.families(client_id=HEAVY, limit=50)
            ),
            "grants of one client, page 49 (cursor)": await median_ms(
                lambda: ops.grants.families(deep_family, client_id=HEAVY, limit=50)
            ),
            "grants of one user (50)": await median_ms(
                lambda: ops.grants.families(subject="user-007", limit=50)
            ),
            "users, page 1": await median_ms(lambda: ops.users.page(limit=50)),
        }
        async with OperatorClient(site) as c:
            assert (await c.sign_in()).status_code == 303
            for name, path in (
                ("HTTP /clients", "/clients"),
                ("HTTP /clients/show (5,000 grants)", f"/clients/show?id={HEAVY}"),
                ("HTTP /users/show", "/users/show?id=user-007"),
            ):

                async def fetch(path: str = path) -> None:
                    r = await c.get(path)
                    assert r.status_code == 200

                figures[name] = await median_ms(fetch)

        # What the pages show is right, not only fast.
        first = await ops.clients.page(limit=50)
        assert len(first.items) == 50 and first.next is not None
        assert first.items[0].client.client_id == f"client-{CLIENTS - 1:05d}"
        deep = await ops.clients.page(deep_client, limit=50)
        assert deep.items[0].client.client_id == f"client-{CLIENTS - 9_001:05d}"
        heavy = await ops.grants.families(client_id=HEAVY, limit=50)
        assert heavy.items[0].family.id == f"fam-{FAMILIES - 2:05d}"
        assert all(s.refresh_tokens == 2 for s in heavy.items)

    dialect = engine.dialect.name
    width = max(map(len, figures))
    print(f"\n{CLIENTS:,} clients, {FAMILIES:,} families on {dialect} (median of {RUNS}):")
    for name, ms in figures.items():
        print(f"  {name:<{width}}  {ms:7.2f} ms")
    ratio = figures["clients, page 181 (cursor)"] / figures["clients, page 1"]
    offset_ratio = (
        figures["one query: OFFSET 9,000 (baseline)"]
        / figures["one query: keyset page at row 9,000"]
    )
    whole = figures["every client at once (baseline: clients list)"] / figures["clients, page 1"]
    print(f"  deep page / first page: {ratio:.2f}; OFFSET / cursor at the same depth: "
          f"{offset_ratio:.1f}; the whole list / one page: {whole:.0f}")  # fmt: skip
    for name, ms in figures.items():
        if "baseline" not in name:
            assert ms < 250, (name, ms)
    assert ratio < 3


async def _position(engine: Any, index: int) -> str:
    """The cursor a reader has after ``index`` clients (newest first)."""
    from mcpward.operations._base import encode_cursor

    query = (
        select(clients.c.created_at, clients.c.client_id)
        .order_by(clients.c.created_at.desc(), clients.c.client_id.desc())
        .offset(index - 1)
        .limit(1)
    )
    async with engine.connect() as conn:
        at, client_id = (await conn.execute(query)).one()
    return encode_cursor(at, client_id)


async def _family_position(engine: Any, index: int) -> str:
    from mcpward.operations._base import encode_cursor

    query = (
        select(token_families.c.created_at, token_families.c.id)
        .where(token_families.c.client_id == HEAVY)
        .order_by(token_families.c.created_at.desc(), token_families.c.id.desc())
        .offset(index - 1)
        .limit(1)
    )
    async with engine.connect() as conn:
        at, family_id = (await conn.execute(query)).one()
    return encode_cursor(at, family_id)


async def _offset(engine: Any, index: int) -> None:
    query = (
        select(clients)
        .order_by(clients.c.created_at.desc(), clients.c.client_id.desc())
        .offset(index)
        .limit(50)
    )
    async with engine.connect() as conn:
        (await conn.execute(query)).all()
