"""Per-tool scopes beyond the basics: manifests in JSON, YAML and TOML, batches checked item
by item, resources and prompts, undeclared tools, defaults, and the public surface."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from mcpward.guard import (
    Manifest,
    ManifestError,
    StaticKeys,
    make_guard,
    manifest_from_code,
    protect,
)

from .support import ISSUER, RESOURCE, Minter

SOURCE_EXAMPLE = {
    "name": "orders",
    "tools": [
        {"name": "search_orders", "scopes_required": ["orders.read"]},
        {"name": "refund_order", "scopes_required": ["orders.write", "refund.admin"]},
    ],
    "resources": [{"uri": "orders://*", "scopes_required": ["orders.read"]}],
    "prompts": [{"name": "triage", "scopes_required": ["orders.write"]}],
}


def test_manifest_formats_agree(tmp_path: Path) -> None:
    import yaml

    (tmp_path / "m.json").write_text(json.dumps(SOURCE_EXAMPLE))
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(SOURCE_EXAMPLE))
    (tmp_path / "m.toml").write_text(
        'name = "orders"\n'
        '[[tools]]\nname = "search_orders"\nscopes_required = ["orders.read"]\n'
        '[[tools]]\nname = "refund_order"\nscopes_required = ["orders.write", "refund.admin"]\n'
        '[[resources]]\nuri = "orders://*"\nscopes_required = ["orders.read"]\n'
        '[[prompts]]\nname = "triage"\nscopes_required = ["orders.write"]\n'
    )
    loaded = [Manifest.load(tmp_path / f"m.{ext}") for ext in ("json", "yaml", "toml")]
    assert loaded[0] == loaded[1] == loaded[2]
    assert loaded[0].tools["refund_order"] == {"orders.write", "refund.admin"}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be an object"),
        ({"tools": []}, "'name'"),
        ({"name": "x", "tools": {}}, "tools must be a list"),
        (
            {"name": "x", "tools": [{"name": "a", "scopes_required": "orders.read"}]},
            "list of scope",
        ),
        ({"name": "x", "tools": [{"name": "a"}, {"name": "a"}]}, "listed twice"),
        ({"name": "x", "oauth": {"token_url": "t"}}, "oauth.authorization_url is required"),
    ],
)
def test_bad_manifests_say_what_is_wrong(data: Any, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        Manifest.from_dict(data)


def test_unparseable_manifest(tmp_path: Path) -> None:
    (tmp_path / "m.yaml").write_text("name: [unclosed")
    with pytest.raises(ManifestError, match="cannot parse"):
        Manifest.load(tmp_path / "m.yaml")
    (tmp_path / "m.ini").write_text("")
    with pytest.raises(ManifestError, match=r"\.json, \.yaml"):
        Manifest.load(tmp_path / "m.ini")


async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers every JSON-RPC request with an empty result (and lists of everything),
    standing in for the MCP server behind the guard."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    items: Any = json.loads(body) if body else []
    batch = isinstance(items, list)
    out = []
    for item in items if batch else [items]:
        result: dict[str, Any] = {}
        if item.get("method") == "resources/list":
            result = {"resources": [{"uri": "orders://recent"}, {"uri": "secrets://x"}]}
        if item.get("method") == "prompts/list":
            result = {"prompts": [{"name": "triage"}, {"name": "other"}]}
        out.append({"jsonrpc": "2.0", "id": item.get("id"), "result": result})
    payload = json.dumps(out if batch else out[0]).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def http_for(
    minter: Minter, default_scopes: list[str] | None = None, list_visibility: Any = None
) -> httpx.AsyncClient:
    guard = make_guard(
        issuer=ISSUER,
        resource=RESOURCE,
        manifest=Manifest.from_dict(SOURCE_EXAMPLE),
        keys=StaticKeys(minter.jwks()),
        default_scopes=default_scopes,
        list_visibility=list_visibility,
    )
    transport = httpx.ASGITransport(app=protect(echo_app, guard))
    return httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1")


def req(i: int, method: str, **params: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": i, "method": method, "params": params}


async def post(http: httpx.AsyncClient, token: str, body: Any) -> httpx.Response:
    return await http.post("/mcp", json=body, headers={"authorization": f"Bearer {token}"})


async def test_batch_is_checked_item_by_item(minter: Minter) -> None:
    async with http_for(minter) as http:
        token = minter.mint("orders.read")
        ok = [req(1, "tools/call", name="search_orders"), req(2, "ping")]
        assert (await post(http, token, ok)).status_code == 200
        mixed = [
            req(1, "tools/call", name="search_orders"),
            req(2, "tools/call", name="refund_order"),
        ]
        r = await post(http, token, mixed)
    assert r.status_code == 403
    assert 'scope="orders.read orders.write refund.admin"' in r.headers["www-authenticate"]


async def test_resources_and_prompts_carry_scopes(minter: Minter) -> None:
    async with http_for(minter) as http:
        reader = minter.mint("orders.read")
        assert (
            await post(http, reader, req(1, "resources/read", uri="orders://recent"))
        ).status_code == 200
        assert (
            await post(http, reader, req(1, "resources/read", uri="secrets://x"))
        ).status_code == 403
        assert (await post(http, reader, req(1, "prompts/get", name="triage"))).status_code == 403
        listed = (await post(http, reader, req(1, "resources/list"))).json()
        prompts = (await post(http, reader, req(1, "prompts/list"))).json()
    # Annotated (the default): undeclared entries left out, the others with their scopes.
    assert listed["result"]["resources"] == [
        {
            "uri": "orders://recent",
            "_meta": {"io.mcpward/scopes": {"required": ["orders.read"], "granted": True}},
        }
    ]
    assert prompts["result"]["prompts"] == [
        {
            "name": "triage",
            "_meta": {"io.mcpward/scopes": {"required": ["orders.write"], "granted": False}},
        }
    ]
    async with http_for(minter, list_visibility="filter") as http:
        listed = (await post(http, reader, req(1, "resources/list"))).json()
        prompts = (await post(http, reader, req(1, "prompts/list"))).json()
        both = (await post(http, reader, [req(1, "resources/list"), req(2, "prompts/list")])).json()
    assert listed["result"]["resources"] == [{"uri": "orders://recent"}]
    assert prompts["result"]["prompts"] == []
    assert [m["result"] for m in both] == [
        {"resources": [{"uri": "orders://recent"}]},
        {"prompts": []},
    ]


async def test_undeclared_tool_is_denied_unless_a_default_is_set(minter: Minter) -> None:
    token = minter.mint("orders.read")
    async with http_for(minter) as http:
        r = await post(http, token, req(1, "tools/call", name="delete_everything"))
    assert r.status_code == 403
    assert "www-authenticate" not in r.headers  # no scope would help
    async with http_for(minter, default_scopes=["orders.read"]) as http:
        assert (await post(http, token, req(1, "tools/call", name="new_tool"))).status_code == 200


async def test_step_up_accumulates_held_scopes(minter: Minter) -> None:
    """MCP 2026-07-28: the challenge's scope is what the call needs plus what the token
    already has, so re-authorizing does not lose access to other tools."""
    async with http_for(minter) as http:
        token = minter.mint("orders.read profile")
        r = await post(http, token, req(1, "tools/call", name="refund_order"))
    challenge = r.headers["www-authenticate"]
    assert 'scope="orders.read orders.write profile refund.admin"' in challenge


async def test_bad_json_rpc_is_400_not_500(minter: Minter) -> None:
    async with http_for(minter) as http:
        token = minter.mint("orders.read")
        for body in ([], [1], {"method": 5}, {"method": "tools/call", "params": {"name": 1}}):
            assert (await post(http, token, body)).status_code == 400
        r = await http.post(
            "/mcp", content=b"x" * (5 * 1024 * 1024), headers={"authorization": f"Bearer {token}"}
        )
        assert r.status_code == 400


async def test_prm_served_at_both_well_known_paths(minter: Minter) -> None:
    async with http_for(minter) as http:
        a = await http.get("/.well-known/oauth-protected-resource/mcp")
        b = await http.get("/.well-known/oauth-protected-resource")
    assert a.json() == b.json()
    assert a.headers["access-control-allow-origin"] == "*"


def test_prm_never_lists_offline_access() -> None:
    """offline_access is a request to the authorization server for a refresh token, not a
    permission of the resource: even a manifest that names it keeps it out of the PRM, so
    clients that ask for every scope_supported do not ask for it on the resource's behalf."""
    manifest = manifest_from_code(
        "t", {"search_orders": ["orders.read"], "sync": ["orders.read", "offline_access"]}
    )
    guard = make_guard(issuer=ISSUER, resource=RESOURCE, manifest=manifest)
    assert guard.metadata.document()["scopes_supported"] == ["orders.read"]
