"""``mcpward clients``: pre-registered clients, their secrets and the secrets' rotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server, table, when
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
    from mcpward.server import AuthorizationServer
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

    async def go(server: AuthorizationServer) -> tuple[ClientRecord, NewSecret | None]:
        if await server.store.clients.get(client_id) is not None:
            raise click.ClickException(f"client {client_id} already exists")
        secret = await server.clients.create(record)
        # Print what was stored (with its creation time), not the draft handed in.
        stored = await server.store.clients.get(client_id)
        assert stored is not None
        return stored, secret

    stored, secret = run_with_server(go)
    data = _client_dict(stored)
    if secret:
        data["client_secret"] = secret.secret
        data["client_secret_expires_at"] = int(secret.expires_at)
    emit(data, as_json, [f"created client {client_id}", *(_secret_lines(secret) if secret else [])])


@clients.command("list")
@json_option
def clients_list(as_json: bool) -> None:
    """All clients."""

    async def go(server: AuthorizationServer) -> list[ClientRecord]:
        return await server.store.clients.all()

    rows = run_with_server(go)
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

    async def go(server: AuthorizationServer) -> tuple[ClientRecord | None, list[Any]]:
        client = await server.store.clients.get(client_id)
        return client, await server.store.clients.secrets(client_id) if client else []

    client, secrets = run_with_server(go)
    if client is None:
        raise click.ClickException(f"no client {client_id}")
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
    from mcpward.server import secret_rotation

    settings = load_settings()
    target = open_sink(sink or settings.secret_sink)

    async def go(server: AuthorizationServer) -> NewSecret:
        client = await server.store.clients.get(client_id)
        if client is None or client.token_endpoint_auth_method not in (
            "client_secret_basic",
            "client_secret_post",
        ):
            raise click.ClickException(f"{client_id} is not a client with a secret")
        if target is not None:
            return await secret_rotation.rotate(server, target, client_id, overlap)
        return await server.clients.rotate_secret(client_id, overlap)

    with store_errors():
        secret = run_with_server(go, settings)
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
    from mcpward.server import secret_rotation

    settings = load_settings()
    target = open_sink(sink or settings.secret_sink)
    if target is None:
        raise click.UsageError("configure secret_sink or pass --sink")

    async def go(server: AuthorizationServer) -> secret_rotation.RotationReport:
        horizon = server.settings.lifetimes.client_secret_overlap if within is None else within
        return await secret_rotation.rotate_due(server, target, horizon)

    with store_errors():
        report = run_with_server(go, settings)
    data, lines = report_output(report)
    emit(data, as_json, lines)
    if report.failed:
        raise SystemExit(1)


@clients.command("disable")
@click.argument("client_id")
@json_option
def clients_disable(client_id: str, as_json: bool) -> None:
    """Disable a client and revoke every token it holds."""

    async def go(server: AuthorizationServer) -> bool:
        return await server.disable_client(client_id)

    if not run_with_server(go):
        raise click.ClickException(f"no enabled client {client_id}")
    emit({"client_id": client_id, "disabled": True}, as_json, [f"disabled {client_id}"])
