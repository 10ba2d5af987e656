"""The small specification pieces, checked against the specifications' own examples."""

from __future__ import annotations

import httpx
import pytest

import mcpward.client
from mcpward.client import Pkce, code_challenge
from mcpward.client._authorization_code import authorization_url, check_response
from mcpward.client._challenge import parse_bearer
from mcpward.client._discovery import (
    ServerMetadata,
    authorization_server_metadata_urls,
    canonical_resource,
    resource_allowed,
    resource_metadata_urls,
)
from mcpward.client._loopback import LoopbackListener
from mcpward.client.errors import AuthorizationError, InvalidGrantError, SignInTimeout, token_error


def test_pkce_matches_rfc7636_appendix_b() -> None:
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert code_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_pkce_verifier_is_long_unreserved_and_hidden() -> None:
    pkce = Pkce()
    assert 43 <= len(pkce.verifier) <= 128
    assert set(pkce.verifier) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~"
    )
    assert pkce.verifier not in repr(pkce)
    assert Pkce().verifier != pkce.verifier


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        (['Bearer realm="x", error="invalid_token"'], {"realm": "x", "error": "invalid_token"}),
        (
            ['Basic realm="a", Bearer error="insufficient_scope", scope="a b"'],
            {"error": "insufficient_scope", "scope": "a b"},
        ),
        (
            ['Basic realm="a"', 'bearer resource_metadata="https://x/y"'],
            {"resource_metadata": "https://x/y"},
        ),
        (['Bearer error_description="say \\"hi\\", ok"'], {"error_description": 'say "hi", ok'}),
        (["Bearer"], {}),
    ],
)
def test_bearer_challenges_are_parsed(headers: list[str], expected: dict[str, str]) -> None:
    challenge = parse_bearer(headers)
    assert challenge is not None and challenge.params == expected


def test_no_bearer_challenge() -> None:
    assert parse_bearer(['Basic realm="a"']) is None
    assert parse_bearer([]) is None


def test_protected_resource_metadata_urls_header_first_then_path_then_root() -> None:
    challenge = parse_bearer(['Bearer resource_metadata="https://rs/meta"'])
    assert resource_metadata_urls("https://rs/tenant/mcp", challenge) == [
        "https://rs/meta",
        "https://rs/.well-known/oauth-protected-resource/tenant/mcp",
        "https://rs/.well-known/oauth-protected-resource",
    ]
    assert resource_metadata_urls("https://rs/", None) == [
        "https://rs/.well-known/oauth-protected-resource"
    ]


def test_authorization_server_metadata_urls_rfc8414_and_oidc_forms() -> None:
    assert authorization_server_metadata_urls("https://as/tenant1") == [
        "https://as/.well-known/oauth-authorization-server/tenant1",
        "https://as/.well-known/openid-configuration/tenant1",
        "https://as/tenant1/.well-known/openid-configuration",
    ]
    assert authorization_server_metadata_urls("https://as") == [
        "https://as/.well-known/oauth-authorization-server",
        "https://as/.well-known/openid-configuration",
    ]


def test_resource_checks() -> None:
    assert canonical_resource("HTTPS://MCP.Example.com/mcp#x") == "https://mcp.example.com/mcp"
    assert resource_allowed("https://rs/mcp", "https://rs/mcp")
    assert resource_allowed("https://rs/tenant/mcp", "https://rs/tenant")
    assert resource_allowed("https://rs/mcp", "https://rs/")
    assert not resource_allowed("https://rs/mcp", "https://evil.example.com/mcp")
    assert not resource_allowed("https://rs/mcpx", "https://rs/mcp")


def test_token_errors_map_to_one_class_per_code() -> None:
    assert isinstance(token_error("invalid_grant", "expired", 400), InvalidGrantError)
    other = token_error("slow_down", None, 400)
    assert other.error == "slow_down" and "slow_down" in str(other)


async def test_loopback_listener_hands_over_the_redirect() -> None:
    async with LoopbackListener() as listener:
        assert listener.redirect_uri.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient() as http:
            miss = await http.get(listener.redirect_uri.replace("/callback", "/favicon.ico"))
            hit = await http.get(listener.redirect_uri, params={"code": "c", "state": "s"})
        assert miss.status_code == 404
        assert hit.status_code == 200 and "Signed in" in hit.text
        assert await listener.wait(1) == {"code": "c", "state": "s"}


async def test_loopback_listener_times_out_clearly() -> None:
    async with LoopbackListener() as listener:
        with pytest.raises(SignInTimeout, match="no sign-in completed"):
            await listener.wait(0.05)


def _server(iss_supported: bool) -> ServerMetadata:
    return ServerMetadata(
        issuer="https://as",
        authorization_endpoint="https://as/authorize",
        token_endpoint="https://as/token",
        authorization_response_iss_parameter_supported=iss_supported,
    )


@pytest.mark.parametrize(
    ("result", "iss_supported", "reason"),
    [
        ({"code": "c", "state": "other"}, False, "state"),
        ({"code": "c", "state": "s"}, True, "iss"),
        ({"code": "c", "state": "s", "iss": "https://evil"}, False, "iss"),
        # SEP-2468: compared as strings, no normalisation of any kind.
        ({"code": "c", "state": "s", "iss": "https://as/"}, True, "iss"),
        ({"code": "c", "state": "s", "iss": "HTTPS://AS"}, True, "iss"),
        ({"code": "c", "state": "s", "iss": "https://as:443"}, True, "iss"),
        ({"error": "access_denied", "state": "s", "iss": "https://as"}, True, "access_denied"),
        ({"state": "s"}, False, "code"),
    ],
)
def test_authorization_response_checks(
    result: dict[str, str], iss_supported: bool, reason: str
) -> None:
    with pytest.raises(AuthorizationError) as raised:
        check_response(result, "s", _server(iss_supported))
    assert raised.value.error == reason
    assert "c" not in str(raised.value).split()


def test_public_surface_is_explicit() -> None:
    exported = {name for name in dir(mcpward.client) if not name.startswith("_")}
    assert set(mcpward.client.__all__) <= exported
    modules = {"errors"}
    assert exported - set(mcpward.client.__all__) <= modules
    assert sorted(mcpward.client.__all__) == mcpward.client.__all__


def test_authorization_response_with_matching_state_and_iss_yields_the_code() -> None:
    assert (
        check_response({"code": "c", "state": "s", "iss": "https://as"}, "s", _server(True)) == "c"
    )


def test_authorization_url_carries_pkce_state_and_resource() -> None:
    pkce = Pkce()
    url = httpx.URL(
        authorization_url(
            "https://as/authorize?tenant=1",
            client_id="app",
            redirect_uri="http://127.0.0.1:5000/callback",
            pkce=pkce,
            state="st",
            resource="https://rs/mcp",
            scopes=[],
        )
    )
    assert url.params["tenant"] == "1"
    assert url.params["code_challenge"] == pkce.challenge
    assert url.params["code_challenge_method"] == "S256"
    assert url.params["resource"] == "https://rs/mcp"
    assert "scope" not in url.params
    assert pkce.verifier not in str(url)


def test_dpop_challenges_and_the_one_carrying_the_error() -> None:
    """RFC 9449 §7.1: a resource names both schemes and the error on the one used."""
    only_dpop = parse_bearer(['DPoP algs="ES256", resource_metadata="https://rs/m"'])
    assert only_dpop is not None and only_dpop.resource_metadata == "https://rs/m"
    both = parse_bearer(
        [
            'Bearer resource_metadata="https://rs/m", DPoP error="insufficient_scope", '
            'scope="a b", algs="ES256 EdDSA", resource_metadata="https://rs/m"'
        ]
    )
    assert both is not None and both.error == "insufficient_scope" and both.scopes == ["a", "b"]
    plain = parse_bearer(['Bearer resource_metadata="https://rs/m", DPoP algs="ES256"'])
    assert plain is not None and plain.params == {"resource_metadata": "https://rs/m"}


def test_a_dpop_token_only_in_answer_to_a_proof() -> None:
    from mcpward.client._token_endpoint import parse_token_response
    from mcpward.client.errors import TokenEndpointError

    body = {"access_token": "t", "token_type": "DPoP", "expires_in": 60}
    assert parse_token_response(body, 0.0, dpop=True).token_type == "DPoP"
    with pytest.raises(TokenEndpointError):
        parse_token_response(body, 0.0)
    # A server may decline to bind (RFC 9449 §5): a bearer token after a proof is fine.
    bearer = {**body, "token_type": "bearer"}
    assert parse_token_response(bearer, 0.0, dpop=True).token_type == "Bearer"


def test_a_session_uses_dpop_only_with_an_algorithm_both_sides_have() -> None:
    from mcpward.client._dpop import dpop_for

    assert dpop_for(None) is None and dpop_for([]) is None
    assert dpop_for(["RS256"]) is None  # nothing we sign with
    assert dpop_for(["ES256"], enabled=False) is None
    ed = dpop_for(["RS256", "EdDSA"])
    assert ed is not None and ed.key.alg == "EdDSA"
    kept = dpop_for(["ES256"], ed.stored())  # a stored key wins: a bound refresh token
    assert kept is not None and kept.jkt == ed.jkt
