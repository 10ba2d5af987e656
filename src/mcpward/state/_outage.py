"""Backend failures as :class:`StateUnavailable`, logged once per outage.

A Redis that goes away fails every request until it returns; logging each failure (let
alone a traceback each) would flood the log exactly when operators read it. One line
when the outage starts, one when it ends with the count of requests it refused.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from mcpward.errors import StateUnavailable

T = TypeVar("T")
log = logging.getLogger("mcpward.state")


class Outage:
    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            if self.failures == 0:
                log.error(
                    "%s unreachable (%s); its checks fail until it returns",
                    self.name,
                    type(exc).__name__,
                )
            self.failures += 1
            raise StateUnavailable(f"{self.name} is unreachable") from None
        if self.failures:
            log.warning("%s reachable again after %d failed requests", self.name, self.failures)
            self.failures = 0
        return result
