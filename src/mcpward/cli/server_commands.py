"""Operator commands for the authorization server: serve, db, clients, keys, tokens,
resources."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server, table
from mcpward.config import Settings, load_settings
from mcpward.server import AuthorizationServer
from mcpward.server.clients import AUTH_METHODS, GRANT_TYPES, NewSecret
from mcpward.server.secret_sink import sink_from_spec
from mcpward.storage.records import (
    ApplicationType,
    AuthMethod,
    ClientRecord,
    GrantType,
    ResourceRecord,
)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")


# -- serve ---------------------------------------------------------------------------------


@main.command()
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8400).")
@click.option("--demo", is_flag=True, help="Also serve the demo MCP server at /mcp.")
@click.option("--no-migrate", is_flag=True, help="Do not run database migrations at start.")
def serve(host: str | None, port: int | None, demo: bool, no_migrate: bool) -> None:
    """Run the authorization server (and with --demo, the guarded demo MCP server)."""
    import uvicorn

    from mcpward.compose.apps import open_serving

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = load_settings(**overrides)
    if "issuer" not in settings.model_fields_set and (host or port):
        settings = load_settings(**overrides, issuer=f"http://{settings.host}:{settings.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")

    async def run() -> None:
        serving = await open_serving(settings, demo=demo, migrate=not no_migrate)
        server = serving.server
        try:
            if demo:
                from mcpward.demo.provision import ensure_demo

                creds = await ensure_demo(server)
                _announce_demo(settings, creds)
            config = uvicorn.Config(
                serving.app,
                host=settings.host,
                port=settings.port,
                log_level="info",
                access_log=False,  # request lines carry query strings; the audit trail is the log
                proxy_headers=bool(settings.trusted_proxies),
                forwarded_allow_ips=",".join(settings.trusted_proxies) or "",
                ssl_certfile=str(settings.tls_cert_file) if settings.tls_cert_file else None,
                ssl_keyfile=str(settings.tls_key_file) if settings.tls_key_file else None,
                timeout_graceful_shutdown=30,
                lifespan="on",
            )
            await uvicorn.Server(config).serve()
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (uvicorn[standard] brings it): uvicorn picks it only when it
    owns the loop, and here we do."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop does not build everywhere
        return None
    return uvloop.new_event_loop


def _announce_demo(settings: Settings, creds: object) -> None:
    from mcpward.demo.provision import DemoCredentials

    path = settings.data_dir / "demo.json"
    click.echo(f"mcpward: issuer {settings.issuer}", err=True)
    click.echo(f"mcpward: demo MCP server {settings.issuer}/mcp", err=True)
    if isinstance(creds, DemoCredentials):
        click.echo("mcpward: first start - demo credentials (shown once):", err=True)
        click.echo(f"  user      {creds.username} / {creds.password}", err=True)
        click.echo(f"  M2M client {creds.client_id} / {creds.client_secret}", err=True)
        click.echo(f"mcpward: also written to {path} (mode 0600)", err=True)
    else:
        click.echo(f"mcpward: demo credentials are in {path}", err=True)


# -- db ------------------------------------------------------------------------------------


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from mcpward.storage.database import current_revision, open_engine, upgrade

    settings = load_settings()

    async def go() -> str | None:
        engine = open_engine(settings.resolved_database_url())
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {asyncio.run(go())}")


# -- clients -------------------------------------------------------------------------------


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
        "created_at": c.created_at,
        "disabled_at": c.disabled_at,
    }


def _secret_lines(secret: NewSecret) -> list[str]:
    return [
        f"client_secret: {secret.secret}",
        f"expires:       {_when(secret.expires_at)}",
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
@click.option("--grant", "grants", multiple=True, type=click.Choice(GRANT_TYPES))
@click.option("--scope", default=None, help="Space-separated scopes a M2M client may get.")
@click.option("--redirect-uri", "redirect_uris", multiple=True)
@click.option("--application-type", type=click.Choice(["native", "web"]), default="native")
@click.option("--jwks-file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jwks-uri", default=None)
@click.option("--introspects", default=None, help="Resource URI this client may introspect for.")
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
    as_json: bool,
) -> None:
    """Pre-register a client. Secrets are printed once."""
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
    )

    async def go(server: AuthorizationServer) -> NewSecret | None:
        if await server.store.clients.get(client_id) is not None:
            raise click.ClickException(f"client {client_id} already exists")
        return await server.clients.create(record)

    secret = run_with_server(go)
    data = _client_dict(record)
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
        f"secret …{s.hint}  created {_when(s.created_at)}  expires {_when(s.expires_at)}"
        for s in secrets
    ]
    emit(data, as_json, lines)


@clients.command("rotate-secret")
@click.argument("client_id")
@click.option("--overlap", type=float, default=None, help="Seconds the old secret keeps working.")
@json_option
def clients_rotate_secret(client_id: str, overlap: float | None, as_json: bool) -> None:
    """Issue a new secret; the old one keeps working for the overlap window (7 days)."""

    async def go(server: AuthorizationServer) -> NewSecret:
        client = await server.store.clients.get(client_id)
        if client is None or client.token_endpoint_auth_method not in (
            "client_secret_basic",
            "client_secret_post",
        ):
            raise click.ClickException(f"{client_id} is not a client with a secret")
        return await server.clients.rotate_secret(client_id, overlap)

    secret = run_with_server(go)
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
@click.option("--sink", default=None, help="dir:PATH or command:CMD (default: secret_sink).")
@json_option
def clients_rotate_due(within: float | None, sink: str | None, as_json: bool) -> None:
    """Rotate every secret that is due and hand each new one to the secret sink. Meant for
    a daily cron job that owns the whole 90-day cycle."""
    settings = load_settings()
    spec = sink or settings.secret_sink
    if not spec:
        raise click.UsageError("configure secret_sink or pass --sink")
    target = sink_from_spec(spec)

    async def go(server: AuthorizationServer) -> list[str]:
        horizon = server.settings.lifetimes.client_secret_overlap if within is None else within
        rotated = []
        for client_id in await server.clients.due_for_rotation(horizon):
            secret = await server.clients.rotate_secret(client_id)
            await target.deliver(secret)
            from mcpward.audit import AuditEvent

            server.audit.emit(AuditEvent("client.secret_rotated", "ok", client_id=client_id))
            rotated.append(client_id)
        return rotated

    rotated = run_with_server(go, settings)
    emit(
        {"rotated": rotated},
        as_json,
        [f"rotated {len(rotated)} secret(s)", *(f"  {c}" for c in rotated)],
    )


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


# -- keys ----------------------------------------------------------------------------------


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
                [r["kid"], r["alg"], r["state"], _when(r["active_at"]), _when(r["published_until"])]
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
    emit(data, as_json, [f"new key {data['kid']} signs from {_when(data['active_at'])}"])


# -- tokens --------------------------------------------------------------------------------


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


# -- resources -----------------------------------------------------------------------------


@main.group()
def resources() -> None:
    """Protected resources (MCP servers) tokens are issued for."""


@resources.command("add")
@click.argument("uri")
@click.option("--name", default=None)
@click.option("--scope", "scopes", multiple=True, help="scope=description (repeatable).")
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tool manifest (JSON) in the source document's format.",
)
@json_option
def resources_add(
    uri: str, name: str | None, scopes: tuple[str, ...], manifest: Path | None, as_json: bool
) -> None:
    """Register or replace a protected resource."""
    tools: list[dict[str, Any]] = []
    scope_map = dict(s.partition("=")[::2] for s in scopes)
    if manifest is not None:
        doc = json.loads(manifest.read_text())
        tools = list(doc.get("tools", []))
        for tool in tools:
            for s in tool.get("scopes_required", []):
                scope_map.setdefault(s, s)
    if not scope_map:
        raise click.UsageError("give at least one --scope or a --manifest")
    record = ResourceRecord(uri=uri, name=name or uri, scopes=scope_map, tools=tools)

    async def go(server: AuthorizationServer) -> None:
        await server.register_resource(record)

    run_with_server(go)
    emit({"uri": uri, "scopes": scope_map}, as_json, [f"registered {uri}"])


@resources.command("list")
@json_option
def resources_list(as_json: bool) -> None:
    """Registered resources."""

    async def go(server: AuthorizationServer) -> list[ResourceRecord]:
        return server.resources()

    rows = run_with_server(go)
    emit(
        [{"uri": r.uri, "name": r.name, "scopes": r.scopes} for r in rows],
        as_json,
        table([[r.uri, r.name, " ".join(r.scopes)] for r in rows], ["URI", "NAME", "SCOPES"]),
    )
