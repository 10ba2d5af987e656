"""``mcpward gateway`` and ``mcpward manifest``: the guard's commands."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import click

from mcpward.cli import main


def _load_manifest(path: str | None) -> Any:
    from mcpward.demo import demo_manifest
    from mcpward.guard import Manifest, ManifestError

    if path is None:
        return demo_manifest()
    try:
        return Manifest.load(path)
    except (ManifestError, OSError) as exc:
        raise click.ClickException(str(exc)) from None


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter(f"expected 'Name: value', got {value.split(':')[0]!r}...")
    return name.strip(), content.strip()


@main.command()
@click.option(
    "--upstream", required=True, help="The upstream MCP endpoint, e.g. http://127.0.0.1:9000/mcp."
)
@click.option("--issuer", required=True, help="The authorization server whose tokens to accept.")
@click.option(
    "--resource",
    help="This gateway's public MCP URL (token audience). Default: http://HOST:PORT/mcp.",
)
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Tool manifest (JSON, YAML or TOML) with scopes_required per tool.",
)
@click.option(
    "--claims",
    type=click.Choice(["mcpward", "keycloak", "auth0", "okta", "clerk"]),
    default="mcpward",
    show_default=True,
    help="Where the issuer puts scopes and client id.",
)
@click.option(
    "--default-scope",
    "default_scopes",
    multiple=True,
    help="Scopes for tools the manifest does not list (default: such tools are denied).",
)
@click.option(
    "--list-filter",
    is_flag=True,
    help="tools/list, resources/list, prompts/list show only what the token can use now "
    "(default: every entry, annotated with its scopes, so hosts can step up).",
)
@click.option(
    "--upstream-header",
    "upstream_headers",
    multiple=True,
    help="'Name: value' injected upstream; repeatable.",
)
@click.option(
    "--upstream-header-env",
    "upstream_header_env",
    help="Env var with one 'Name: value' header for the upstream (keeps secrets off argv).",
)
@click.option(
    "--redis",
    "redis_url",
    envvar="MCPWARD_REDIS_URL",
    help="Redis URL: shared rate limits and revocations across replicas.",
)
@click.option(
    "--revocations-db",
    "revocations_db",
    envvar="MCPWARD_REVOCATIONS_DB",
    help="Database URL whose revocations table to poll.",
)
@click.option(
    "--poll-interval", default=0.5, show_default=True, help="Seconds between revocation polls."
)
@click.option(
    "--rate-limit-failure",
    type=click.Choice(["closed", "open"]),
    default="closed",
    show_default=True,
    help="When Redis is unreachable: refuse with 503 (closed) or skip rate limits (open). "
    "Revocation checks always fail closed.",
)
@click.option(
    "--dpop/--no-dpop",
    default=True,
    show_default=True,
    help="Accept DPoP-bound tokens with their proofs (RFC 9449).",
)
@click.option(
    "--dpop-required",
    is_flag=True,
    help="Refuse bearer tokens: only DPoP-bound tokens with a proof are accepted.",
)
@click.option(
    "--dpop-nonce-key-env",
    help="Env var with a 32-byte base64url key: every proof must carry this gateway's "
    "nonce (RFC 9449 §9); replicas given the same key hand out the same nonces.",
)
@click.option(
    "--rate",
    default="120/60",
    show_default=True,
    help="Per-token limit: REQUESTS/SECONDS, or 'off'.",
)
@click.option(
    "--audit",
    "audit_spec",
    default="stdout",
    show_default=True,
    help="stdout, stderr or file:PATH.",
)
@click.option(
    "--audit-db",
    "audit_db",
    envvar="MCPWARD_AUDIT_DB",
    help="Also write audit events to this database's audit_events table (the "
    "authorization server's, where the operator console searches them).",
)
@click.option(
    "--loki", "loki_url", envvar="MCPWARD_LOKI_URL", help="Also push audit events to this Loki."
)
@click.option(
    "--shutdown-drain",
    "shutdown_drain",
    envvar="MCPWARD_SHUTDOWN_DRAIN",
    type=click.FloatRange(0, 300),
    default=0.0,
    show_default=True,
    help="Seconds of /readyz 503 after SIGTERM while requests are still served, so a "
    "load balancer stops sending new ones first (longer than its check interval × "
    "failure count).",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8401, show_default=True, type=int)
def gateway(
    upstream: str,
    issuer: str,
    resource: str | None,
    manifest_path: str | None,
    claims: str,
    default_scopes: tuple[str, ...],
    list_filter: bool,
    upstream_headers: tuple[str, ...],
    upstream_header_env: str | None,
    redis_url: str | None,
    revocations_db: str | None,
    poll_interval: float,
    rate_limit_failure: str,
    dpop: bool,
    dpop_required: bool,
    dpop_nonce_key_env: str | None,
    rate: str,
    audit_spec: str,
    audit_db: str | None,
    loki_url: str | None,
    shutdown_drain: float,
    host: str,
    port: int,
) -> None:
    """Put the guard in front of any streamable-HTTP MCP server."""
    import uvicorn

    from mcpward.audit import AuditLog, sink_from_spec
    from mcpward.cli._uvicorn import DrainingServer
    from mcpward.guard import RateLimits, make_guard
    from mcpward.guard.gateway import create_gateway

    headers = dict(_header(h) for h in upstream_headers)
    if upstream_header_env:
        value = os.environ.get(upstream_header_env)
        if not value:
            raise click.ClickException(f"${upstream_header_env} is not set")
        name, content = _header(value)
        headers[name] = content
    resource = resource or f"http://{host}:{port}/mcp"
    sinks: list[Any] = [sink_from_spec(audit_spec)]
    if loki_url:
        from mcpward.audit.loki import LokiSink

        sinks.append(LokiSink(loki_url, labels={"service": "mcpward-gateway"}))
    if audit_db:
        from mcpward.storage.audit_sink import DatabaseSink

        sinks.append(DatabaseSink(audit_db))
    audit = AuditLog(sinks)
    limits = RateLimits(per_token=_rate(rate))
    rate_limiter: Any = None
    revocations: Any = None
    replay: Any = None
    ping: Any = None
    if redis_url:
        from mcpward.state import open_redis, over_redis

        shared = over_redis(open_redis(redis_url))
        ping = shared.redis.ping if shared.redis is not None else None
        # One Redis script per request: rate limit, revocation and the proof's jti.
        rate_limiter, revocations, replay = (
            shared.rate_limiter,
            shared.revocations,
            shared.replay,
        )
    elif revocations_db:
        from mcpward.revocation.table import TablePollingRevocations
        from mcpward.storage.database import open_engine
        from mcpward.storage.sql import SqlRevocationLog

        revocations = TablePollingRevocations(
            SqlRevocationLog(open_engine(revocations_db)), interval=poll_interval
        )
    guard = make_guard(
        issuer=issuer,
        resource=resource,
        manifest=_load_manifest(manifest_path),
        claims=claims,
        default_scopes=default_scopes or None,
        # Without the flag the manifest's list_visibility decides (annotate by default).
        list_visibility="filter" if list_filter else None,
        revocations=revocations,
        rate_limiter=rate_limiter,
        rate_limits=limits,
        rate_limit_failure="open" if rate_limit_failure == "open" else "closed",
        audit=audit,
        dpop=dpop,
        dpop_required=dpop_required,
        dpop_nonces=_nonces(dpop_nonce_key_env),
        replay=replay,
    )
    # The gateway's lifespan starts the guard (and so the revocation poller).
    app = create_gateway(upstream, guard, upstream_headers=headers, shared_state_ping=ping)
    click.echo(f"mcpward gateway: {resource} -> {upstream} (tokens from {issuer})", err=True)
    # uvloop and httptools: the fastest event loop and HTTP parser uvicorn offers.
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        ws="none",
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        http="httptools",
        # Nothing in the gateway reads the client address or scheme, so uvicorn's
        # X-Forwarded-* rewriting would be a middleware layer per request for nothing.
        proxy_headers=False,
        server_header=False,  # no product banner on every answer
    )
    try:
        assert app.probes is not None
        DrainingServer(config, app.probes, shutdown_drain).run()
    finally:
        audit.close()  # what the batching sinks (database, Loki) hold is written


def _nonces(env: str | None) -> Any:
    if not env:
        return None
    import base64
    import binascii

    from mcpward.dpop import NonceSource

    value = os.environ.get(env, "")
    try:
        key = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise click.ClickException(f"${env} must hold 32 bytes, base64url-encoded")
    return NonceSource(key)


def _rate(value: str) -> Any:
    from mcpward.guard import Limit

    if value == "off":
        return None
    try:
        requests, seconds = value.split("/")
        return Limit(int(requests), float(seconds))
    except ValueError:
        raise click.BadParameter("use REQUESTS/SECONDS, e.g. 120/60, or 'off'") from None


@main.command()
@click.option("--issuer", required=True, help="The authorization server (its metadata is read).")
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(exists=True, dir_okay=False),
    help="Tool manifest; default: the demo server's.",
)
@click.option("--client-id", help="The client id clients should use (pre-registered).")
@click.option("--name", help="Override the manifest's name.")
def manifest(
    issuer: str, manifest_path: str | None, client_id: str | None, name: str | None
) -> None:
    """Print the protected server's manifest in the source document's format."""
    from mcpward.guard import IssuerDiscoveryError, Manifest, OAuthBlock, discover

    loaded: Manifest = _load_manifest(manifest_path)

    async def metadata() -> dict[str, Any]:
        import httpx

        async with httpx.AsyncClient(timeout=10) as http:
            return await discover(issuer, http)

    try:
        meta = asyncio.run(metadata())
    except IssuerDiscoveryError as exc:
        raise click.ClickException(str(exc)) from None
    authorize, token = meta.get("authorization_endpoint"), meta.get("token_endpoint")
    if not isinstance(authorize, str) or not isinstance(token, str):
        raise click.ClickException(f"{issuer} publishes no authorization/token endpoint")
    block = OAuthBlock(
        authorization_url=authorize,
        token_url=token,
        scopes=loaded.scopes_supported(),
        client_id=client_id,
    )
    out = loaded.with_oauth(block).to_dict()
    if name:
        out["name"] = name
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")
