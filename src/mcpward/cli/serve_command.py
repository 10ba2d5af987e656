"""``mcpward serve``: the authorization server (and with ``--demo`` the guarded demo MCP
server) in one process under uvicorn."""

from __future__ import annotations

import asyncio
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
            await _draining_server(config, serving.readiness, settings.shutdown_drain).serve()
        finally:
            await server.close()

    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run())


def _draining_server(config: Any, readiness: Any, drain: float) -> Any:
    """uvicorn's server, stopping the way a replica behind a load balancer should: on
    SIGTERM /readyz turns 503 at once, requests keep being served for ``drain`` seconds
    (the balancer notices and stops sending new ones), then uvicorn's graceful shutdown
    closes the socket and lets in-flight requests finish. A second SIGTERM, or SIGINT
    (Ctrl-C), skips the drain. The signal is not re-raised afterwards, so the process
    closes its storage and flushes its audit sinks and exits 0."""
    import signal
    import time
    from types import FrameType

    import uvicorn

    class DrainingServer(uvicorn.Server):
        _drain_until: float | None = None

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            if sig == signal.SIGTERM and drain > 0 and self._drain_until is None:
                readiness.drain()
                self._drain_until = time.monotonic() + drain
            elif self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            else:
                readiness.drain()
                self.should_exit = True

        async def on_tick(self, counter: int) -> bool:
            if self._drain_until is not None and time.monotonic() >= self._drain_until:
                self.should_exit = True
            return await super().on_tick(counter)

    return DrainingServer(config)


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
