"""DPoP, sender-constrained tokens (RFC 9449), shared by the authorization server, the
guards and the client library.

- :class:`ProofVerifier` checks a proof (§4.3); the caller spends its ``jti`` in the
  shared-state ``ReplayCache`` and compares its key with the token's ``cnf.jkt``.
- :class:`NonceSource` hands out and checks stateless server nonces (§8, §9).
- :class:`ProofKey` is a client's key: one fresh proof per request.
- :func:`thumbprint` is the JWK SHA-256 thumbprint (RFC 7638) ``cnf.jkt`` holds.
"""

from __future__ import annotations

from mcpward.dpop._jwk import ALGORITHMS as ALGORITHMS
from mcpward.dpop._jwk import thumbprint as thumbprint
from mcpward.dpop._nonce import NonceSource as NonceSource
from mcpward.dpop._proof import MAX_PROOF_LENGTH as MAX_PROOF_LENGTH
from mcpward.dpop._proof import NonceRequired as NonceRequired
from mcpward.dpop._proof import Proof as Proof
from mcpward.dpop._proof import ProofRejected as ProofRejected
from mcpward.dpop._proof import ProofVerifier as ProofVerifier
from mcpward.dpop._proof import access_token_hash as access_token_hash
from mcpward.dpop._proof import normalize_htu as normalize_htu
from mcpward.dpop._signer import ProofAlgorithm as ProofAlgorithm
from mcpward.dpop._signer import ProofKey as ProofKey
from mcpward.dpop._signer import htu_of as htu_of

__all__ = [
    "ALGORITHMS",
    "MAX_PROOF_LENGTH",
    "NonceRequired",
    "NonceSource",
    "Proof",
    "ProofAlgorithm",
    "ProofKey",
    "ProofRejected",
    "ProofVerifier",
    "access_token_hash",
    "htu_of",
    "normalize_htu",
    "thumbprint",
]
