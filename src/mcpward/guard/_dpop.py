"""DPoP at a protected resource (RFC 9449 §7): the proof that comes with a DPoP-bound
access token, checked against this very request and that token.

The proof's ``htu`` is compared with the guard's public resource URL (its scheme, host
and port) and the request's path: a ``Host`` header, which a client or a proxy can set
to anything, is never trusted. Its ``ath`` must be the token's hash, and its key the one
the token's ``cnf.jkt`` names. Whether its ``jti`` was used before is asked by the guard,
in the same round trip as the revocation and rate-limit checks where the backend can.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from mcpward.dpop import NonceRequired, Proof, ProofRejected, ProofVerifier
from mcpward.guard._challenge import Schemes
from mcpward.guard._errors import InvalidDPoPProof, UseDPoPNonce
from mcpward.guard._identity import Identity

__all__ = ["ResourceProofs"]


class ResourceProofs:
    """How one resource checks DPoP proofs: ``verifier``'s policy (algorithms, age,
    nonces) for requests to ``resource``; ``required``: Bearer tokens are refused."""

    def __init__(self, verifier: ProofVerifier, *, resource: str, required: bool = False) -> None:
        self.verifier = verifier
        self.required = required
        parts = urlsplit(resource)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._resource_path = parts.path or "/"
        self.schemes = Schemes(bearer=not required, dpop_algs=verifier.algorithms)

    def check(
        self,
        values: Sequence[bytes],
        *,
        method: str,
        path: str | None,
        token: str,
        identity: Identity,
    ) -> Proof:
        """The verified proof of a request presenting ``token`` (verified as ``identity``)
        with the DPoP scheme. Raises ``InvalidDPoPProof`` or ``UseDPoPNonce``."""
        try:
            proofs = [v.decode("ascii") for v in values]
        except UnicodeDecodeError:
            raise InvalidDPoPProof("the DPoP proof is not a compact JWS", "malformed") from None
        url = self._origin + (path or self._resource_path)
        try:
            proof = self.verifier.verify(proofs, method=method, url=url, access_token=token)
        except NonceRequired as exc:
            raise UseDPoPNonce(exc.description, exc.nonce) from None
        except ProofRejected as exc:
            raise InvalidDPoPProof(exc.description, exc.check) from None
        if proof.jkt != identity.jkt:
            raise InvalidDPoPProof(
                "the DPoP proof is signed by another key than the token's", "key"
            )
        return proof
