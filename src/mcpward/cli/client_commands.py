"""`mcpward login|logout|whoami|token|curl URL`: the client library from a terminal.

A person signs in once (`login`); `token` then prints a valid access token for scripts,
refreshing silently, and never opens a browser. With `--client-id` and a secret or key,
`token` acts as an agent (client_credentials) instead. A DPoP-bound token (RFC 9449) is
useless on its own: `token --proof METHOD TARGET` prints the two headers one request
needs, and `curl` makes requests itself, a fresh proof each.
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
    request_headers,
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


def _agent_options(command: Any) -> Any:
    """The options that make `token` and `curl` act as an agent instead of as you."""
    options = [
        click.option("--client-id", help="Act as this agent (client_credentials) instead of you."),
        click.option("--client-secret-env", metavar="VAR", help="Agent secret from this variable."),
        click.option(
            "--client-secret-file", type=click.Path(path_type=Path), help="Agent secret file."
        ),
        click.option(
            "--private-key-file",
            type=click.Path(path_type=Path),
            help="PEM key for private_key_jwt.",
        ),
        click.option(
            "--signing-alg",
            type=click.Choice(get_args(SigningAlgorithm)),
            default="RS256",
            show_default=True,
            help="private_key_jwt alg.",
        ),
        click.option("--scope", "scopes", multiple=True, help="Scope to ask for (agents)."),
        click.option(
            "--bearer",
            is_flag=True,
            help="Agents: a plain bearer token even where DPoP is offered (refused where the "
            "client or the resource requires DPoP).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _auth(url: str, agent: dict[str, Any]) -> HumanAuth | AgentAuth:
    if agent["client_id"] is None:
        if agent["bearer"]:
            # A person's session keeps the key its refresh token is bound to.
            raise click.UsageError("--bearer is for agents (--client-id)")
        return _human(url, interactive=False)
    secret: SecretSource | None = None
    if agent["client_secret_env"]:
        secret = EnvSecret(agent["client_secret_env"])
    elif agent["client_secret_file"]:
        secret = FileSecret(agent["client_secret_file"])
    key = agent["private_key_file"]
    return AgentAuth(
        url,
        client_id=agent["client_id"],
        client_secret=secret,
        private_key=FileSecret(key) if key else None,
        signing_algorithm=cast(SigningAlgorithm, agent["signing_alg"]),  # a click.Choice
        scopes=list(agent["scopes"]) or None,
        dpop=not agent["bearer"],
    )


@main.command()
@click.argument("url")
@_agent_options
@click.option(
    "--proof",
    nargs=2,
    metavar="METHOD TARGET",
    help="Print the Authorization and DPoP headers for one METHOD request to TARGET "
    "(a DPoP proof is good once, for that request only).",
)
def token(url: str, proof: tuple[str, str] | None, **agent: Any) -> None:
    """Print a valid access token for URL (for scripts). Never opens a browser."""
    auth = _auth(url, agent)

    async def go() -> tuple[str, dict[str, str]]:
        try:
            value = await auth.token()
            method, target = proof or ("POST", url)
            return value, await request_headers(auth, method.upper(), target)
        finally:
            await auth.aclose()

    value, headers = _run(go())
    if proof is not None:
        sys.stdout.write(f"Authorization: {headers['authorization']}\n")
        if "dpop" in headers:
            sys.stdout.write(f"DPoP: {headers['dpop']}\n")
        return
    sys.stdout.write(value + "\n")
    if headers["authorization"].startswith("DPoP "):
        click.echo(
            "This token is DPoP-bound: send it with 'Authorization: DPoP' and a proof; "
            "'--proof METHOD URL' prints both, 'mcpward curl' makes the request.",
            err=True,
        )


@main.command()
@click.argument("url")
@click.option("--target", help="The URL to request (default: URL, the MCP server).")
@click.option("-X", "--request", "method", default=None, help="HTTP method (default GET/POST).")
@click.option("-H", "--header", "headers", multiple=True, help="'Name: value' (repeatable).")
@click.option("-d", "--data", default=None, help="Request body (then POST by default).")
@_agent_options
def curl(
    url: str,
    target: str | None,
    method: str | None,
    headers: tuple[str, ...],
    data: str | None,
    **agent: Any,
) -> None:
    """One HTTP request with your token for URL (and a fresh DPoP proof), curl-like: the
    response body on stdout; exit 22 on an HTTP error, as `curl --fail`."""
    import httpx

    auth = _auth(url, agent)
    extra = dict(_header(h) for h in headers)

    async def go() -> httpx.Response:
        try:
            async with httpx.AsyncClient(auth=auth, timeout=30) as http:
                return await http.request(
                    (method or ("POST" if data is not None else "GET")).upper(),
                    target or url,
                    headers=extra,
                    content=data.encode() if data is not None else None,
                )
        finally:
            await auth.aclose()

    response = _run(go())
    sys.stdout.write(response.text)
    if response.status_code >= 400:
        click.echo(f"HTTP {response.status_code}", err=True)
        sys.exit(22)


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise click.BadParameter("expected 'Name: value'")
    return name.strip(), content.strip()
