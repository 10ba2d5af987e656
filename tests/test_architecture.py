"""The architecture, checked: which package may import which (no cycles), what importing
a role loads, no collaborator wired in after construction, and small modules."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "mcpward"

# What each package may import from mcpward (module-level and function-level imports
# alike: a function-local import does not make a dependency go away). The modules at the
# top (errors, _clock, _secrets, _asgi, _outage, config and the two modules it is made of,
# _config_federation and _hosts) are shared vocabulary.
SHARED = {
    "errors",
    "_clock",
    "_secrets",
    "_asgi",
    "_outage",
    "config",
    "_config_federation",
    "_hosts",
}
ALLOWED: dict[str, set[str]] = {
    "storage": set(),
    "audit": set(),
    # DPoP proofs (RFC 9449): checked by server and guards, made by the client.
    "dpop": set(),
    "_secret_stores": set(),  # boto3 and hvac adapters: server sinks and client stores
    "revocation": {"storage"},
    "state": {"revocation", "storage"},
    "server": {"storage", "revocation", "state", "audit", "dpop", "_secret_stores"},
    "guard": {"revocation", "state", "audit", "storage", "dpop"},
    "client": {"audit", "dpop", "_secret_stores"},
    "compose": {"server", "storage", "revocation", "state", "audit", "guard", "demo", "dpop"},
    "demo": {"guard", "server", "storage", "revocation", "state", "audit"},
    "testing": {"compose", "server", "guard", "storage", "revocation", "state", "audit"},
    "cli": {"compose", "server", "guard", "client", "storage", "revocation", "state", "audit"}
    | {"demo", "dpop", "_secret_stores"},
    "__main__": {"cli"},
}
MAX_LINES = 400


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _imports() -> dict[tuple[str, str], list[str]]:
    """(from package, to package) -> the files with such an import."""
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for path in SRC.rglob("*.py"):
        module = ".".join(path.relative_to(SRC.parent).with_suffix("").parts)
        source = _package(module.removesuffix(".__init__"))
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("mcpward.") and _package(name) != source:
                    found[(source, _package(name))].append(str(path.relative_to(SRC)))
    return found


def test_packages_import_only_what_the_layering_allows() -> None:
    wrong = {
        (src, dst): files
        for (src, dst), files in _imports().items()
        if dst not in SHARED and src not in SHARED and dst not in ALLOWED.get(src, set())
    }
    assert wrong == {}


def test_no_import_cycle_between_packages() -> None:
    graph: dict[str, set[str]] = defaultdict(set)
    for src, dst in _imports():
        if src and dst:
            graph[src].add(dst)

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for nxt in graph[start]:
            if nxt == goal or (nxt not in seen and reaches(nxt, goal, seen | {nxt})):
                return True
        return False

    assert [p for p in list(graph) if reaches(p, p, {p})] == []


def test_no_collaborator_is_wired_in_after_construction() -> None:
    """Objects get their collaborators in their constructor (the composition root passes
    them); no code assigns an attribute of another object. The exceptions set a DB-API
    connection option and fill an exception's fields."""
    allowed = {("storage/database.py", "dbapi_connection.isolation_level")}
    assigned = set()
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Assign):
                targets = node.targets
            elif isinstance(node, ast.AugAssign | ast.AnnAssign):
                targets = [node.target]
            else:
                continue
            for target in targets:
                if not isinstance(target, ast.Attribute):
                    continue
                base = target.value
                while isinstance(base, ast.Attribute):
                    base = base.value
                if not (isinstance(base, ast.Name) and base.id in ("self", "cls", "exc")):
                    assigned.add((str(path.relative_to(SRC)), ast.unparse(target)))
    assert assigned - allowed == set()


def _loaded_by(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_the_server_loads_no_mcp_sdk() -> None:
    loaded = _loaded_by("import mcpward.server, mcpward.compose.server")
    assert {m for m in loaded if m == "mcp" or m.startswith("mcp.")} == set()
    assert "mcpward.guard" not in loaded


def test_the_command_line_starts_light() -> None:
    """`mcpward --help` loads neither the mcp SDK, nor the storage layer, nor the
    server's pages: each command imports what it needs when it runs."""
    loaded = _loaded_by(
        "from mcpward.cli import main\n"
        "try:\n    main(['--help'], standalone_mode=False)\nexcept SystemExit:\n    pass"
    )
    heavy = {"mcp", "sqlalchemy", "mcpward.server", "mcpward.guard", "jinja2", "argon2"}
    assert heavy & loaded == set()


@pytest.mark.parametrize("path", sorted(SRC.rglob("*.py")), ids=lambda p: str(p.relative_to(SRC)))
def test_modules_stay_small(path: Path) -> None:
    assert len(path.read_text().splitlines()) <= MAX_LINES
