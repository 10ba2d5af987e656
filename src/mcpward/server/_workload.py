"""Workload identity federation (MCP extension SEP-1933): a platform-issued JWT (a
Kubernetes projected service-account token, a GitHub Actions OIDC token, a SPIFFE
JWT-SVID) stands in for a client secret. Configured rules map the JWT's ``iss``, ``sub``,
audience and further claims to a registered client and the scopes it may get there.

The JWT serves as the client's credential in two places: as the ``assertion`` of the
JWT bearer grant (RFC 7523 §2.1), and as a ``client_assertion`` (RFC 7523 §2.2) for any
grant the client may use. A refusal names the rules that were tried and why each did
not match, never the token.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from mcpward._config_federation import WorkloadRule
from mcpward.audit import AuditEvent, AuditLog
from mcpward.server._assertions import (
    AssertionRejected,
    AssertionVerifier,
    VerifiedAssertion,
    peek,
    single_audience,
)
from mcpward.server.clients import ClientRegistry
from mcpward.server.errors import InvalidClient, InvalidGrant
from mcpward.state import ReplayCache
from mcpward.storage.records import JWT_BEARER, ClientRecord

CLIENT_ASSERTION = "client_assertion"


@dataclass(frozen=True, slots=True)
class WorkloadMatch:
    """A verified workload JWT, the rule it matched and the client that rule names."""

    rule: WorkloadRule
    client: ClientRecord
    assertion: VerifiedAssertion

    def audit_detail(self) -> dict[str, str | int | float | bool | None]:
        return {
            "profile": "workload",
            "assertion_issuer": self.assertion.iss,
            "assertion_jti": self.assertion.jti,
            "workload_subject": self.assertion.subject[:200],
            "rule": self.rule.name,
        }


class WorkloadTrust:
    def __init__(
        self,
        verifier: AssertionVerifier,
        rules: Sequence[WorkloadRule],
        registry: ClientRegistry,
        replay: ReplayCache,
        audit: AuditLog,
        *,
        issuer: str,
    ) -> None:
        self._verifier = verifier
        self._rules = list(rules)
        self._registry = registry
        self._replay = replay
        self._audit = audit
        self._issuer = issuer

    def recognizes(self, token: str) -> bool:
        """Whether ``token`` looks like a workload JWT of a trusted issuer (routing only:
        nothing is verified yet)."""
        try:
            unverified = peek(token)
        except AssertionRejected:
            return False
        if unverified.profile != "workload":
            return False
        return self._verifier.trusted(unverified.claims.get("iss"), "workload") is not None

    async def authenticate(
        self, token: str, client_id: str | None, *, via: str = JWT_BEARER
    ) -> WorkloadMatch:
        """The client ``token`` authenticates (as ``client_id`` when the request names
        one). ``via`` is the grant type, or ``client_assertion`` when the JWT is client
        authentication: its refusals are ``invalid_client`` (RFC 7523 §3.2) rather than
        ``invalid_grant`` (§3.1). Refusals are audited."""
        try:
            match = await self._match(token, client_id)
        except AssertionRejected as rejected:
            self._refuse(rejected, None, via)
        if match.assertion.issuer.single_use:
            try:
                await self._verifier.first_use(self._replay, match.assertion)
            except AssertionRejected as rejected:
                self._refuse(rejected, match.client.client_id, via)
        return match

    async def _match(self, token: str, client_id: str | None) -> WorkloadMatch:
        assertion = await self._verifier.verify(token, "workload")
        rules = [r for r in self._rules if r.issuer == assertion.iss]
        if client_id:
            rules = [r for r in rules if r.client_id == client_id]
        if not rules:
            target = " for this client" if client_id else ""
            raise assertion.rejected("no_rule", f"no workload rule of this issuer{target}")
        failures: list[str] = []
        matched: list[WorkloadRule] = []
        for rule in rules:
            why = self._mismatch(rule, assertion.claims)
            if why is None:
                matched.append(rule)
            else:
                failures.append(f"{rule.name}: {why}")
        if not matched:
            raise assertion.rejected(
                "no_rule", "no workload rule matches (" + "; ".join(failures)[:300] + ")"
            )
        if len({r.client_id for r in matched}) > 1:
            names = ", ".join(r.name for r in matched)
            raise assertion.rejected(
                "ambiguous_rule", f"workload rules {names} name different clients: send client_id"
            )
        rule = matched[0]
        client = await self._registry.get(rule.client_id)
        if client is None or client.disabled_at is not None:
            raise assertion.rejected(
                "unknown_client", f"the client of workload rule {rule.name} is unknown or disabled"
            )
        return WorkloadMatch(rule, client, assertion)

    def _mismatch(self, rule: WorkloadRule, claims: Mapping[str, Any]) -> str | None:
        """Why ``rule`` does not match, in words naming the claim, never its value."""
        if claims.get("sub") != rule.subject:
            return "subject differs"
        if single_audience(claims) != (rule.audience or self._issuer):
            return "audience is not exactly the expected one"
        for name, expected in rule.claims.items():
            value = claims.get(name)
            if isinstance(value, bool) or not isinstance(value, str | int | float):
                return f"claim {name} is missing"
            if str(value) != expected:
                return f"claim {name} differs"
        return None

    def _refuse(self, rejected: AssertionRejected, client_id: str | None, via: str) -> NoReturn:
        """Audit the refusal, then raise it as the OAuth error of where the JWT was used.
        ``client_id`` only once a rule named a registered client: whatever a request put
        in client_id is not written anywhere."""
        self._audit.emit(
            AuditEvent(
                "assertion.rejected",
                "denied",
                client_id=client_id,
                reason=rejected.reason,
                detail={
                    "grant_type": via,
                    "profile": "workload",
                    "assertion_issuer": rejected.issuer,
                    "assertion_jti": rejected.jti,
                },
            )
        )
        if via == CLIENT_ASSERTION:
            raise InvalidClient(rejected.description, client_id=client_id) from None
        raise InvalidGrant(rejected.description) from None
