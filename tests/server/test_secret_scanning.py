"""The shipped secret-scanner rules find real mcpward credentials.

detect-secrets runs for real with the shipped plugin. gitleaks itself is a Go binary that
no package registry reachable here provides, so its rule is checked by compiling the
shipped regexes (RE2-compatible syntax) with Python's ``re``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from mcpward._secrets import new_credential

ROOT = Path(__file__).resolve().parents[2]


def test_detect_secrets_plugin_finds_real_credentials_only(tmp_path: Path) -> None:
    secret = new_credential("cs")
    refresh = new_credential("rt")
    look_alike = "mcpw_cs_" + "x" * 49
    broken = secret[:-1] + ("A" if secret[-1] != "A" else "B")
    leaked = tmp_path / "settings.py"
    leaked.write_text(
        f'CLIENT_SECRET = "{secret}"\nREFRESH = "{refresh}"\n'
        f'EXAMPLE = "{look_alike}"\nTYPO = "{broken}"\n'
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "detect_secrets",
            "scan",
            "--disable-plugin",
            "HexHighEntropyString",
            "--disable-plugin",
            "Base64HighEntropyString",
            "--disable-plugin",
            "KeywordDetector",
            "--plugin",
            str(ROOT / "security" / "detect_secrets_mcpward.py"),
            str(leaked),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=True,
    )
    found = [
        r
        for results in json.loads(proc.stdout)["results"].values()
        for r in results
        if r["type"] == "mcpward credential"
    ]
    assert sorted(r["line_number"] for r in found) == [1, 2]


def test_gitleaks_rules_match_every_credential_kind() -> None:
    config = tomllib.loads((ROOT / "security" / "gitleaks.toml").read_text())
    rules = {rule["id"]: re.compile(rule["regex"]) for rule in config["rules"]}
    for rule_id, kind in (
        ("mcpward-client-secret", "cs"),
        ("mcpward-refresh-token", "rt"),
        ("mcpward-authorization-code", "ac"),
    ):
        credential = new_credential(kind)  # type: ignore[arg-type]
        match = rules[rule_id].search(f"token={credential}\n")
        assert match is not None and match.group(1) == credential
        assert rules[rule_id].search(credential[:-1]) is None
