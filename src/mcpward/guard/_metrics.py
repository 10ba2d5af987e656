"""Prometheus metrics, in a registry per guard so several guards (and tests) do not clash."""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class GuardMetrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "mcpward_guard_requests",
            "MCP HTTP requests seen by the guard, by outcome",
            ["method", "outcome"],
            registry=self.registry,
        )
        self.tool_calls = Counter(
            "mcpward_guard_tool_calls",
            "tools/call requests, by tool and outcome",
            ["tool", "outcome"],
            registry=self.registry,
        )
        self.decision_seconds = Histogram(
            "mcpward_guard_decision_seconds",
            "Time the guard spends deciding (verify, revocation, policy, rate limit)",
            buckets=(1e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 5e-3, 0.025, 0.1),
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "mcpward_guard_request_seconds",
            "Wall time of MCP requests through the guard, response streamed in full",
            registry=self.registry,
        )

        # Labelled children, looked up once: ``labels()`` validates and hashes on every
        # call. Both label sets are bounded (known methods, declared tools, outcomes).
        self._request_children: dict[tuple[str, str], Any] = {}
        self._tool_children: dict[tuple[str, str], Any] = {}

    def request(self, method: str, outcome: str, seconds: float) -> None:
        """Count one MCP request and observe its wall time."""
        key = (method, outcome)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(method, outcome)
        child.inc()
        self.request_seconds.observe(seconds)

    def tool_call(self, tool: str, outcome: str) -> None:
        key = (tool, outcome)
        child = self._tool_children.get(key)
        if child is None:
            child = self._tool_children[key] = self.tool_calls.labels(tool, outcome)
        child.inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
