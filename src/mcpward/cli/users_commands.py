"""Operator commands for people: add, list, disable/enable, set-password, reset-totp,
consents and offboard (disable, revoke every token and refresh family, forget consents).

Passwords are never taken from the command line (shell history, process lists): they are
prompted for, or read from stdin with ``--password-stdin``.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import TYPE_CHECKING, Any

import click

from mcpward._secrets import new_id
from mcpward.audit import AuditEvent
from mcpward.cli import main
from mcpward.cli._common import emit, json_option, run_with_server, table, when
from mcpward.storage.records import UserRecord

if TYPE_CHECKING:
    from mcpward.server import AuthorizationServer


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


async def _existing(server: AuthorizationServer, username: str) -> UserRecord:
    user = await server.store.users.by_username(username)
    if user is None:
        raise click.ClickException(f"no user {username}")
    return user


def _enroll(server: AuthorizationServer, user: UserRecord) -> tuple[bytes, dict[str, str]]:
    from mcpward.server._crypto import DataKey
    from mcpward.server.pages import _totp

    secret = _totp.new_secret()
    key = DataKey(server.settings.resolved_data_key())
    pages = getattr(server.settings, "pages", None)
    issuer_name = getattr(pages, "product_name", None) or "mcpward"
    uri = _totp.provisioning_uri(secret, user.username, issuer_name)
    return _totp.encrypt_secret(key, user.id, secret), {"totp_secret": secret, "totp_uri": uri}


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

    async def go(server: AuthorizationServer) -> dict[str, Any]:
        if await server.store.users.by_username(username) is not None:
            raise click.ClickException(f"user {username} already exists")
        record = UserRecord(
            id=new_id(),
            username=username,
            email=email,
            display_name=display_name,
            password_hash=password_hash,
            created_at=server.clock(),
        )
        extra: dict[str, str] = {}
        if totp:
            encrypted, extra = _enroll(server, record)
            record = dataclasses.replace(record, totp_secret_enc=encrypted)
        await server.store.users.create(record)
        server.audit.emit(AuditEvent("user.created", "ok", subject=record.id))
        return {**_user_dict(record), **extra}

    data = run_with_server(go)
    emit(data, as_json, [f"created user {username} ({data['id']})", *_totp_lines(data)])


@users.command("list")
@json_option
def users_list(as_json: bool) -> None:
    """All users."""

    async def go(server: AuthorizationServer) -> list[UserRecord]:
        return await server.store.users.all()

    rows = run_with_server(go)
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

    async def go(server: AuthorizationServer) -> UserRecord:
        user = await _existing(server, username)
        await server.store.users.set_disabled(user.id, server.clock())
        server.audit.emit(AuditEvent("user.disabled", "ok", subject=user.id))
        return user

    user = run_with_server(go)
    emit({"id": user.id, "username": username, "disabled": True}, as_json, [f"disabled {username}"])


@users.command("enable")
@click.argument("username")
@json_option
def users_enable(username: str, as_json: bool) -> None:
    """Let a disabled user sign in again."""

    async def go(server: AuthorizationServer) -> UserRecord:
        user = await _existing(server, username)
        await server.store.users.set_disabled(user.id, None)
        server.audit.emit(AuditEvent("user.enabled", "ok", subject=user.id))
        return user

    user = run_with_server(go)
    emit({"id": user.id, "username": username, "disabled": False}, as_json, [f"enabled {username}"])


@users.command("set-password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from stdin.")
@json_option
def users_set_password(username: str, password_stdin: bool, as_json: bool) -> None:
    """Set a user's password."""
    password_hash = _hashed(_read_password(password_stdin))

    async def go(server: AuthorizationServer) -> UserRecord:
        user = await _existing(server, username)
        await server.store.users.set_password_hash(user.id, password_hash)
        server.audit.emit(AuditEvent("user.password_set", "ok", subject=user.id))
        return user

    user = run_with_server(go)
    emit({"id": user.id, "username": username}, as_json, [f"password set for {username}"])


@users.command("reset-totp")
@click.argument("username")
@click.option("--enroll", is_flag=True, help="Enrol a new secret instead of removing it.")
@json_option
def users_reset_totp(username: str, enroll: bool, as_json: bool) -> None:
    """Remove a user's TOTP second factor (lost phone), or replace it with --enroll."""

    async def go(server: AuthorizationServer) -> dict[str, Any]:
        user = await _existing(server, username)
        extra: dict[str, str] = {}
        encrypted = None
        if enroll:
            encrypted, extra = _enroll(server, user)
        await server.store.users.set_totp_secret(user.id, encrypted)
        server.audit.emit(
            AuditEvent("user.totp_reset", "ok", subject=user.id, detail={"enrolled": enroll})
        )
        return {"id": user.id, "username": username, "totp": enroll, **extra}

    data = run_with_server(go)
    first = f"new TOTP secret for {username}" if enroll else f"TOTP removed for {username}"
    emit(data, as_json, [first, *_totp_lines(data)])


@users.command("consents")
@click.argument("username")
@json_option
def users_consents(username: str, as_json: bool) -> None:
    """What a user approved, per client and resource."""

    async def go(server: AuthorizationServer) -> list[dict[str, Any]]:
        user = await _existing(server, username)
        return [
            {
                "client_id": c.client_id,
                "resource": c.resource,
                "scope": c.scope,
                "granted_at": c.granted_at,
            }
            for c in await server.store.users.consents_of(user.id)
        ]

    rows = run_with_server(go)
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

    async def go(server: AuthorizationServer) -> dict[str, Any]:
        user = await _existing(server, username)
        now = server.clock()
        await server.store.users.set_disabled(user.id, user.disabled_at or now)
        families = [
            f
            for f in await server.store.grants.families_of(subject=user.id)
            if f.revoked_at is None
        ]
        await server.revoke_subject(user.id, reason="offboarded")
        forgotten = await server.store.users.forget_consents(user.id)
        server.audit.emit(
            AuditEvent(
                "user.offboarded",
                "ok",
                subject=user.id,
                detail={"families_revoked": len(families), "consents_forgotten": forgotten},
            )
        )
        return {
            "id": user.id,
            "username": username,
            "disabled": True,
            "families_revoked": len(families),
            "consents_forgotten": forgotten,
        }

    data = run_with_server(go)
    emit(
        data,
        as_json,
        [
            f"offboarded {username}: account disabled, "
            f"{data['families_revoked']} token families revoked (and every access token), "
            f"{data['consents_forgotten']} consents forgotten"
        ],
    )
