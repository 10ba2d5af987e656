"""The ``mcpward`` command. Each role registers its own group of subcommands here."""

from __future__ import annotations

import click

from mcpward import __version__
from mcpward.errors import ConfigError


class _Main(click.Group):
    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise click.ClickException(f"configuration error: {exc}") from None


@click.group(cls=_Main)
@click.version_option(__version__, prog_name="mcpward")
def main() -> None:
    """Production auth for MCP servers."""


# Subcommand registrations: one line per module, each module owns its commands.
from mcpward.cli import client_commands as _client_commands  # noqa: E402,F401
from mcpward.cli import clients_commands as _clients_commands  # noqa: E402,F401
from mcpward.cli import db_commands as _db_commands  # noqa: E402,F401
from mcpward.cli import guard_commands as _guard_commands  # noqa: E402,F401
from mcpward.cli import keys_commands as _keys_commands  # noqa: E402,F401
from mcpward.cli import resources_commands as _resources_commands  # noqa: E402,F401
from mcpward.cli import serve_command as _serve_command  # noqa: E402,F401
from mcpward.cli import tokens_commands as _tokens_commands  # noqa: E402,F401
from mcpward.cli import users_commands as _users_commands  # noqa: E402,F401
