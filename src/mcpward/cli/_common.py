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
    from mcpward.operations import Actor, Operations
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


def run_operations(
    action: Callable[[Operations, Actor], Awaitable[T]], settings: Settings | None = None
) -> T:
    """Run one operator action (:mod:`mcpward.operations`, the layer the console uses
    too) as the OS user running the command; a refused operation is a clean error."""
    from mcpward.operations import Actor, OperationError, Operations

    async def act(server: AuthorizationServer) -> T:
        try:
            return await action(Operations(server), Actor.cli())
        except OperationError as exc:
            raise click.ClickException(str(exc)) from None

    return run_with_server(act, settings)


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration(value: str) -> float:
    """Seconds from ``90``, ``90s``, ``15m``, ``12h`` or ``30d``."""
    text = value.strip().lower()
    unit = _UNITS.get(text[-1:])
    number = text[:-1] if unit is not None else text
    try:
        seconds = float(number) * (unit or 1.0)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a duration (e.g. 30d, 12h, 90m)") from None
    if seconds < 0:
        raise click.BadParameter("a duration cannot be negative")
    return seconds


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
