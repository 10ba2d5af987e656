"""The audit events: their catalogue, their outcomes, and the one record type.

What goes in is fixed by :class:`AuditEvent`: identifiers (``jti``, client id, subject),
scopes, audience, tool or method, outcome and timing. There is deliberately no free-form
field that could carry a token, a code, a verifier or a secret, raw or hashed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Literal

import orjson

Outcome = Literal[
    "ok",
    "unauthorized",
    "forbidden",
    "rate_limited",
    "error",
    "denied",
    "invalid",
    "reuse_detected",
]

# Every event mcpward writes, by name; `EVENTS` says what each means. A new event is
# added to both (tests/test_audit.py checks they agree).
EventName = Literal[
    # authorization server: tokens
    "token.issued",
    "token.refreshed",
    "token.revoked",
    "token.revoke_refused",
    "tokens.revoked",
    "code.issued",
    "code.replayed",
    "refresh.reuse_detected",
    "refresh.retried",
    # authorization server: JWT grants and token exchange
    "token.issued_from_assertion",
    "assertion.rejected",
    "token.exchanged",
    "exchange.refused",
    # DPoP (RFC 9449)
    "dpop.proof_rejected",
    "dpop.key_mismatch",
    # clients
    "client.registered",
    "client.registration_rejected",
    "client.metadata_document_rejected",
    "client.authentication_failed",
    "client.created",
    "client.secret_rotated",
    "client.secret_delivery_failed",
    "client.disabled",
    "client.pruned",
    "key.rotated",
    # operators: the console and the CLI's operator commands
    "grant.revoked",
    "operator.granted",
    "operator.revoked",
    "console.signed_in",
    "console.sign_in_failed",
    "console.signed_out",
    "console.stepped_up",
    "console.step_up_failed",
    # people: sign-in pages and the users CLI
    "authorize.rejected",
    "authorize.cancelled",
    "login.password_ok",
    "login.succeeded",
    "login.failed",
    "login.locked",
    "logout",
    "consent.granted",
    "consent.remembered",
    "consent.denied",
    "consent.failed",
    "consent.revoked",
    "user.created",
    "user.disabled",
    "user.enabled",
    "user.password_set",
    "user.totp_reset",
    "user.offboarded",
    # guard
    "mcp.request",
    "mcp.tool_call",
]

EVENTS: dict[EventName, str] = {
    "token.issued": "an access token was issued (client_credentials, authorization_code)",
    "token.refreshed": "a refresh token was rotated and a new access token issued",
    "token.revoked": "a token was revoked (at the revocation endpoint, or by an operator)",
    "token.revoke_refused": "a client asked to revoke a token issued to another client",
    "tokens.revoked": "every token of a subject or a client was revoked",
    "code.issued": "an authorization code was issued after sign-in and consent",
    "code.replayed": "a used authorization code was presented again; its grant was revoked",
    "refresh.reuse_detected": "a rotated refresh token was presented again; family revoked",
    "refresh.retried": "a just-rotated refresh token presented again by its client within "
    "the retry window: answered with the same successor and a new access token",
    "token.issued_from_assertion": (
        "an access token was issued for a JWT bearer assertion (ID-JAG or workload JWT); "
        "names the grant type, profile, assertion issuer and jti, and the workload rule"
    ),
    "assertion.rejected": (
        "a JWT bearer assertion or workload client assertion was refused; names the issuer "
        "when trusted and the jti when the signature held"
    ),
    "token.exchanged": (
        "a token exchange (RFC 8693) issued a downstream token; names the subject token's "
        "jti and audience and the actor chain"
    ),
    "exchange.refused": "a token exchange was refused (policy, audience or scope)",
    "dpop.proof_rejected": "a token request's DPoP proof was refused (detail: which check)",
    "dpop.key_mismatch": "a DPoP-bound code or refresh token came without a proof of its key",
    "client.registered": "a client registered itself (RFC 7591)",
    "client.registration_rejected": "a registration request was refused",
    "client.metadata_document_rejected": "a Client ID Metadata Document was refused",
    "client.authentication_failed": "client authentication failed at a token endpoint",
    "client.created": "an operator pre-registered a client",
    "client.secret_rotated": "a client secret was rotated",
    "client.secret_delivery_failed": "a rotated secret is committed but not yet current in "
    "the secret store; the next rotate-due finishes it",
    "client.disabled": "a client was disabled and its tokens revoked",
    "client.pruned": "a registered client that never got a token was deleted",
    "key.rotated": "a new signing key was added",
    "grant.revoked": "an operator revoked one grant (a token family and its access tokens)",
    "operator.granted": "a user was given the operator role (console sign-in)",
    "operator.revoked": "a user's operator role was taken away",
    "console.signed_in": "an operator signed in to the console (password and TOTP)",
    "console.sign_in_failed": "a console sign-in attempt failed",
    "console.signed_out": "an operator signed out of the console",
    "console.stepped_up": "an operator re-authenticated for a destructive action",
    "console.step_up_failed": "a re-authentication for a destructive action failed",
    "authorize.rejected": "an authorization request was refused before any page",
    "authorize.cancelled": "the person cancelled at the sign-in page",
    "login.password_ok": "the password was right; a second factor follows",
    "login.succeeded": "the person signed in",
    "login.failed": "a sign-in attempt failed",
    "login.locked": "an account or address was locked after repeated failures",
    "logout": "the person signed out",
    "consent.granted": "the person approved an application",
    "consent.remembered": "a remembered consent was used",
    "consent.denied": "the person denied an application",
    "consent.failed": "a consent form could not be accepted",
    "consent.revoked": "the person withdrew an application's access",
    "user.created": "a user was created",
    "user.disabled": "a user was disabled",
    "user.enabled": "a user was enabled",
    "user.password_set": "a user's password was set",
    "user.totp_reset": "a user's second factor was reset",
    "user.offboarded": "a user was disabled, and every token and consent revoked",
    "mcp.request": "the guard decided on one MCP request",
    "mcp.tool_call": "one tool call in an MCP request",
}


@dataclass(frozen=True, slots=True)
class AuditEvent:
    event: EventName
    outcome: Outcome
    client_id: str | None = None
    subject: str | None = None
    jti: str | None = None
    scopes: Sequence[str] = ()
    audience: str | None = None
    tool: str | None = None
    method: str | None = None
    duration_ms: float | None = None
    request_id: str | None = None
    # A short machine-readable reason such as an OAuth error code; never user input.
    reason: str | None = None
    # Other identifiers (family id, kid, count); values are ids, never secrets.
    detail: dict[str, str | int | float | bool | None] = field(default_factory=dict)
    timestamp: float | None = None
    # Who acted, for operator actions: "console:USERNAME" or "cli:OS-USER".
    actor: str | None = None

    def to_json(self, now: float) -> str:
        # The values read in one C call rather than dataclasses.asdict (which deep-copies)
        # or a getattr per field: this runs on every token issued and every tool call.
        record: dict[str, object] = {
            name: value
            for name, value in zip(_FIELDS, _values(self), strict=True)
            if value is not None
        }
        record["scopes"] = list(self.scopes)  # always there, [] when none
        if not self.detail:
            record.pop("detail", None)
        record["timestamp"] = _iso8601(self.timestamp or now)
        return orjson.dumps(record, option=orjson.OPT_SORT_KEYS).decode()


_FIELDS = tuple(f.name for f in fields(AuditEvent))
_values = attrgetter(*_FIELDS)
_second_cache: tuple[int, str] = (-1, "")


def _iso8601(timestamp: float) -> str:
    """UTC with milliseconds, e.g. 2026-11-27T02:46:05.938Z. The formatted second is
    reused while it lasts: events come many per second."""
    global _second_cache
    second = int(timestamp)
    if _second_cache[0] != second:
        _second_cache = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    # Round to microseconds first, as datetime does, so 0.938 is not shown as .937.
    millis = min(999, round((timestamp - second) * 1_000_000) // 1000)
    return f"{_second_cache[1]}.{millis:03d}Z"
