"""``mcpward keys``: the token signing keys and their rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_operations, table, when

if TYPE_CHECKING:
    from mcpward.operations import Actor, Operations


@main.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """Signing keys and their life cycle."""

    async def go(ops: Operations, actor: Actor) -> list[dict[str, Any]]:
        return [
            {
                "kid": k.record.kid,
                "alg": k.record.alg,
                "state": k.state,
                "created_at": k.record.created_at,
                "active_at": k.record.active_at,
                "retired_at": k.record.retired_at,
                "published_until": k.record.published_until,
            }
            for k in await ops.keys.list()
        ]

    rows = run_operations(go)
    emit(
        rows,
        as_json,
        table(
            [
                [r["kid"], r["alg"], r["state"], when(r["active_at"]), when(r["published_until"])]
                for r in rows
            ],
            ["KID", "ALG", "STATE", "SIGNS FROM", "PUBLISHED UNTIL"],
        ),
    )


@keys.command("rotate")
@click.option("--immediate", is_flag=True, help="Sign with the new key at once (compromise).")
@json_option
def keys_rotate(immediate: bool, as_json: bool) -> None:
    """Add a new signing key: published now, signing after the publish lead time."""

    async def go(ops: Operations, actor: Actor) -> dict[str, Any]:
        record = await ops.keys.rotate(actor, immediate=immediate)
        return {"kid": record.kid, "alg": record.alg, "active_at": record.active_at}

    data = run_operations(go)
    emit(data, as_json, [f"new key {data['kid']} signs from {when(data['active_at'])}"])
