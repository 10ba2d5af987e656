"""``mcpward tokens``: revocation by jti, by user (offboarding) or by client."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server

if TYPE_CHECKING:
    from mcpward.server import AuthorizationServer


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

    async def go(server: AuthorizationServer) -> dict[str, Any]:
        if jti is not None:
            lifetimes = server.settings.lifetimes
            rev = await server.revoke_jti(jti, server.clock() + lifetimes.access_token)
        elif user is not None:
            record = await server.store.users.get(user) or await server.store.users.by_username(
                user
            )
            rev = await server.revoke_subject(record.id if record else user)
        else:
            assert client_id is not None
            rev = await server.revoke_client(client_id)
        return {"kind": rev.kind, "key": rev.key, "revoked_at": rev.revoked_at}

    data = run_with_server(go)
    emit(data, as_json, [f"revoked {data['kind']} {data['key']}"])
