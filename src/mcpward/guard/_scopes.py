"""Which scopes each tool, resource and prompt needs."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from mcpward.guard._jsonrpc import Kind
from mcpward.guard._lists import LIST_VISIBILITIES, ListVisibility
from mcpward.guard._manifest import Manifest


class ScopeRules:
    """Required scopes per target. Resource URIs may be glob patterns
    (``orders://*``); exact entries win over patterns.

    A target the manifest does not declare is denied, unless ``default_scopes`` is set
    (then it needs those; ``frozenset()`` means any valid token).

    ``list_visibility`` says how ``*/list`` results show entries (``_lists.py``): given
    here, else the manifest's ``list_visibility``, else ``annotate``."""

    def __init__(
        self,
        manifest: Manifest,
        default_scopes: Iterable[str] | None = None,
        list_visibility: ListVisibility | None = None,
    ) -> None:
        self.manifest = manifest
        self.default = frozenset(default_scopes) if default_scopes is not None else None
        visibility = list_visibility or manifest.list_visibility or "annotate"
        if visibility not in LIST_VISIBILITIES:
            raise ValueError("list_visibility must be 'annotate' or 'filter'")
        self.list_visibility: ListVisibility = visibility
        self._tables = {
            "tool": manifest.tools,
            "resource": manifest.resources,
            "prompt": manifest.prompts,
        }
        self._patterns = [
            (pattern, scopes)
            for pattern, scopes in manifest.resources.items()
            if any(ch in pattern for ch in "*?[")
        ]

    def required(self, kind: Kind, target: str) -> frozenset[str] | None:
        found = self._tables[kind].get(target)
        if found is not None:
            return found
        if kind == "resource":
            for pattern, scopes in self._patterns:
                if fnmatch.fnmatchcase(target, pattern):
                    return scopes
        return self.default

    def supported(self) -> tuple[str, ...]:
        found = set(self.manifest.scopes_supported())
        if self.default:
            found |= self.default
        return tuple(sorted(found))
