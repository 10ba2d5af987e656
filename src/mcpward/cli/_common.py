"""Helpers shared by the operator commands: open the server, print for people or --json."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from mcpward.config import Settings
    from mcpward.server import AuthorizationServer


T = TypeVar("T")

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


def run_with_server(
    action: Callable[[AuthorizationServer], Awaitable[T]], settings: Settings | None = None
) -> T:
    # Imported here, not at the top: `mcpward --help` and commands that need no server
    # start without loading the server, its storage and its pages.
    from mcpward.compose.server import audit_log, open_server
    from mcpward.config import load_settings

    settings = settings or load_settings()
    # Audit events still go to the configured sink, but never into a command's stdout,
    # which scripts parse (--json).
    sink = "stderr" if settings.audit_sink == "stdout" else settings.audit_sink

    async def main() -> T:
        assert settings is not None
        audit = audit_log(settings, sink=sink)
        # With redis_url, revocations made here reach Redis-backed guards at once.
        server = await open_server(settings, audit=audit)
        try:
            return await action(server)
        finally:
            await server.close()

    return asyncio.run(main())


def emit(data: Any, as_json: bool, lines: Iterable[str] = ()) -> None:
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
    else:
        for line in lines:
            click.echo(line)


def table(rows: list[list[str]], headers: list[str]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return [fmt.format(*headers), fmt.format(*["-" * w for w in widths])] + [
        fmt.format(*map(str, r)) for r in rows
    ]


def when(ts: float | None) -> str:
    """A UNIX time for people: UTC to the second, ``-`` for never."""
    if ts is None:
        return "-"
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%d %H:%M:%SZ")
