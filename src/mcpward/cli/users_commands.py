"""Operator commands for people: add, list, disable/enable, set-password, reset-totp,
consents, offboard (disable, revoke every token and refresh family, forget consents) and
grant-operator / revoke-operator (sign-in to the operator console).

Passwords are never taken from the command line (shell history, process lists): they are
prompted for, or read from stdin with ``--password-stdin``.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_operations, table, when
from mcpward.storage.records import UserRecord

if TYPE_CHECKING:
    from mcpward.operations import Actor, Enrolment, Operations


def _user_dict(user: UserRecord) -> dict[str, Any]:
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "display_name": user.display_name,
        "password": user.password_hash is not None,
        "totp": user.totp_secret_enc is not None,
        "upstream_issuer": user.upstream_issuer,
        "created_at": user.created_at,
        "disabled_at": user.disabled_at,
    }


def _read_password(from_stdin: bool) -> str:
    from mcpward.server.pages._passwords import weakness

    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = weakness(password)
    if problem:
        raise click.ClickException(problem)
    return password


def _hashed(password: str) -> str:
    from mcpward.server.pages._passwords import hash_password

    return hash_password(password)


def _enrolment(enrolment: Enrolment | None) -> dict[str, str]:
    if enrolment is None:
        return {}
    return {"totp_secret": enrolment.secret, "totp_uri": enrolment.uri}


def _totp_lines(data: dict[str, Any]) -> list[str]:
    if "totp_uri" not in data:
        return []
    return [
        "Authenticator enrolment (shown once; hand it over privately):",
        f"  secret: {data['totp_secret']}",
        f"  uri:    {data['totp_uri']}",
    ]


@main.group()
def users() -> None:
    """People who sign in at the authorization server."""


@users.command("add")
@click.argument("username")
@click.option("--email", default=None)
@click.option("--name", "display_name", default=None, help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@click.option("--no-password", is_flag=True, help="Signs in only through an upstream provider.")
@click.option("--totp", is_flag=True, help="Enrol a TOTP second factor now.")
@json_option
def users_add(
    username: str,
    email: str | None,
    display_name: str | None,
    password_stdin: bool,
    no_password: bool,
    totp: bool,
    as_json: bool,
) -> None:
    """Create a user."""
    password_hash = None if no_password else _hashed(_read_password(password_stdin))

    async def go(ops: Operations, actor: Actor) -> dict[str, Any]:
        record, enrolment = await ops.users.create(
            username,
            actor,
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            totp=totp,
        )
        return {**_user_dict(record), **_enrolment(enrolment)}

    data = run_operations(go)
    emit(data, as_json, [f"created user {username} ({data['id']})", *_totp_lines(data)])


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """All users."""

    async def go(ops: Operations, actor: Actor) -> list[UserRecord]:
        return await ops.users.all()

    rows = run_operations(go)
    emit(
        [_user_dict(u) for u in rows],
        as_json,
        table(
            [
                [
                    u.username,
                    u.display_name or "-",
                    u.email or "-",
                    "password" if u.password_hash else "upstream",
                    "yes" if u.totp_secret_enc else "no",
                    "disabled " + when(u.disabled_at) if u.disabled_at else "active",
                ]
                for u in rows
            ],
            ["USERNAME", "NAME", "EMAIL", "SIGN-IN", "TOTP", "STATUS"],
        ),
    )


@users.command("disable")
@click.argument("username")
@json_option
def users_disable(username: str, as_json: bool) -> None:
    """Stop a user from signing in (existing tokens keep working: see offboard)."""

    async def go(ops: Operations, actor: Actor) -> UserRecord:
        user = await ops.users.by_username(username)
        await ops.users.disable(user, actor)
        return user

    user = run_operations(go)
    emit({"id": user.id, "username": username, "disabled": True}, as_json, [f"disabled {username}"])


@users.command("enable")
@click.argument("username")
@json_option
def users_enable(username: str, as_json: bool) -> None:
    """Let a disabled user sign in again."""

    async def go(ops: Operations, actor: Actor) -> UserRecord:
        user = await ops.users.by_username(username)
        await ops.users.enable(user, actor)
        return user

    user = run_operations(go)
    emit({"id": user.id, "username": username, "disabled": False}, as_json, [f"enabled {username}"])


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@json_option
def users_set_password(username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a user's password."""
    password_hash = _hashed(_read_password(password_stdin))

    async def go(ops: Operations, actor: Actor) -> UserRecord:
        user = await ops.users.by_username(username)
        await ops.users.set_password(user, password_hash, actor)
        return user

    user = run_operations(go)
    emit({"id": user.id, "username": username}, as_json, [f"password set for {username}"])


@users.command("reset-totp")
@click.argument("username")
@click.option("--enroll", is_flag=True, help="Enrol a new secret instead of removing it.")
@json_option
def users_reset_totp(username: str, enroll: bool, as_json: bool) -> None:
    """Remove a user's TOTP second factor (lost phone), or replace it with --enroll."""

    async def go(ops: Operations, actor: Actor) -> dict[str, Any]:
        user = await ops.users.by_username(username)
        enrolment = await ops.users.reset_totp(user, actor, enrol=enroll)
        return {"id": user.id, "username": username, "totp": enroll, **_enrolment(enrolment)}

    data = run_operations(go)
    first = f"new TOTP secret for {username}" if enroll else f"TOTP removed for {username}"
    emit(data, as_json, [first, *_totp_lines(data)])


@users.command("consents")
@click.argument("username")
@json_option
def users_consents(username: str, as_json: bool) -> None:
    """What a user approved, per client and resource."""

    async def go(ops: Operations, actor: Actor) -> list[dict[str, Any]]:
        user = await ops.users.by_username(username)
        return [
            {
                "client_id": c.client_id,
                "resource": c.resource,
                "scope": c.scope,
                "granted_at": c.granted_at,
            }
            for c in await ops.users.consents(user)
        ]

    rows = run_operations(go)
    emit(
        rows,
        as_json,
        table(
            [[r["client_id"], r["resource"], r["scope"], when(r["granted_at"])] for r in rows],
            ["CLIENT", "RESOURCE", "SCOPE", "GRANTED"],
        ),
    )


@users.command("offboard")
@click.argument("username")
@json_option
def users_offboard(username: str, as_json: bool) -> None:
    """Someone leaves: disable the account, revoke every refresh family and access token
    (through the revocations feed every guard reads) and forget every consent, at once."""

    async def go(ops: Operations, actor: Actor) -> dict[str, Any]:
        done = await ops.users.offboard(await ops.users.by_username(username), actor)
        return {
            "id": done.user.id,
            "username": username,
            "disabled": True,
            "families_revoked": done.families_revoked,
            "consents_forgotten": done.consents_forgotten,
        }

    data = run_operations(go)
    emit(
        data,
        as_json,
        [
            f"offboarded {username}: account disabled, "
            f"{data['families_revoked']} token families revoked (and every access token), "
            f"{data['consents_forgotten']} consents forgotten"
        ],
    )


@users.command("grant-operator")
@click.argument("username")
@json_option
def users_grant_operator(username: str, as_json: bool) -> None:
    """Let a user sign in to the operator console (they need a password and TOTP)."""

    async def go(ops: Operations, actor: Actor) -> UserRecord:
        return await ops.users.grant_operator(await ops.users.by_username(username), actor)

    user = run_operations(go)
    emit(
        {"id": user.id, "username": username, "operator_since": user.operator_since},
        as_json,
        [f"{username} is an operator (console sign-in with password and TOTP)"],
    )


@users.command("revoke-operator")
@click.argument("username")
@json_option
def users_revoke_operator(username: str, as_json: bool) -> None:
    """Take the operator role away (their console sessions end at the next request)."""

    async def go(ops: Operations, actor: Actor) -> UserRecord:
        user = await ops.users.by_username(username)
        await ops.users.revoke_operator(user, actor)
        return user

    user = run_operations(go)
    emit(
        {"id": user.id, "username": username, "operator": False},
        as_json,
        [f"{username} is no longer an operator"],
    )
