"""Automated client-secret rotation into a secret store, in the one order that never
loses the only copy of a valid secret: **stage in the store, commit in mcpward, promote
in the store**.

- Staging fails (store down, permission denied): nothing is committed. The old secret is
  still current in the store and in mcpward, and the client is still due, so the next
  ``rotate-due`` tries again.
- The commit fails: the staged secret is valid nowhere; it is discarded at once, or by
  the next run, which finds mcpward refuses it.
- Promotion fails, or the process dies before it: the new secret is valid in mcpward and
  its copy is the staged one in the store; the old secret is still the current one there
  and valid until the overlap ends. The next run finds the staged secret, sees mcpward
  accepts it, and promotes it. The window is the overlap (7 days by default); with
  ``--overlap 0`` readers fail until promotion, which is what a compromised secret asks.

Committing first is the order that loses secrets: a failed delivery leaves the new valid
secret only in this process's memory, the old one cut down to the overlap window, and
the client no longer due, so no later run notices before the old secret dies.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from mcpward._secret_stores import SecretStoreError
from mcpward.audit import AuditEvent
from mcpward.server.clients import NewSecret
from mcpward.server.core import AuthorizationServer
from mcpward.server.secret_sinks import SecretSink, Staged

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class PromotionFailed(SecretStoreError):
    """The rotation is committed and the new secret staged, but not yet current."""


@dataclass
class RotationReport:
    rotated: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # interrupted rotations promoted
    discarded: list[str] = field(default_factory=list)  # staged but never committed
    failed: dict[str, str] = field(default_factory=dict)  # client id -> what went wrong


async def rotate(
    server: AuthorizationServer, sink: SecretSink, client_id: str, overlap: float | None = None
) -> NewSecret:
    """Rotate one client's secret through ``sink``; raises SecretStoreError when the store
    refuses (nothing committed) and PromotionFailed when only the last step failed."""
    secret = server.clients.new_secret(client_id)
    staged = await sink.stage(client_id, secret.secret, secret.expires_at)
    try:
        await server.clients.rotate_secret(client_id, overlap, secret=secret)
    except BaseException:
        with contextlib.suppress(Exception):
            await sink.discard(staged)  # best effort; the next run discards it otherwise
        raise
    server.audit.emit(AuditEvent("client.secret_rotated", "ok", client_id=client_id))
    await _promote(server, sink, staged)
    return secret


async def rotate_due(
    server: AuthorizationServer, sink: SecretSink, within: float
) -> RotationReport:
    """Finish interrupted rotations, then rotate every secret expiring within ``within``
    seconds. One client's failure does not stop the others."""
    report = RotationReport()
    await _finish_interrupted(server, sink, report)
    for client_id in await server.clients.due_for_rotation(within):
        try:
            await rotate(server, sink, client_id)
        except SecretStoreError as exc:
            report.failed[client_id] = str(exc)
            if isinstance(exc, PromotionFailed):
                report.rotated.append(client_id)
        else:
            report.rotated.append(client_id)
    return report


async def _finish_interrupted(
    server: AuthorizationServer, sink: SecretSink, report: RotationReport
) -> None:
    for client in await server.store.clients.all():
        if client.disabled_at is not None or client.token_endpoint_auth_method not in (
            SECRET_METHODS
        ):
            continue
        try:
            staged = await sink.staged(client.client_id)
            if staged is None:
                continue
            if await server.clients.check_secret(client.client_id, staged.secret):
                await _promote(server, sink, staged)
                report.finished.append(client.client_id)
            else:
                await sink.discard(staged)
                report.discarded.append(client.client_id)
        except SecretStoreError as exc:
            report.failed[client.client_id] = str(exc)


async def _promote(server: AuthorizationServer, sink: SecretSink, staged: Staged) -> None:
    try:
        await sink.promote(staged)
    except SecretStoreError as exc:
        server.audit.emit(
            AuditEvent(
                "client.secret_promotion", "error", client_id=staged.client_id, reason="store"
            )
        )
        raise PromotionFailed(
            f"{exc}. The new secret of {staged.client_id} is committed and staged in the "
            "store, not yet current; the old one works until the overlap ends. "
            "`mcpward clients rotate-due` finishes it."
        ) from None
