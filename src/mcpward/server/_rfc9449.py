"""DPoP at the token endpoint (RFC 9449 §5, §8): the proof of a token request, checked
once per request before the grant runs.

The proof must be for ``POST`` to this server's token endpoint as the issuer names it (a
request's Host header is never trusted for ``htu``), and its ``jti`` is spent in the
shared-state replay cache, so a proof replayed to another replica is refused too; when
that cache cannot answer, the request fails closed (503). With ``require_nonce`` a proof
must carry a current server nonce; nonces are stateless and the same on every replica.
"""

from __future__ import annotations

from collections.abc import Sequence

from mcpward.dpop import NonceRequired, Proof, ProofRejected, ProofVerifier
from mcpward.server.errors import InvalidDPoPProof, UseDPoPNonce
from mcpward.state import ReplayCache

__all__ = ["TokenEndpointProofs"]


class TokenEndpointProofs:
    def __init__(self, verifier: ProofVerifier | None, replay: ReplayCache, token_url: str) -> None:
        # None: DPoP is off; proofs are ignored and tokens are bearer tokens (§5).
        self.verifier = verifier
        self.replay = replay
        self.token_url = token_url

    @property
    def algorithms(self) -> tuple[str, ...]:
        """``dpop_signing_alg_values_supported`` (empty when DPoP is off)."""
        return self.verifier.algorithms if self.verifier is not None else ()

    async def check(self, values: Sequence[str]) -> Proof | None:
        """The verified proof of a token request whose ``DPoP`` headers are ``values``
        (None without any). Raises ``InvalidDPoPProof`` or ``UseDPoPNonce``."""
        verifier = self.verifier
        if not values or verifier is None:
            return None
        try:
            proof = verifier.verify(values, method="POST", url=self.token_url)
        except NonceRequired as exc:
            raise UseDPoPNonce(exc.description, nonce=exc.nonce) from None
        except ProofRejected as exc:
            raise InvalidDPoPProof(exc.description, check=exc.check) from None
        # StateUnavailable propagates: the endpoint answers 503, never an unchecked proof.
        if not await self.replay.first_use(proof.replay_key("as"), proof.expires_at):
            raise InvalidDPoPProof("the DPoP proof was already used", check="replayed")
        return proof

    def response_headers(self, proof: Proof | None) -> dict[str, str]:
        """A fresh ``DPoP-Nonce`` for the client's next request (§8.2), when nonces are
        in use and the proof did not already carry the current one."""
        nonces = self.verifier.nonces if self.verifier is not None else None
        if proof is None or nonces is None:
            return {}
        current = nonces.current()
        return {} if proof.nonce == current else {"DPoP-Nonce": current}
