"""Fixtures for the guard tests. Real PostgreSQL and Redis come from tests/conftest.py."""

from __future__ import annotations

import pytest

from .support import Minter


@pytest.fixture
def minter() -> Minter:
    return Minter()


# The testing kit's fixture, as a server author gets it with
# ``pytest_plugins = ["mcpward.testing"]`` in their root conftest.
from mcpward.testing import mcpward_authority as mcpward_authority  # noqa: E402
