"""``mcpward resources``: the protected resources (MCP servers) tokens are issued for."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server, table
from mcpward.storage.records import ResourceRecord

if TYPE_CHECKING:
    from mcpward.server import AuthorizationServer


@main.group()
def resources() -> None:
    """Protected resources (MCP servers) tokens are issued for."""


@resources.command("add")
@click.argument("uri")
@click.option("--name", default=None)
@click.option("--scope", "scopes", multiple=True, help="scope=description (repeatable).")
@click.option(
    "--manifest",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Tool manifest (JSON) in the source document's format.",
)
@json_option
def resources_add(
    uri: str, name: str | None, scopes: tuple[str, ...], manifest: Path | None, as_json: bool
) -> None:
    """Register or replace a protected resource."""
    tools: list[dict[str, Any]] = []
    scope_map = dict(s.partition("=")[::2] for s in scopes)
    if manifest is not None:
        doc = json.loads(manifest.read_text())
        tools = list(doc.get("tools", []))
        for tool in tools:
            for s in tool.get("scopes_required", []):
                scope_map.setdefault(s, s)
    if not scope_map:
        raise click.UsageError("give at least one --scope or a --manifest")
    record = ResourceRecord(uri=uri, name=name or uri, scopes=scope_map, tools=tools)

    async def go(server: AuthorizationServer) -> None:
        await server.register_resource(record)

    run_with_server(go)
    emit({"uri": uri, "scopes": scope_map}, as_json, [f"registered {uri}"])


@resources.command("list")
@json_option
def resources_list(as_json: bool) -> None:
    """Registered resources."""

    async def go(server: AuthorizationServer) -> list[ResourceRecord]:
        return server.resources()

    rows = run_with_server(go)
    emit(
        [{"uri": r.uri, "name": r.name, "scopes": r.scopes} for r in rows],
        as_json,
        table([[r.uri, r.name, " ".join(r.scopes)] for r in rows], ["URI", "NAME", "SCOPES"]),
    )
