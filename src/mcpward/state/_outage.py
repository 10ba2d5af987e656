"""Backend failures as :class:`StateUnavailable`, logged once per outage
(:class:`~mcpward._outage.OutageLog`)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

from mcpward._outage import OutageLog
from mcpward.errors import StateUnavailable

T = TypeVar("T")
log = logging.getLogger("mcpward.state")


class Outage:
    def __init__(self, name: str) -> None:
        self.name = name
        self._log = OutageLog(name, log, "its checks fail until it returns")

    @property
    def failures(self) -> int:
        return self._log.failures

    async def guard(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await call()
        except (RedisError, OSError, TimeoutError) as exc:
            self._log.failed(type(exc).__name__)
            raise StateUnavailable(f"{self.name} is unreachable") from None
        self._log.succeeded()
        return result
