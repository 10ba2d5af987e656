"""``mcpward serve``: the authorization server (and with ``--demo`` the guarded demo MCP
server) in one process under uvicorn."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main

if TYPE_CHECKING:
    from mcpward.config import Settings


@main.command()
@click.option("--host", default=None, help="Bind address (default from config: 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default from config: 8400).")
@click.option("--demo", is_flag=True, help="Also serve the demo MCP server at /mcp.")
@click.option("--no-migrate", is_flag=True, help="Do not run database migrations at start.")
def serve(host: str | None, port: int | None, demo: bool, no_migrate: bool) -> None:
    """Run the authorization server (and with --demo, the guarded demo MCP server)."""
    import uvicorn

    from mcpward.cli._uvicorn import DrainingServer
    from mcpward.compose.apps import open_serving
    from mcpward.config import load_settings

    overrides: dict[str, Any] = {}
    if host:
        overrides["host"] = host
    if port:
        overrides["port"] = port
    settings = load_settings(**overrides)
    if "issuer" not in settings.model_fields_set and (host or port):
        settings = load_settings(**overrides, issuer=f"http://{settings.host}:{settings.port}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    # httpx announces every request at INFO (the Loki sink's pushes, metadata fetches).
    logging.getLogger("httpx").setLevel(logging.WARNING)

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
            server_main = DrainingServer(config, serving.readiness, settings.shutdown_drain)
            if serving.console is None:
                await server_main.serve()
            else:
                await _serve_with_console(server_main, serving.console, settings)
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())


async def _serve_with_console(main_server: Any, console: Any, settings: Settings) -> None:
    """The console on its own listener beside the server, in this event loop: the main
    server owns the signals; when it stops, the console stops. The console's socket is
    bound first: if its port is taken, the command fails before serving anything, and
    should the console stop on its own, the server stops too rather than run without it."""
    import socket

    import uvicorn

    from mcpward.cli._uvicorn import Companion

    host, port = settings.console.host, settings.console.port
    try:
        listener = socket.create_server(
            (host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET
        )
    except OSError as exc:
        raise click.ClickException(
            f"the operator console cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    tls = settings.console_tls()
    companion = Companion(
        uvicorn.Config(
            console,
            host=host,
            port=port,
            log_level="info",
            access_log=False,
            ssl_certfile=str(tls[0]) if tls else None,
            ssl_keyfile=str(tls[1]) if tls else None,
            timeout_graceful_shutdown=10,
            lifespan="on",
        )
    )
    click.echo(f"mcpward: operator console {settings.console_origin()}", err=True)
    task = asyncio.create_task(companion.serve(sockets=[listener]))
    task.add_done_callback(lambda _: main_server.stop())
    try:
        await main_server.serve()
    finally:
        companion.stop()
        with contextlib.suppress(BaseException):
            await task


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
