"""``mcpward clients``: pre-registered clients, their secrets and the secrets' rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from mcpward.cli import main
from mcpward.cli._common import (
    duration,
    emit,
    json_option,
    run_operations,
    table,
    when,
)
from mcpward.storage.records import (
    AUTH_METHODS,
    GRANT_TYPES,
    JWT_BEARER,
    TOKEN_EXCHANGE,
    ApplicationType,
    AuthMethod,
    ClientRecord,
    GrantType,
)

# Short names for the URN grant types (RFC 7523 §2.1, RFC 8693 §2.1).
GRANT_ALIASES = {"jwt-bearer": JWT_BEARER, "token-exchange": TOKEN_EXCHANGE}

if TYPE_CHECKING:
    from mcpward.operations import Actor, Operations, PruneResult
    from mcpward.server import secret_rotation
    from mcpward.server.clients import NewSecret


def _client_dict(c: ClientRecord) -> dict[str, Any]:
    return {
        "client_id": c.client_id,
        "name": c.name,
        "source": c.source,
        "token_endpoint_auth_method": c.token_endpoint_auth_method,
        "grant_types": list(c.grant_types),
        "redirect_uris": list(c.redirect_uris),
        "application_type": c.application_type,
        "allowed_scope": c.allowed_scope,
        "dpop_bound_access_tokens": c.dpop_bound_access_tokens,
        "created_at": c.created_at,
        "disabled_at": c.disabled_at,
    }


def _secret_lines(secret: NewSecret) -> list[str]:
    return [
        f"client_secret: {secret.secret}",
        f"expires:       {when(secret.expires_at)}",
        "This secret is shown once and stored only as a hash. Keep it in a secret manager.",
    ]


@main.group()
def clients() -> None:
    """Registered clients and their secrets."""


@clients.command("create")
@click.argument("client_id")
@click.option("--name", default=None)
@click.option(
    "--auth-method",
    type=click.Choice(AUTH_METHODS),
    default="client_secret_basic",
    show_default=True,
)
@click.option(
    "--grant",
    "grants",
    multiple=True,
    type=click.Choice([*GRANT_TYPES, *GRANT_ALIASES]),
    help="jwt-bearer: ID-JAGs (SEP-990) and workload JWTs (SEP-1933); token-exchange: "
    "on-behalf-of tokens for downstream APIs (RFC 8693).",
)
@click.option("--scope", default=None, help="Space-separated scopes a M2M client may get.")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--application-type", type=click.Choice(["native", "web"]), default="native")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks-uri", default=None)
@click.option("--introspects", default=None, help="Resource URI this client may introspect for.")
@click.option(
    "--dpop",
    is_flag=True,
    help="Refuse this client's token requests without a DPoP proof (dpop_bound_access_tokens).",
)
@json_option
def clients_create(
    client_id: str,
    name: str | None,
    auth_method: str,
    grants: tuple[str, ...],
    scope: str | None,
    redirect_uris: tuple[str, ...],
    application_type: str,
    jwks_file: Path | None,
    jwks_uri: str | None,
    introspects: str | None,
    dpop: bool,
    as_json: bool,
) -> None:
    """Pre-register a client. Secrets are printed once."""
    grants = tuple(dict.fromkeys(GRANT_ALIASES.get(g, g) for g in grants))
    if not grants:
        grants = (
            ("authorization_code", "refresh_token") if redirect_uris else ("client_credentials",)
        )
    if "authorization_code" in grants and not redirect_uris:
        raise click.UsageError("authorization_code clients need --redirect-uri")
    if auth_method == "private_key_jwt" and not (jwks_file or jwks_uri):
        raise click.UsageError("private_key_jwt needs --jwks-file or --jwks-uri")
    record = ClientRecord(
        client_id=client_id,
        name=name or client_id,
        source="preregistered",
        # click.Choice has checked these against the vocabulary.
        token_endpoint_auth_method=cast(AuthMethod, auth_method),
        grant_types=cast(tuple[GrantType, ...], grants),
        redirect_uris=redirect_uris,
        application_type=cast(ApplicationType, application_type),
        allowed_scope=scope,
        jwks=json.loads(jwks_file.read_text()) if jwks_file else None,
        jwks_uri=jwks_uri,
        introspects_resource=introspects,
        dpop_bound_access_tokens=dpop,
    )

    async def go(ops: Operations, actor: Actor) -> tuple[ClientRecord, NewSecret | None]:
        return await ops.clients.create(record, actor)

    stored, secret = run_operations(go)
    data = _client_dict(stored)
    if secret:
        data["client_secret"] = secret.secret
        data["client_secret_expires_at"] = int(secret.expires_at)
    emit(data, as_json, [f"created client {client_id}", *(_secret_lines(secret) if secret else [])])


@clients.command("list")
@json_option
def clients_list(as_json: bool) -> None:
    """All clients."""

    async def go(ops: Operations, actor: Actor) -> list[ClientRecord]:
        return await ops.clients.all()

    rows = run_operations(go)
    emit(
        [_client_dict(c) for c in rows],
        as_json,
        table(
            [
                [
                    c.client_id,
                    c.name,
                    c.token_endpoint_auth_method,
                    ",".join(c.grant_types),
                    "disabled" if c.disabled_at else "active",
                ]
                for c in rows
            ],
            ["CLIENT ID", "NAME", "AUTH", "GRANTS", "STATUS"],
        ),
    )


@clients.command("show")
@click.argument("client_id")
@json_option
def clients_show(client_id: str, as_json: bool) -> None:
    """One client and its secrets (hints and expiry only)."""

    async def go(ops: Operations, actor: Actor) -> tuple[ClientRecord, list[Any]]:
        detail = await ops.clients.detail(client_id)  # "no client ID" when there is none
        return detail.summary.client, detail.secrets

    client, secrets = run_operations(go)
    data = _client_dict(client)
    data["secrets"] = [
        {"hint": "…" + s.hint, "created_at": s.created_at, "expires_at": s.expires_at}
        for s in secrets
    ]
    lines = [f"{k}: {v}" for k, v in data.items() if k != "secrets"]
    lines += [
        f"secret …{s.hint}  created {when(s.created_at)}  expires {when(s.expires_at)}"
        for s in secrets
    ]
    emit(data, as_json, lines)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option("--overlap", type=float, default=None, help="Seconds the old secret keeps working.")
@click.option("--sink", default=None, help="Hand the secret to this sink (default: secret_sink).")
@json_option
def clients_rotate_secret(
    client_id: str, overlap: float | None, sink: str | None, as_json: bool
) -> None:
    """Issue a new secret; the old one keeps working for the overlap window (7 days).
    With a secret sink the new secret goes there, otherwise it is printed once."""
    from mcpward.cli._sinks import open_sink, store_errors
    from mcpward.config import load_settings

    settings = load_settings()
    target = open_sink(sink or settings.secret_sink)

    async def go(ops: Operations, actor: Actor) -> NewSecret:
        # "ID is not a client with a secret" when it has none.
        return await ops.clients.rotate_secret(client_id, actor, overlap, sink=target)

    with store_errors():
        secret = run_operations(go, settings)
    if target is not None:
        data = {"client_id": client_id, "expires_at": secret.expires_at, "delivered": True}
        emit(data, as_json, [f"rotated secret of {client_id}; delivered to the secret sink"])
        return
    emit(
        {"client_id": client_id, "client_secret": secret.secret, "expires_at": secret.expires_at},
        as_json,
        [f"rotated secret of {client_id}", *_secret_lines(secret)],
    )


@clients.command("rotate-due")
@click.option(
    "--within",
    type=float,
    default=None,
    help="Rotate secrets expiring within this many seconds (default: the overlap window).",
)
@click.option("--sink", default=None, help="A secret sink spec (default: secret_sink).")
@json_option
def clients_rotate_due(within: float | None, sink: str | None, as_json: bool) -> None:
    """Rotate every secret that is due and hand each new one to the secret sink, after
    finishing any rotation an earlier run left half done. Meant for a daily cron job that
    owns the whole 90-day cycle; exits 1 if any client failed."""
    from mcpward.cli._sinks import open_sink, report_output, store_errors
    from mcpward.config import load_settings

    settings = load_settings()
    target = open_sink(sink or settings.secret_sink)
    if target is None:
        raise click.UsageError("configure secret_sink or pass --sink")

    async def go(ops: Operations, actor: Actor) -> secret_rotation.RotationReport:
        return await ops.clients.rotate_due(actor, target, within)

    with store_errors():
        report = run_operations(go, settings)
    data, lines = report_output(report)
    emit(data, as_json, lines)
    if report.failed:
        raise SystemExit(1)


@clients.command("disable")
@click.argument("client_id")
@json_option
def clients_disable(client_id: str, as_json: bool) -> None:
    """Disable a client and revoke every token it holds."""

    async def go(ops: Operations, actor: Actor) -> bool:
        return await ops.clients.disable(client_id, actor)

    if not run_operations(go):
        raise click.ClickException(f"no enabled client {client_id}")
    emit({"client_id": client_id, "disabled": True}, as_json, [f"disabled {client_id}"])


@clients.command("prune")
@click.option(
    "--older-than",
    default="30d",
    show_default=True,
    help="Only clients registered longer ago than this (30d, 12h, 90m, seconds).",
)
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
@json_option
def clients_prune(older_than: str, dry_run: bool, as_json: bool) -> None:
    """Delete dynamically registered clients that never got a token (abandoned
    registrations). Pre-registered and metadata-document clients are never pruned. Meant
    for a daily cron job."""
    age = duration(older_than)

    async def go(ops: Operations, actor: Actor) -> PruneResult:
        return await ops.clients.prune(actor, older_than=age, dry_run=dry_run)

    result = run_operations(go)
    ids = [c.client_id for c in result.candidates] if dry_run else result.pruned
    verb = "would delete" if dry_run else "deleted"
    emit(
        {"dry_run": dry_run, "older_than": age, "clients": ids},
        as_json,
        [f"{verb} {len(ids)} never-used registered client(s)", *(f"  {c}" for c in ids)],
    )
