"""``mcpward db``: the database schema (Alembic migrations)."""

from __future__ import annotations

import asyncio

import click

from mcpward.cli import main


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from mcpward.config import load_settings
    from mcpward.storage.database import current_revision, open_engine, upgrade

    settings = load_settings()

    async def go() -> str | None:
        engine = open_engine(settings.resolved_database_url())
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    click.echo(f"database at revision {asyncio.run(go())}")
