"""The matrix's rows and columns, its known upstream failures, and its printed form."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

CLIENTS = {
    "ts-sdk-1": "@modelcontextprotocol/sdk 1.32.2",
    "ts-sdk-2": "@modelcontextprotocol/client 2.4.0",
    "mcp-remote": "mcp-remote 0.15.1",
    "inspector-cli": "MCP Inspector 2.12.0 (--cli)",
    "inspector-web": "MCP Inspector 2.12.0 (web UI)",
    "fastmcp": "FastMCP 4.2.3 Client",
}
FLOWS = ("sign_in", "tools_list", "call", "step_up", "refresh", "client_credentials")
# The web UI's row stops at a call: its step-up and refresh are the same core code as the
# CLI's (the Inspector shares `core/` between its clients), driven through a form.
ONLY = {"inspector-web": ("sign_in", "tools_list", "call")}

_ISSUE_2255 = "https://github.com/modelcontextprotocol/typescript-sdk/issues/2255"


@dataclass(frozen=True)
class KnownFailure:
    reason: str  # what the client does wrong, with the upstream report
    signature: str  # what the client says when it does: any other failure is a real one


# Cells that fail because of the client. Strict: a cell that starts passing fails the run,
# so its entry is removed when the client is fixed.
EXPECTED_FAILURES = {
    ("ts-sdk-1", "step_up"): KnownFailure(
        "on 403 insufficient_scope the SDK's auth() refreshes (same scope) instead of "
        f"re-authorizing, then gives up: {_ISSUE_2255}",
        "Server returned 403 after trying upscoping",
    ),
    ("inspector-cli", "step_up"): KnownFailure(
        "the CLI's re-authorization calls the SDK's auth(), which refreshes (same scope) "
        f"because a refresh token is held; the CLI then aborts: {_ISSUE_2255} (names the "
        "Inspector)",
        "auth() returned AUTHORIZED without authorization code",
    ),
}


class KnownClientBug(AssertionError):
    """A cell failed exactly the way its EXPECTED_FAILURES entry says the client does."""


def check_known(client: str, flow: str, said: str) -> None:
    known = EXPECTED_FAILURES.get((client, flow))
    if known is not None and known.signature in said:
        raise KnownClientBug(f"{known.reason}; the client said: {said}")


@dataclass
class Matrix:
    cells: dict[tuple[str, str], str] = field(default_factory=dict)

    def record(self, report: pytest.TestReport) -> None:
        if "tests/interop/test_matrix.py" not in report.nodeid:
            return
        cell = _cell_of(report.nodeid)
        if cell is None:
            return
        if report.when == "call" or report.outcome != "passed":
            if hasattr(report, "wasxfail"):
                self.cells[cell] = "expected fail"
            elif report.outcome == "passed":
                self.cells[cell] = "pass"
            elif "XPASS(strict)" in str(report.longrepr):
                self.cells[cell] = "FAIL (expected to fail, passed)"
            else:
                self.cells[cell] = "FAIL"

    def render(self) -> str:
        lines = [
            "| client | " + " | ".join(FLOWS) + " |",
            "|---|" + "---|" * len(FLOWS),
        ]
        for key, name in CLIENTS.items():
            row = [self.cells.get((key, flow), "n/a") for flow in FLOWS]
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        passed = sum(1 for v in self.cells.values() if v == "pass")
        lines.append("")
        lines.append(f"{passed} of {len(self.cells)} cells pass.")
        for (client, flow), known in EXPECTED_FAILURES.items():
            lines.append(f"expected fail {client} {flow}: {known.reason}")
        return "\n".join(lines)


def _cell_of(nodeid: str) -> tuple[str, str] | None:
    for client in CLIENTS:
        for flow in FLOWS:
            if nodeid.endswith(f"[{client}-{flow}]"):
                return client, flow
    return None
