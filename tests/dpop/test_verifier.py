"""The DPoP proof verifier shared by the token endpoint and the guards (RFC 9449 §4.3),
against proofs made by joserfc (tests/dpop_proofs.py), the specifications' published
vectors, and our own client-side signer."""

from __future__ import annotations

import time
import warnings

import pytest
from joserfc import jws, jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import JWKRegistry

from mcpward._clock import FrozenClock
from mcpward.dpop import (
    NonceRequired,
    NonceSource,
    ProofAlgorithm,
    ProofKey,
    ProofRejected,
    ProofVerifier,
    access_token_hash,
    normalize_htu,
    thumbprint,
)
from tests.dpop_proofs import Prover, hmac_proof, unsigned

URL = "https://mcp.example.com/mcp"
TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"


def verify(verifier: ProofVerifier, proof: str, **kwargs: str) -> str:
    args = {"method": "POST", "url": URL, **kwargs}
    return verifier.verify([proof], method=args["method"], url=args["url"]).jkt


def rejected(verifier: ProofVerifier, values: list[str], **kwargs: object) -> str:
    with pytest.raises(ProofRejected) as info:
        verifier.verify(values, method="POST", url=URL, **kwargs)  # type: ignore[arg-type]
    return info.value.check


# -- published vectors ------------------------------------------------------------------


def test_rfc7638_thumbprint_example() -> None:
    """RFC 7638 §3.1: the RSA key of RFC 7517 Appendix A.1 and its thumbprint."""
    key = {
        "kty": "RSA",
        "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhD"
        "R1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4Qy"
        "Q5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD0"
        "8qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8"
        "awapJzKnqDKgw",
        "e": "AQAB",
        "alg": "RS256",
        "kid": "2011-04-29",
    }
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def test_rfc9449_examples_jkt_and_ath() -> None:
    """RFC 9449 §4.1/§6.1: the example proof key's jkt; §7.1: the example token's ath."""
    key = {
        "kty": "EC",
        "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
        "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        "crv": "P-256",
    }
    assert thumbprint(key) == "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
    token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"
    assert access_token_hash(token) == "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"


# -- what passes ------------------------------------------------------------------------


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA", "RS256", "PS256"])
def test_every_asymmetric_algorithm_verifies(alg: str) -> None:
    prover = Prover(alg)
    assert verify(ProofVerifier(), prover.proof(URL)) == prover.jkt


@pytest.mark.parametrize("alg", ["ES256", "ES384", "EdDSA"])
def test_our_signer_makes_proofs_joserfc_accepts(alg: ProofAlgorithm) -> None:
    key = ProofKey.generate(alg)
    restored = ProofKey.from_jwk(key.private_jwk())
    assert restored.jkt == key.jkt
    proof = restored.proof("post", URL + "?q=1#top", access_token=TOKEN)
    found = ProofVerifier().verify([proof], method="POST", url=URL, access_token=TOKEN)
    assert found.jkt == key.jkt
    # Independently: joserfc verifies it with the header's own jwk.
    header = jws.extract_compact(proof.encode()).protected
    assert header["typ"] == "dpop+jwt" and "d" not in header["jwk"]
    public = JWKRegistry.import_key(header["jwk"])
    assert public.thumbprint() == key.jkt
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # EdDSA, renamed by RFC 9864
        claims = jwt.decode(proof, public, algorithms=[alg]).claims
    assert claims["htm"] == "POST" and claims["htu"] == URL
    assert claims["ath"] == access_token_hash(TOKEN) and claims["jti"]


def test_htu_ignores_query_fragment_case_and_default_port() -> None:
    prover = Prover()
    verifier = ProofVerifier()
    for htu in (URL + "?x=1", URL + "#f", "HTTPS://MCP.Example.com:443/mcp"):
        assert verify(verifier, prover.proof(htu)) == prover.jkt
    assert normalize_htu("http://h:80") == ("http", "h", None, "/")
    assert normalize_htu("ftp://h/x") is None
    assert normalize_htu("https://user:pw@h/x") is None


def test_proof_record_expires_when_no_replica_could_accept_it() -> None:
    clock = FrozenClock(1_000_000.0)
    verifier = ProofVerifier(max_age=60, leeway=30, clock=clock)
    proof = verifier.verify([Prover().proof(URL, iat=clock())], method="POST", url=URL)
    assert proof.expires_at == clock() + 90
    assert proof.replay_key("rs").startswith(f"dpop:rs:{proof.jkt}:")


# -- RFC 9449 §4.3, one check at a time ----------------------------------------------


def test_the_negative_matrix() -> None:
    clock = FrozenClock(float(int(time.time())))  # whole seconds, like iat
    verifier = ProofVerifier(max_age=60, leeway=30, clock=clock)
    prover, other = Prover(), Prover()
    now = clock()
    cases: dict[str, tuple[list[str], str, dict[str, object]]] = {
        "no header": ([], "missing", {}),
        "two headers": ([prover.proof(URL), prover.proof(URL)], "multiple", {}),
        "not a JWS": (["not.a.jws!"], "malformed", {}),
        "alg none": ([unsigned(prover, URL)], "malformed", {}),
        "HMAC": ([hmac_proof(prover, URL)], "alg", {}),
        "typ JWT": ([prover.proof(URL, header={"typ": "JWT"})], "typ", {}),
        "no typ": ([prover.proof(URL, header={"typ": None})], "typ", {}),
        "crit": ([prover.proof(URL, header={"crit": ["x-test"], "x-test": "1"})], "crit", {}),
        "no jwk": ([prover.proof(URL, header={"jwk": None})], "jwk", {}),
        "private jwk": (
            [prover.proof(URL, header={"jwk": prover.key.as_dict(private=True)})],
            "jwk",
            {},
        ),
        "jwk of another key type": (
            [prover.proof(URL, header={"jwk": Prover("EdDSA").public_jwk})],
            "jwk",
            {},
        ),
        "signed by another key": ([prover.proof(URL, signer=other.key)], "signature", {}),
        "wrong htm": ([prover.proof(URL, "GET")], "htm", {}),
        "wrong htu": ([prover.proof("https://mcp.example.com/other")], "htu", {}),
        "other host": ([prover.proof("https://evil.example/mcp")], "htu", {}),
        "no jti": ([prover.proof(URL, omit=("jti",))], "jti", {}),
        "no iat": ([prover.proof(URL, omit=("iat",))], "iat", {}),
        "expired iat": ([prover.proof(URL, iat=now - 91)], "iat", {}),
        "future iat": ([prover.proof(URL, iat=now + 31)], "iat", {}),
        "no ath": ([prover.proof(URL)], "ath", {"access_token": TOKEN}),
        "wrong ath": (
            [prover.proof(URL, access_token=TOKEN + "x")],
            "ath",
            {"access_token": TOKEN},
        ),
    }
    for name, (values, check, kwargs) in cases.items():
        assert rejected(verifier, values, **kwargs) == check, name
    # The edges of the window pass.
    assert verify(verifier, prover.proof(URL, iat=now - 90)) == prover.jkt
    assert verify(verifier, prover.proof(URL, iat=now + 30)) == prover.jkt


def test_only_the_configured_algorithms() -> None:
    verifier = ProofVerifier(algorithms=["ES256"])
    assert rejected(verifier, [Prover("PS256").proof(URL)]) == "alg"
    with pytest.raises(ValueError, match="DPoP algorithms"):
        ProofVerifier(algorithms=["HS256"])
    with pytest.raises(ValueError, match="DPoP algorithms"):
        ProofVerifier(algorithms=["none"])


def test_small_rsa_keys_are_refused() -> None:
    from joserfc.jwk import RSAKey

    prover = Prover("RS256")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SecurityWarning)  # joserfc warns about 1024 bits too
        prover.key = RSAKey.generate_key(1024)
        prover.public_jwk = dict(prover.key.as_dict(private=False))
        proof = prover.proof(URL)
    assert rejected(ProofVerifier(), [proof]) == "jwk"


def test_a_cached_header_does_not_skip_the_signature() -> None:
    """The header's parse is cached once a proof with it verified; a forged proof reusing
    that header is still checked against its signature."""
    prover, other = Prover(), Prover()
    verifier = ProofVerifier()
    verify(verifier, prover.proof(URL))
    forged = prover.proof(URL, signer=other.key)
    assert rejected(verifier, [forged]) == "signature"


def test_errors_never_echo_the_proof() -> None:
    prover = Prover()
    for values in ([prover.proof(URL, "GET")], [prover.proof(URL, signer=Prover().key)]):
        with pytest.raises(ProofRejected) as info:
            ProofVerifier().verify(values, method="POST", url=URL)
        text = str(info.value) + repr(info.value.args)
        for part in values[0].split("."):
            assert part not in text


# -- nonces (§8, §9) ----------------------------------------------------------------------


def test_nonces_are_stateless_shared_and_expire_after_two_steps() -> None:
    clock = FrozenClock(1_000_020.0)
    secret = b"s" * 32
    one = NonceSource(secret, step=120, clock=clock)
    two = NonceSource(secret, step=120, clock=clock)  # another replica
    nonce = one.current()
    assert two.is_valid(nonce)
    assert not NonceSource(b"t" * 32, step=120, clock=clock).is_valid(nonce)
    clock.advance(120)
    assert two.is_valid(nonce) and two.current() != nonce
    clock.advance(120)
    assert not two.is_valid(nonce)


def test_a_verifier_requiring_nonces_says_which_to_use() -> None:
    clock = FrozenClock(time.time())
    nonces = NonceSource(b"k" * 32, step=120, clock=clock)
    verifier = ProofVerifier(nonces=nonces, require_nonce=True, clock=clock)
    prover = Prover()
    with pytest.raises(NonceRequired) as info:
        verifier.verify([prover.proof(URL, iat=clock())], method="POST", url=URL)
    nonce = info.value.nonce
    found = verifier.verify([prover.proof(URL, iat=clock(), nonce=nonce)], method="POST", url=URL)
    assert found.nonce == nonce
    with pytest.raises(NonceRequired):
        verifier.verify([prover.proof(URL, iat=clock(), nonce="stale")], method="POST", url=URL)
    with pytest.raises(ValueError, match="NonceSource"):
        ProofVerifier(require_nonce=True)
