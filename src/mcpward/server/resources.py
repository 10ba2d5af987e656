"""The protected resources (MCP servers) this server issues tokens for (RFC 8707), held
in memory and reloaded from storage so that replicas follow changes made elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from mcpward.server.errors import InvalidTarget
from mcpward.storage.contracts import ResourceStore
from mcpward.storage.records import ResourceRecord


class ResourceRegistry:
    def __init__(self, store: ResourceStore, *, default: str | None = None) -> None:
        self._store = store
        self._default = default
        self._by_uri: dict[str, ResourceRecord] = {}

    async def reload(self) -> None:
        self._by_uri = {r.uri: r for r in await self._store.all()}

    async def register(self, resource: ResourceRecord) -> None:
        await self._store.put(resource)
        await self.reload()

    def all(self) -> list[ResourceRecord]:
        return list(self._by_uri.values())

    def get(self, uri: str) -> ResourceRecord | None:
        return self._by_uri.get(uri)

    def resolve(self, values: Sequence[str]) -> ResourceRecord:
        """The one protected resource a request names (or the configured default)."""
        if len(values) > 1:
            raise InvalidTarget("request one resource per token")
        uri = values[0] if values else self._default
        if not uri:
            raise InvalidTarget("the resource parameter is required")
        resource = self._by_uri.get(uri)
        if resource is None:
            raise InvalidTarget(self._unknown(uri))
        return resource

    def _unknown(self, uri: str) -> str:
        """Resources are compared exactly as registered (RFC 8707, MCP: the canonical URI);
        a near miss names the registered resource, never echoing what the client sent."""
        for known in self._by_uri:
            if known.rstrip("/") == uri.rstrip("/") or known.lower() == uri.lower():
                return f"unknown resource; the registered one is {known} (compared exactly)"
        return "unknown resource"
