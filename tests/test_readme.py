"""What README.md shows a new user works as shown."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from mcpward.config import load_settings

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_example_configuration_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The first TOML block is the configuration example; later ones show single settings
    # or sections (tests/enterprise/test_operator.py loads the enterprise ones).
    example = re.findall(r"```toml\n(.*?)```", README, flags=re.S)[0]
    config = tmp_path / "mcpward.toml"
    config.write_text(example)
    monkeypatch.setenv("MCPWARD_CONFIG", str(config))
    settings = load_settings()
    assert settings.issuer == "https://auth.example.com"
    assert settings.trusted_proxies == ["10.0.0.5"]
    assert settings.lifetimes.access_token == 900


def test_the_two_commands_come_first() -> None:
    first_block = re.search(r"```sh\n(.*?)```", README, flags=re.S)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines()]
    assert commands == ["make run", "make test"]
