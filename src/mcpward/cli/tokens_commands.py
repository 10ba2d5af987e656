"""``mcpward tokens``: revocation by jti, by user (offboarding) or by client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_operations

if TYPE_CHECKING:
    from mcpward.operations import Actor, Operations


@main.group()
def tokens() -> None:
    """Revoke tokens."""


@tokens.command("revoke")
@click.option("--jti", default=None, help="One access token by its jti.")
@click.option("--user", "user", default=None, help="Everything of a user (id or username).")
@click.option("--client", "client_id", default=None, help="Everything of a client.")
@json_option
def tokens_revoke(jti: str | None, user: str | None, client_id: str | None, as_json: bool) -> None:
    """Revoke by jti, by user (offboarding) or by client. Takes effect at the guards' next
    request (in-process, Redis) or poll (database)."""
    if sum(x is not None for x in (jti, user, client_id)) != 1:
        raise click.UsageError("give exactly one of --jti, --user, --client")

    async def go(ops: Operations, actor: Actor) -> dict[str, Any]:
        if jti is not None:
            rev = await ops.grants.revoke_jti(jti, actor)
        elif user is not None:
            # An unknown name is revoked as a subject as it is (an upstream subject id).
            record = await ops.users.resolve(user)
            rev = await ops.grants.revoke_subject(record.id if record else user, actor)
        else:
            assert client_id is not None
            rev = await ops.grants.revoke_client(client_id, actor)
        return {"kind": rev.kind, "key": rev.key, "revoked_at": rev.revoked_at}

    data = run_operations(go)
    emit(data, as_json, [f"revoked {data['kind']} {data['key']}"])
