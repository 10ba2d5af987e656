"""`mcpward login|logout|whoami|token URL`: the client library from a terminal.

A person signs in once (`login`); `token` then prints a valid access token for scripts,
refreshing silently, and never opens a browser. With `--client-id` and a secret or key,
`token` acts as an agent (client_credentials) instead.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast, get_args

import click

from mcpward.cli import main
from mcpward.client import (
    AgentAuth,
    ClientError,
    EnvSecret,
    FileSecret,
    HumanAuth,
    SecretSource,
    SigningAlgorithm,
    open_browser,
)

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ClientError as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        raise click.Abort from None


async def _print_url(url: str) -> None:
    click.echo(f"Open this URL in a browser to sign in:\n\n  {url}\n", err=True)


def _human(url: str, **kwargs: Any) -> HumanAuth:
    return HumanAuth(url, **kwargs)


@main.command()
@click.argument("url")
@click.option("--scope", "scopes", multiple=True, help="Scope to ask for (repeatable).")
@click.option("--client-id", help="A client_id registered for you in advance.")
@click.option("--client-secret-env", metavar="VAR", help="Environment variable with its secret.")
@click.option("--client-metadata-url", help="Your Client ID Metadata Document (https URL).")
@click.option("--no-browser", is_flag=True, help="Print the sign-in URL instead of opening it.")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait for sign-in.")
def login(
    url: str,
    scopes: tuple[str, ...],
    client_id: str | None,
    client_secret_env: str | None,
    client_metadata_url: str | None,
    no_browser: bool,
    timeout: float,
) -> None:
    """Sign in to the MCP server at URL in the browser and keep the session in the keychain."""
    secret = EnvSecret(client_secret_env).read() if client_secret_env else None
    auth = _human(
        url,
        client_id=client_id,
        client_secret=secret,
        client_metadata_url=client_metadata_url,
        scopes=list(scopes) or None,
        authorize=_print_url if no_browser else open_browser,
        login_timeout=timeout,
    )

    async def go() -> None:
        try:
            tokens = await auth.login()
            info = await auth.session_info()
        finally:
            await auth.aclose()
        issuer = info.issuer if info else "?"
        click.echo(f"Signed in to {url} (authorization server {issuer})")
        if tokens.scope:
            click.echo(f"Scopes: {tokens.scope}")
        if tokens.refresh_token is None:
            click.echo("No refresh token was issued: you will be asked to sign in again.", err=True)

    _run(go())


@main.command()
@click.argument("url")
def logout(url: str) -> None:
    """Revoke and forget the session for URL."""
    auth = _human(url, interactive=False)

    async def go() -> None:
        try:
            await auth.logout()
        finally:
            await auth.aclose()

    _run(go())
    click.echo(f"Signed out of {url}")


@main.command()
@click.argument("url")
def whoami(url: str) -> None:
    """Show the stored session for URL, after checking that it still works."""
    auth = _human(url, interactive=False)

    async def go() -> None:
        try:
            await auth.token()
            info = await auth.session_info()
        finally:
            await auth.aclose()
        if info is None:
            raise click.ClickException(f"not signed in to {url}")
        click.echo(f"Server:               {info.resource}")
        click.echo(f"Authorization server: {info.issuer}")
        click.echo(f"Client ID:            {info.client_id}")
        click.echo(f"Scopes:               {info.scope or '(none granted explicitly)'}")
        if info.access_token_expires_at is not None:
            left = int(info.access_token_expires_at - time.time())
            click.echo(f"Access token:         valid for {left} s (held in memory only)")

    _run(go())


@main.command()
@click.argument("url")
@click.option("--client-id", help="Act as this agent (client_credentials) instead of as you.")
@click.option("--client-secret-env", metavar="VAR", help="Agent secret from this variable.")
@click.option("--client-secret-file", type=click.Path(path_type=Path), help="Agent secret file.")
@click.option(
    "--private-key-file", type=click.Path(path_type=Path), help="PEM key for private_key_jwt."
)
@click.option(
    "--signing-alg",
    type=click.Choice(get_args(SigningAlgorithm)),
    default="RS256",
    show_default=True,
    help="private_key_jwt alg.",
)
@click.option("--scope", "scopes", multiple=True, help="Scope to ask for (agents; repeatable).")
def token(
    url: str,
    client_id: str | None,
    client_secret_env: str | None,
    client_secret_file: Path | None,
    private_key_file: Path | None,
    signing_alg: str,
    scopes: tuple[str, ...],
) -> None:
    """Print a valid access token for URL (for scripts). Never opens a browser."""
    if client_id is None:
        auth: HumanAuth | AgentAuth = _human(url, interactive=False)
    else:
        secret: SecretSource | None = None
        if client_secret_env:
            secret = EnvSecret(client_secret_env)
        elif client_secret_file:
            secret = FileSecret(client_secret_file)
        auth = AgentAuth(
            url,
            client_id=client_id,
            client_secret=secret,
            private_key=FileSecret(private_key_file) if private_key_file else None,
            signing_algorithm=cast(SigningAlgorithm, signing_alg),  # click.Choice checked it
            scopes=list(scopes) or None,
        )

    async def go() -> str:
        try:
            return await auth.token()
        finally:
            await auth.aclose()

    value = _run(go())
    sys.stdout.write(value + "\n")
