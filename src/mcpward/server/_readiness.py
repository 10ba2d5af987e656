"""What ``/readyz`` answers: whether a load balancer should send this replica requests.

- 503 ``draining`` from SIGTERM until the process stops listening (``shutdown_drain``),
  so that the balancer takes it out of rotation before it closes its socket;
- 503 ``storage unreachable`` when this replica cannot reach the database, which nearly
  every endpoint needs (a replica whose connection is broken while the others' work must
  leave rotation; a balancer with no ready replica answers 503 itself);
- otherwise 200. The shared state (Redis) is reported (``shared_state``) but does not
  decide: every replica shares it, so an outage there would take every replica out at
  once and turn the few paths that need Redis (registration limits, one-time-use checks,
  sign-in throttling), which answer 503 on their own, into a total outage. Revocations
  published while Redis is down reach it later through the log relay.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mcpward.server.core import AuthorizationServer

log = logging.getLogger("mcpward.server")

SHARED_STATE_TIMEOUT = 0.2


class Readiness:
    def __init__(self) -> None:
        self.draining = False

    def drain(self) -> None:
        """From now on, answer 503: the process is about to stop."""
        if not self.draining:
            log.info("draining: /readyz answers 503 until the process stops")
        self.draining = True

    async def check(self, server: AuthorizationServer) -> tuple[int, dict[str, Any]]:
        if self.draining:
            return 503, {"status": "draining"}
        try:
            await server.store.ping()
        except Exception as exc:
            server.storage_outage.failed(type(exc).__name__)
            return 503, {"status": "storage unreachable"}
        server.storage_outage.succeeded()
        body: dict[str, Any] = {"status": "ready"}
        redis = server.shared.redis
        if redis is not None:
            try:
                # Bounded well below a balancer's check timeout: a Redis that hangs must
                # not make the replica look unready.
                await asyncio.wait_for(redis.ping(), SHARED_STATE_TIMEOUT)
                body["shared_state"] = "ok"
            except Exception:  # reported, and logged once by the state layer's own calls
                body["shared_state"] = "unreachable"
        return 200, body
