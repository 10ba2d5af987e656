"""The guard's decisions, free of any web framework: who is calling, and may they do this.

``authenticate`` turns an ``Authorization`` header (``Bearer``, or ``DPoP`` with its
proof) into an :class:`Identity` (or a :class:`GuardError`); ``authorize`` checks the
JSON-RPC calls of one request: scopes, policy, then one rate-limit hit that also carries
the revocation check and spends the DPoP proof's ``jti``. Both run on every request, the
verified-token cache only saves the token's signature check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from mcpward._clock import Clock, system_clock
from mcpward.audit import AuditEvent, AuditLog
from mcpward.dpop import Proof
from mcpward.guard._challenge import BEARER_ONLY, Schemes
from mcpward.guard._credentials import credentials, query_has_token
from mcpward.guard._dpop import ResourceProofs
from mcpward.guard._errors import (
    BadAuthorization,
    GuardError,
    InsufficientScope,
    InvalidDPoPProof,
    InvalidToken,
    MissingToken,
    PolicyDenied,
    RateLimited,
    Unavailable,
)
from mcpward.guard._identity import Identity
from mcpward.guard._jsonrpc import Call, Kind
from mcpward.guard._metrics import GuardMetrics
from mcpward.guard._policy import Policy
from mcpward.guard._rfc9728 import ProtectedResourceMetadata
from mcpward.guard._scopes import ScopeRules
from mcpward.guard._verify import TokenVerifier
from mcpward.revocation import RevocationView, TokenRef
from mcpward.state import (
    Bucket,
    Decision,
    Limit,
    MemoryRateLimiter,
    MemoryReplayCache,
    RateLimiter,
    ReplayCache,
    ReplayCheckingLimiter,
    RevocationCheckingLimiter,
    StateUnavailable,
)

# Authorization header values already parsed into a token that verified, and the
# rate-limit buckets of recent identities.
_HEADER_CACHE = 4096

# When the rate limiter's backend (Redis) is unreachable: refuse with 503 ("closed", the
# default: a leaked token must not run unlimited) or let requests through ("open").
# Revocation checks always fail closed.
FailureMode = Literal["closed", "open"]


class Authenticated(NamedTuple):
    """Who is calling, and the DPoP proof that came with a bound token (its ``jti`` is
    spent when the request is admitted)."""

    identity: Identity
    proof: Proof | None = None


@dataclass(frozen=True, slots=True)
class RateLimits:
    """Limits applied to every MCP request; ``tools`` adds a per-token limit per tool."""

    per_token: Limit | None = field(default_factory=lambda: Limit(120, 60))
    per_client: Limit | None = None
    per_subject: Limit | None = None
    tools: Mapping[str, Limit] = field(default_factory=dict)


class Guard:
    def __init__(
        self,
        *,
        resource: str,
        authorization_servers: Sequence[str],
        verifier: TokenVerifier,
        rules: ScopeRules,
        revocations: RevocationView | None = None,
        rate_limiter: RateLimiter | None = None,
        rate_limits: RateLimits | None = None,
        policy: Policy | None = None,
        audit: AuditLog | None = None,
        metrics: GuardMetrics | None = None,
        resource_name: str | None = None,
        rate_limit_failure: FailureMode = "closed",
        proofs: ResourceProofs | None = None,
        replay: ReplayCache | None = None,
        clock: Clock = system_clock,
    ) -> None:
        self.resource = resource
        self.verifier = verifier
        self.rules = rules
        self.revocations = revocations
        self.rate_limiter: RateLimiter = rate_limiter or MemoryRateLimiter()
        # DPoP (RFC 9449): accepted when ``proofs`` is given; proof jtis spent in
        # ``replay`` (shared by replicas when it is Redis).
        self.proofs = proofs
        self.replay: ReplayCache = replay or MemoryReplayCache(clock)
        self.schemes: Schemes = proofs.schemes if proofs is not None else BEARER_ONLY
        # Authorization header -> (scheme, token) for headers whose token verified.
        self._parsed: dict[bytes, tuple[str, str]] = {}
        self._base_buckets: dict[int, tuple[Identity, list[Bucket]]] = {}
        self._rate_limits = rate_limits if rate_limits is not None else RateLimits()
        self.policy = policy
        # With Redis for both, the revocation check rides in the rate-limit script.
        limiter = self.rate_limiter
        self._combined: RevocationCheckingLimiter | None = (
            limiter
            if revocations is not None
            and isinstance(limiter, RevocationCheckingLimiter)
            and limiter.revocations is revocations
            else None
        )
        self._separate_view = None if self._combined else revocations
        # With Redis for both, a proof's jti is spent in the same script too.
        self._once: ReplayCheckingLimiter | None = (
            limiter
            if isinstance(limiter, ReplayCheckingLimiter) and limiter.replay is self.replay
            else None
        )
        self.rate_limit_failure = rate_limit_failure
        self.audit = audit or AuditLog()
        self.metrics = metrics or GuardMetrics()
        self.clock = clock
        self.metadata = ProtectedResourceMetadata(
            resource=resource,
            authorization_servers=tuple(authorization_servers),
            scopes_supported=rules.supported(),
            resource_name=resource_name,
            dpop_signing_alg_values_supported=self.schemes.dpop_algs,
            dpop_bound_access_tokens_required=not self.schemes.bearer,
        )

    async def start(self) -> None:
        """Start background work (a table-polling revocation view). Idempotent."""
        start = getattr(self.revocations, "start", None)
        if start is not None:
            await start()

    async def aclose(self) -> None:
        """Stop background work and close the connections the guard opened itself."""
        stop = getattr(self.revocations, "stop", None)
        if stop is not None:
            await stop()
        close = getattr(self.verifier, "aclose", None)
        if close is not None:
            await close()

    @property
    def rate_limits(self) -> RateLimits:
        return self._rate_limits

    @rate_limits.setter
    def rate_limits(self, value: RateLimits) -> None:
        self._rate_limits = value
        self._base_buckets.clear()

    @property
    def resource_metadata_url(self) -> str:
        return self.metadata.url

    async def authenticate(
        self,
        authorization: Sequence[bytes],
        query: bytes,
        *,
        dpop: Sequence[bytes] = (),
        method: str = "POST",
        path: str | None = None,
    ) -> Authenticated:
        """The caller of a request with these ``Authorization`` headers (exactly one is
        allowed) and ``query``; for the DPoP scheme also its ``DPoP`` headers, HTTP
        ``method`` and ``path`` (the proof must be for them)."""
        if query and query_has_token(query):
            raise BadAuthorization("send the access token in the Authorization header only")
        if not authorization:
            raise MissingToken()
        if len(authorization) > 1:
            raise BadAuthorization("more than one Authorization header")
        header = authorization[0]
        parsed = self._parsed.get(header)
        scheme, token = (
            parsed if parsed is not None else credentials(header, dpop=self.proofs is not None)
        )
        if scheme == "bearer":
            identity = await self.verifier.verify(token)
            if identity.jkt is not None:
                # RFC 9449 §7.2: a bound token sent as a bearer token is refused.
                raise InvalidToken("a DPoP-bound token must be sent with the DPoP scheme")
            if self.proofs is not None and self.proofs.required:
                raise InvalidToken("this resource accepts DPoP-bound tokens only")
            caller = Authenticated(identity)
        else:
            assert self.proofs is not None  # credentials() accepts DPoP only then
            try:
                identity = await self.verifier.verify(token)
                if identity.jkt is None:
                    raise InvalidToken("the access token is not bound to a DPoP key", scheme="DPoP")
            except GuardError as exc:
                exc.scheme = "DPoP"
                raise
            proof = self.proofs.check(
                dpop, method=method, path=path, token=token, identity=identity
            )
            caller = Authenticated(identity, proof)
        if parsed is None:
            if len(self._parsed) >= _HEADER_CACHE:
                self._parsed.clear()
            self._parsed[bytes(header)] = (scheme, token)
        return caller

    async def authorize(
        self, identity: Identity, calls: Sequence[Call], proof: Proof | None = None
    ) -> Decision | None:
        """Scopes, policy, then revocation + rate limits + the ``proof``'s ``jti`` (one
        backend round trip). Returns the rate limiter's decision (for RateLimit headers),
        ``None`` without limits."""
        try:
            missing: frozenset[str] | None = None
            for call in calls:
                if call.kind is None or call.target is None:
                    continue
                required = self.rules.required(call.kind, call.target)
                if required is None:
                    raise PolicyDenied(f"this {call.kind} declares no scopes and is not available")
                if not required <= identity.scopes:
                    missing = required if missing is None else missing | required
            if missing:
                raise InsufficientScope(
                    "the token lacks scopes this call requires",
                    required=set(missing),
                    held=identity.scopes,
                )
            if self.policy is not None:
                for call in calls:
                    if (
                        call.kind is not None
                        and call.target is not None
                        and not await self.policy.allows(identity, call.kind, call.target)
                    ):
                        raise PolicyDenied(f"the policy does not allow this {call.kind}")
            return await self.admit(identity, calls, proof)
        except GuardError as exc:
            if identity.jkt is not None:  # a bound token came with the DPoP scheme
                exc.scheme = "DPoP"
            raise

    async def admit(
        self, identity: Identity, calls: Sequence[Call] = (), proof: Proof | None = None
    ) -> Decision | None:
        """Revocation, rate limits and the single use of the DPoP proof: on every
        request, cache hit or not."""
        combined = self._combined
        ref = (
            TokenRef(
                jti=identity.jti,
                family=identity.family,
                subject=identity.subject,
                client_id=identity.client_id,
                issued_at=identity.issued_at,
            )
            if self.revocations is not None
            else None
        )
        view = self._separate_view
        if view is not None and ref is not None:
            try:
                revoked = await view.is_revoked(ref)
            except StateUnavailable as exc:
                raise Unavailable("revocations cannot be checked now", exc.retry_after) from None
            if revoked:
                raise InvalidToken("the access token has been revoked")
        buckets = self._buckets(identity, calls)
        once = self._once if proof is not None else None
        if proof is not None and once is None:
            await self._spend(proof)
        if not buckets and combined is None and once is None:
            return None
        try:
            if once is not None and proof is not None:
                decision = await once.hit_first_use(
                    buckets,
                    ref if combined is not None else None,
                    proof.replay_key("rs"),
                    proof.expires_at,
                    self.clock(),
                )
            elif combined is not None and ref is not None:
                decision = await combined.hit_unless_revoked(buckets, ref, self.clock())
            else:
                decision = await self.rate_limiter.hit(buckets, self.clock())
        except StateUnavailable as exc:
            if combined is not None or once is not None or self.rate_limit_failure == "closed":
                raise Unavailable("the rate limit cannot be checked now", exc.retry_after) from None
            return None
        if decision.replayed:
            raise InvalidDPoPProof("the DPoP proof was already used", "replayed")
        if decision.revoked:
            raise InvalidToken("the access token has been revoked")
        if not decision.allowed and decision.limit is not None:
            raise RateLimited(
                retry_after=decision.retry_after,
                limit=decision.limit.requests,
                window=decision.limit.window,
                policy=decision.policy,
            )
        return decision

    async def _spend(self, proof: Proof) -> None:
        """A proof's jti, once, when the limiter cannot spend it in its own round trip.
        Fails closed: a replay check that cannot run refuses the request."""
        try:
            first = await self.replay.first_use(proof.replay_key("rs"), proof.expires_at)
        except StateUnavailable as exc:
            raise Unavailable("DPoP proofs cannot be checked now", exc.retry_after) from None
        if not first:
            raise InvalidDPoPProof("the DPoP proof was already used", "replayed")

    def _buckets(self, identity: Identity, calls: Iterable[Call]) -> list[Bucket]:
        entry = self._base_buckets.get(id(identity))
        if entry is not None and entry[0] is identity:
            base = entry[1]
        else:
            base = self._identity_buckets(identity)
            if len(self._base_buckets) >= _HEADER_CACHE:
                self._base_buckets.clear()
            # Holding the identity keeps its id from being reused while cached.
            self._base_buckets[id(identity)] = (identity, base)
        tool_limits = self.rate_limits.tools
        if not tool_limits:
            return base
        buckets = list(base)
        for call in calls:
            if call.kind != "tool" or not call.target:
                continue
            tool = call.target
            limit = tool_limits.get(tool)
            if limit is not None:
                buckets.append(Bucket(f"t:{_token_key(identity)}:tool:{tool}", limit, "tool"))
        return buckets

    def _identity_buckets(self, identity: Identity) -> list[Bucket]:
        limits = self.rate_limits
        token_key = _token_key(identity)
        buckets: list[Bucket] = []
        if limits.per_token is not None:
            buckets.append(Bucket(f"t:{token_key}", limits.per_token, "token"))
        if limits.per_client is not None:
            buckets.append(Bucket(f"c:{identity.client_id}", limits.per_client, "client"))
        if limits.per_subject is not None:
            buckets.append(Bucket(f"s:{identity.subject}", limits.per_subject, "subject"))
        return buckets

    def visible(self, identity: Identity, kind: Kind, target: str) -> bool:
        """Whether a list result should show this target to this caller (scopes only; the
        policy is asked at call time)."""
        required = self.rules.required(kind, target)
        return required is not None and required <= identity.scopes

    def emit(self, event: AuditEvent) -> None:
        self.audit.emit(event)

    def error_response(self, error: GuardError) -> tuple[int, dict[str, str], bytes]:
        headers = error.headers(self.resource_metadata_url, self.schemes)
        return error.status_code, headers, error.body()


def _token_key(identity: Identity) -> str:
    # A token is named by its jti; without one, by what identifies it best.
    return identity.jti or f"{identity.client_id}|{identity.subject}|{identity.issued_at}"
