"""Automated client-secret rotation into a secret store, in the one order that never
loses the only copy of a valid secret: **stage in the store, commit in mcpward, promote
in the store**.

- Staging fails (store down, permission denied): nothing is committed. The old secret is
  still current in the store and in mcpward, and the client is still due, so the next
  ``rotate-due`` tries again.
- The commit fails: the staged secret is valid nowhere; it is discarded at once, or by
  the next run, which finds it is not mcpward's.
- Promotion fails, or the process dies before it: the new secret is valid in mcpward and
  its copy is the staged one in the store; the old secret is still the current one there
  and valid until the overlap ends. The next run finds the staged secret is mcpward's
  newest and promotes it. With ``--overlap 0`` readers fail until then, which is what a
  compromised secret asks for.

Promotion waits ``cache_ttl`` (2 s) after the commit, until every replica accepts the new
secret, so that a reader is never handed a secret some replica still refuses.

Committing first is the order that loses secrets: a failed delivery leaves the new valid
secret only in this process's memory, the old one cut down to the overlap window, and
the client no longer due, so no later run notices before the old secret dies.

``rotate-due`` therefore starts by settling every client against the store: after it, the
secret readers get is mcpward's newest one. Whatever left an older secret there (an
interrupted rotation, two rotations racing), the client is rotated again, which keeps
the secret readers have valid for the overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from mcpward._secret_stores import SecretStoreError
from mcpward._secrets import credential_hash
from mcpward.audit import AuditEvent
from mcpward.server.clients import NewSecret
from mcpward.server.core import AuthorizationServer
from mcpward.server.secret_sinks import SecretSink, Staged
from mcpward.storage.records import SecretRecord

SECRET_METHODS = ("client_secret_basic", "client_secret_post")


class PromotionFailed(SecretStoreError):
    """The rotation is committed and the new secret staged, but not yet current."""


@dataclass
class RotationReport:
    rotated: list[str] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)  # interrupted rotations promoted
    discarded: list[str] = field(default_factory=list)  # staged, not mcpward's newest
    failed: dict[str, str] = field(default_factory=dict)  # client id -> what went wrong


async def rotate(
    server: AuthorizationServer, sink: SecretSink, client_id: str, overlap: float | None = None
) -> NewSecret:
    """Rotate one client's secret through ``sink``; raises SecretStoreError when the store
    refuses (nothing committed) and PromotionFailed when only the last step failed."""
    secret, staged = await _stage_and_commit(server, sink, client_id, overlap)
    await _propagated(server)
    await _promote(server, sink, staged)
    return secret


async def rotate_due(
    server: AuthorizationServer, sink: SecretSink, within: float
) -> RotationReport:
    """Settle every client against the store, then rotate every secret expiring within
    ``within`` seconds. One client's failure does not stop the others."""
    report = RotationReport()
    behind = []
    for client in await server.store.clients.all():
        if client.disabled_at is None and client.token_endpoint_auth_method in SECRET_METHODS:
            try:
                if not await _settle(server, sink, client.client_id, report):
                    behind.append(client.client_id)
            except SecretStoreError as exc:
                report.failed[client.client_id] = str(exc)
    due = await server.clients.due_for_rotation(within)
    committed = []
    for client_id in sorted((set(behind) | set(due)) - set(report.failed)):
        try:
            committed.append((await _stage_and_commit(server, sink, client_id, None))[1])
        except SecretStoreError as exc:
            report.failed[client_id] = str(exc)
        else:
            report.rotated.append(client_id)
    if committed:
        await _propagated(server)
    for staged in committed:
        try:
            await _promote(server, sink, staged)
        except SecretStoreError as exc:
            report.failed[staged.client_id] = str(exc)
    return report


async def _stage_and_commit(
    server: AuthorizationServer, sink: SecretSink, client_id: str, overlap: float | None
) -> tuple[NewSecret, Staged]:
    secret = server.clients.new_secret(client_id)
    staged = await sink.stage(client_id, secret.secret, secret.expires_at)
    try:
        await server.clients.rotate_secret(client_id, overlap, secret=secret)
    except BaseException:
        with contextlib.suppress(Exception):
            await sink.discard(staged)  # best effort; the next run discards it otherwise
        raise
    server.audit.emit(AuditEvent("client.secret_rotated", "ok", client_id=client_id))
    return secret, staged


async def _propagated(server: AuthorizationServer) -> None:
    """Every replica caches a client's secrets for ``cache_ttl``: promote only once all of
    them accept the new secret, so that no reader is handed one that is refused."""
    await asyncio.sleep(server.clients.cache_ttl)


async def _settle(
    server: AuthorizationServer, sink: SecretSink, client_id: str, report: RotationReport
) -> bool:
    """Finish or discard a staged secret; whether the store now hands readers mcpward's
    newest secret, or none (always true for a sink that cannot tell)."""
    records = await server.store.clients.secrets(client_id)
    if not records:
        return True
    newest = max(records, key=lambda r: r.created_at)
    staged = await sink.staged(client_id)
    if staged is not None:
        if _is(newest, staged.secret) and newest.expires_at > server.clock():
            await _promote(server, sink, staged)
            report.finished.append(client_id)
        else:
            await sink.discard(staged)
            report.discarded.append(client_id)
    if not sink.readback:
        return True
    current = await sink.current(client_id)
    # Nothing there: the secret was handed out another way (printed by `clients create`);
    # putting it in the store stays the operator's call (`rotate-secret ID`).
    return current is None or _is(newest, current)


def _is(record: SecretRecord, secret: str) -> bool:
    return credential_hash(secret) == record.secret_hash


async def _promote(server: AuthorizationServer, sink: SecretSink, staged: Staged) -> None:
    try:
        await sink.promote(staged)
    except SecretStoreError as exc:
        server.audit.emit(
            AuditEvent("client.secret_delivery_failed", "error", client_id=staged.client_id)
        )
        raise PromotionFailed(
            f"{exc}. The new secret of {staged.client_id} is committed and staged in the "
            "store, not yet current; the old one works until the overlap ends. "
            "`mcpward clients rotate-due` finishes it."
        ) from None
