"""The tool manifest, in the source document's format, from JSON, YAML or TOML.

::

    {"name": "orders",
     "oauth": {"authorization_url": ..., "token_url": ..., "scopes": [...], "client_id": ...},
     "tools": [{"name": "search_orders", "scopes_required": ["orders.read"]}],
     "resources": [{"uri": "orders://recent", "scopes_required": ["orders.read"]}],
     "prompts": [{"name": "triage", "scopes_required": ["orders.read"]}]}

``resources`` and ``prompts`` are mcpward extensions in the same shape, and so is
``"list_visibility": "annotate" | "filter"``: how ``*/list`` results show entries the
token cannot use yet (``_lists.py``; absent means the guard's choice, ``annotate`` unless
told otherwise).
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from mcpward.guard._lists import LIST_VISIBILITIES, ListVisibility


class ManifestError(ValueError):
    """The manifest is malformed; the message says where."""


@dataclass(frozen=True, slots=True)
class OAuthBlock:
    authorization_url: str
    token_url: str
    scopes: tuple[str, ...]
    client_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "authorization_url": self.authorization_url,
            "token_url": self.token_url,
            "scopes": list(self.scopes),
        }
        if self.client_id:
            out["client_id"] = self.client_id
        return out


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    tools: Mapping[str, frozenset[str]] = field(default_factory=dict)
    resources: Mapping[str, frozenset[str]] = field(default_factory=dict)
    prompts: Mapping[str, frozenset[str]] = field(default_factory=dict)
    oauth: OAuthBlock | None = None
    descriptions: Mapping[str, str] = field(default_factory=dict)
    list_visibility: ListVisibility | None = None

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        path = Path(path)
        text = path.read_text(encoding="utf-8")
        suffix = path.suffix.lower()
        try:
            if suffix == ".json":
                data: Any = json.loads(text)
            elif suffix in (".yaml", ".yml"):
                data = yaml.safe_load(text)
            elif suffix == ".toml":
                data = tomllib.loads(text)
            else:
                raise ManifestError(f"{path}: use a .json, .yaml, .yml or .toml file")
        except (ValueError, yaml.YAMLError) as exc:
            raise ManifestError(f"{path}: cannot parse: {exc}") from exc
        return cls.from_dict(data, source=str(path))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "manifest") -> Manifest:
        if not isinstance(data, Mapping):
            raise ManifestError(f"{source}: the manifest must be an object")
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ManifestError(f"{source}: 'name' must be a non-empty string")
        descriptions: dict[str, str] = {}
        tools = _entries(data.get("tools", []), "name", f"{source}: tools", descriptions)
        resources = _entries(data.get("resources", []), "uri", f"{source}: resources", {})
        prompts = _entries(data.get("prompts", []), "name", f"{source}: prompts", {})
        oauth = None
        if data.get("oauth") is not None:
            o = data["oauth"]
            if not isinstance(o, Mapping):
                raise ManifestError(f"{source}: 'oauth' must be an object")
            try:
                oauth = OAuthBlock(
                    authorization_url=str(o["authorization_url"]),
                    token_url=str(o["token_url"]),
                    scopes=tuple(_scopes(o.get("scopes", []), f"{source}: oauth.scopes")),
                    client_id=str(o["client_id"]) if o.get("client_id") else None,
                )
            except KeyError as exc:
                raise ManifestError(f"{source}: oauth.{exc.args[0]} is required") from exc
        visibility = data.get("list_visibility")
        if visibility is not None and visibility not in LIST_VISIBILITIES:
            raise ManifestError(f"{source}: 'list_visibility' must be 'annotate' or 'filter'")
        return cls(name, tools, resources, prompts, oauth, descriptions, visibility)

    def scopes_supported(self) -> tuple[str, ...]:
        found: set[str] = set()
        for table in (self.tools, self.resources, self.prompts):
            for scopes in table.values():
                found |= scopes
        if self.oauth:
            found |= set(self.oauth.scopes)
        return tuple(sorted(found))

    def with_oauth(self, oauth: OAuthBlock) -> Manifest:
        return replace(self, oauth=oauth)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.oauth:
            out["oauth"] = self.oauth.to_dict()
        out["tools"] = [
            {"name": n, "scopes_required": sorted(s)} for n, s in sorted(self.tools.items())
        ]
        if self.resources:
            out["resources"] = [
                {"uri": u, "scopes_required": sorted(s)} for u, s in sorted(self.resources.items())
            ]
        if self.prompts:
            out["prompts"] = [
                {"name": n, "scopes_required": sorted(s)} for n, s in sorted(self.prompts.items())
            ]
        if self.list_visibility is not None:
            out["list_visibility"] = self.list_visibility
        return out


def _scopes(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not all(
        isinstance(s, str) and s and " " not in s for s in value
    ):
        raise ManifestError(f"{where} must be a list of scope strings without spaces")
    return list(value)


def _entries(
    value: Any, key: str, where: str, descriptions: dict[str, str]
) -> dict[str, frozenset[str]]:
    if not isinstance(value, list):
        raise ManifestError(f"{where} must be a list")
    out: dict[str, frozenset[str]] = {}
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping) or not isinstance(entry.get(key), str):
            raise ManifestError(f"{where}[{i}] needs a string '{key}'")
        if entry[key] in out:
            raise ManifestError(f"{where}[{i}]: {entry[key]!r} is listed twice")
        out[entry[key]] = frozenset(
            _scopes(entry.get("scopes_required", []), f"{where}[{i}].scopes_required")
        )
        if isinstance(entry.get("description"), str):
            descriptions[entry[key]] = entry["description"]
    return out


def manifest_from_code(
    name: str,
    tools: Mapping[str, Iterable[str]],
    resources: Mapping[str, Iterable[str]] | None = None,
    prompts: Mapping[str, Iterable[str]] | None = None,
) -> Manifest:
    return Manifest(
        name,
        {k: frozenset(v) for k, v in tools.items()},
        {k: frozenset(v) for k, v in (resources or {}).items()},
        {k: frozenset(v) for k, v in (prompts or {}).items()},
    )
