"""What the standalone gateway answers a load balancer, without a token.

- ``/healthz``: 200 while the process serves (liveness).
- ``/readyz``, "send requests here?": 503 ``draining`` from SIGTERM until the process stops
  listening (``--shutdown-drain``), so the balancer takes it out of rotation before it
  closes its socket; 503 ``upstream unreachable`` when a TCP connection to the upstream
  cannot be opened (this gateway would answer 502 to everything: one whose upstream, a
  sidecar say, died must leave rotation); otherwise 200.
- The shared state (Redis) is reported (``shared_state``) but does not decide, as at the
  authorization server's replicas: every gateway shares it, so it would take all of them
  out at once; while it is down each request answers 503 on its own (revocation checks
  fail closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.types import Send

from mcpward._asgi import send_response

log = logging.getLogger("mcpward.guard")

# Well below a balancer's check timeout (HAProxy's default is the connect timeout, often
# 1 s): an upstream or a Redis that hangs must make the answer "no", not no answer.
PROBE_TIMEOUT = 0.5

_HEADERS = {"content-type": "application/json", "cache-control": "no-store"}


class GatewayHealth:
    paths = frozenset({"/healthz", "/readyz"})

    def __init__(
        self,
        host: str,
        port: int,
        *,
        shared_state_ping: Callable[[], Awaitable[Any]] | None = None,
    ) -> None:
        self._host = host
        self._port = port
        self._ping = shared_state_ping
        self.draining = False

    def drain(self) -> None:
        """From now on, ``/readyz`` answers 503: the process is about to stop."""
        if not self.draining:
            log.info("draining: /readyz answers 503 until the process stops")
        self.draining = True

    async def respond(self, path: str, send: Send) -> None:
        status, body = (200, {"status": "ok"}) if path == "/healthz" else await self.check()
        await send_response(send, status, _HEADERS, json.dumps(body).encode())

    async def check(self) -> tuple[int, dict[str, Any]]:
        if self.draining:
            return 503, {"status": "draining"}
        if not await self._upstream_reachable():
            return 503, {"status": "upstream unreachable"}
        body: dict[str, Any] = {"status": "ready"}
        if self._ping is not None:
            try:
                await asyncio.wait_for(self._ping(), PROBE_TIMEOUT)
                body["shared_state"] = "ok"
            except Exception:  # reported; the requests that need it log the outage once
                body["shared_state"] = "unreachable"
        return 200, body

    async def _upstream_reachable(self) -> bool:
        """A TCP connection opened and closed: reachability, not the upstream's health
        (an MCP endpoint has no side-effect-free request to ask it)."""
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(self._host, self._port), PROBE_TIMEOUT
            )
        except (OSError, TimeoutError):
            return False
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return True
