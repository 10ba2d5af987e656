"""The one function that builds every WWW-Authenticate header (RFC 6750 §3, RFC 9728 §5.1)."""

from __future__ import annotations

from mcpward.guard import www_authenticate

PRM = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp"


def test_no_token_presented_means_no_error() -> None:
    assert www_authenticate(resource_metadata=PRM) == f'Bearer resource_metadata="{PRM}"'


def test_insufficient_scope_lists_scopes_sorted_once() -> None:
    header = www_authenticate(
        resource_metadata=PRM,
        error="insufficient_scope",
        description="needs more",
        scope=["refund.admin", "orders.read", "orders.read"],
    )
    assert header == (
        'Bearer error="insufficient_scope", error_description="needs more", '
        f'scope="orders.read refund.admin", resource_metadata="{PRM}"'
    )


def test_values_are_escaped_and_cannot_split_the_header() -> None:
    header = www_authenticate(
        resource_metadata=PRM, error="invalid_token", description='a "quoted" \\ x\r\nX-Evil: 1'
    )
    assert "\r" not in header and "\n" not in header
    assert 'error_description="a \\"quoted\\" \\\\ xX-Evil: 1"' in header


def test_bare_challenge() -> None:
    assert www_authenticate(resource_metadata=None) == "Bearer"
