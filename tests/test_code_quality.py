"""The gates that keep the codebase honest run with the tests: ruff (lint and format) and
mypy in strict mode over the code, the tests, the benchmarks and the shipped plugins."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PATHS = ["src", "tests", "bench", "security"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_ruff_lint() -> None:
    proc = run("ruff", "check", *PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_ruff_format() -> None:
    proc = run("ruff", "format", "--check", *PATHS)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_mypy_strict() -> None:
    proc = run("mypy")
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "module", ["mcpward.server", "mcpward.guard", "mcpward.client", "mcpward.revocation"]
)
def test_public_surface_is_explicit(module: str) -> None:
    """Each role's public module names what it exports, and everything named exists."""
    mod = importlib.import_module(module)
    exported = mod.__all__  # ruff's RUF022 keeps it sorted
    assert exported
    assert all(not name.startswith("_") for name in exported)
    missing = [name for name in exported if not hasattr(mod, name)]
    assert missing == []
