"""The ASGI application ``mcpward serve`` runs: the authorization server and its pages,
and with ``demo`` the guarded demo MCP server at ``/mcp`` (the embedded default that
``make run`` starts).

How revocations travel is decided here, once, from the deployment:

- with ``redis_url``: the server publishes to Redis, where every guard and gateway
  sharing that Redis reads them at once; a relay follows the revocations log into Redis
  so that nothing a failed publish (Redis down, a replica killed mid-request) or another
  process (the CLI) wrote is missed;
- without: the demo guard polls the revocations log (other processes' revocations) and
  the server publishes into that same in-process view (its own, at once).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from mcpward._clock import Clock, system_clock
from mcpward.audit import AuditLog
from mcpward.compose.server import assemble, open_store
from mcpward.config import Settings
from mcpward.revocation import RevocationPublisher, RevocationView
from mcpward.revocation.relay import LogFollower
from mcpward.revocation.table import TablePollingRevocations
from mcpward.server import AuthorizationServer, Readiness, maintained, routes, token_fast_path
from mcpward.server.pages import page_routes
from mcpward.state import open_shared_state

# Seconds between the relay's (or the embedded guard's) reads of the revocations log.
REVOCATION_POLL = 0.5


@dataclass
class Serving:
    """What ``mcpward serve`` runs: the server and its application."""

    server: AuthorizationServer
    app: Starlette
    # /readyz: set to draining when the process is told to stop.
    readiness: Readiness


async def open_serving(
    settings: Settings,
    *,
    demo: bool = False,
    migrate: bool = True,
    audit: AuditLog | None = None,
    clock: Clock = system_clock,
) -> Serving:
    store = await open_store(settings, migrate=migrate)
    shared = open_shared_state(settings.resolved_redis_url(), clock)
    relay: LogFollower | None = None
    view: RevocationView
    publisher: RevocationPublisher
    if shared.shared:
        view, publisher = shared.revocations, shared.publisher
        relay = LogFollower(
            store.revocation_log,
            shared.publisher,
            interval=REVOCATION_POLL,
            clock=clock,
            name="revocation relay to redis",
            resync=shared.resync,
        )
    else:
        polled = TablePollingRevocations(
            store.revocation_log, interval=REVOCATION_POLL, clock=clock
        )
        view, publisher = polled, polled
    server = await assemble(
        settings, store, audit=audit, shared=shared, publisher=publisher, clock=clock
    )
    readiness = Readiness()
    app = build_app(server, demo=demo, view=view, relay=relay, readiness=readiness)
    return Serving(server, app, readiness)


def build_app(
    server: AuthorizationServer,
    *,
    demo: bool,
    view: RevocationView | None = None,
    relay: LogFollower | None = None,
    readiness: Readiness | None = None,
) -> Starlette:
    """The server's endpoints and pages; with ``demo`` also the guarded demo MCP server
    at ``/mcp``, verifying with the key ring directly and honouring revocations through
    ``view``. ``relay`` (Redis deployments) runs for the application's lifetime."""
    pages = page_routes(server)
    table: list[BaseRoute] = [*routes(server, readiness), *pages.routes]
    protected = None
    if demo:
        # Only the demo needs the guard (and so the mcp SDK): imported here, not above,
        # so that `mcpward serve` without --demo and the CLI start without it.
        from mcpward.demo import build_protected_demo
        from mcpward.demo.provision import demo_resource_uri
        from mcpward.guard import LocalKeys

        protected = build_protected_demo(
            issuer=server.settings.issuer,
            resource=demo_resource_uri(server.settings.issuer),
            keys=LocalKeys(server.keys.public_key),
            revocations=view,
            rate_limiter=server.shared.rate_limiter,
            # With Redis, the limiter spends proof jtis in this cache in its own script.
            replay=server.shared.replay,
            audit=server.audit,
        )
        table += protected.routes(cors_origins=server.settings.cors_allow_origins)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with maintained(server), contextlib.AsyncExitStack() as stack:
            stack.push_async_callback(pages.aclose)
            if relay is not None:
                await stack.enter_async_context(relay)
            if protected is not None:
                # Starlette runs no lifespan of mounted apps: the guard (its revocation
                # poll) and the SDK's session manager are started here.
                await stack.enter_async_context(protected.lifespan())
            yield

    return Starlette(routes=table, middleware=[token_fast_path(server)], lifespan=lifespan)
