"""The ``mcpward`` command. Each role registers its own group of subcommands here."""

from __future__ import annotations

import click

from mcpward import __version__


@click.group()
@click.version_option(__version__, prog_name="mcpward")
def main() -> None:
    """Production auth for MCP servers."""


# Subcommand registrations: one line per module, each module owns its commands.
from mcpward.cli import server_commands as _server_commands  # noqa: E402,F401
