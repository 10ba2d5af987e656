"""``mcpward keys``: the token signing keys and their rotation."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server, table, when

if TYPE_CHECKING:
    from mcpward.server import AuthorizationServer


@main.group()
def keys() -> None:
    """Token signing keys."""


@keys.command("list")
@json_option
def keys_list(as_json: bool) -> None:
    """Signing keys and their life cycle."""

    async def go(server: AuthorizationServer) -> list[dict[str, Any]]:
        now = server.clock()
        current = server.keys.signing_key().kid
        return [
            {
                "kid": r.kid,
                "alg": r.alg,
                "state": "signing"
                if r.kid == current
                else "pending"
                if r.active_at > now
                else "published"
                if (r.published_until or now + 1) > now
                else "expired",
                "created_at": r.created_at,
                "active_at": r.active_at,
                "retired_at": r.retired_at,
                "published_until": r.published_until,
            }
            for r in server.keys.records()
        ]

    rows = run_with_server(go)
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

    async def go(server: AuthorizationServer) -> dict[str, Any]:
        record = await server.keys.rotate(immediate=immediate)
        from mcpward.audit import AuditEvent

        server.audit.emit(AuditEvent("key.rotated", "ok", detail={"kid": record.kid}))
        return {"kid": record.kid, "alg": record.alg, "active_at": record.active_at}

    data = run_with_server(go)
    emit(data, as_json, [f"new key {data['kid']} signs from {when(data['active_at'])}"])
