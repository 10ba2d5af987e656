from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mcpward._clock import FrozenClock
from tests.pages.support import WEB_REDIRECT, Site, start_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with start_site(tmp_path, clock=FrozenClock()) as s:
        await s.add_user()
        await s.add_client()
        await s.add_client(
            "web",
            name="Orders Web",
            redirect_uris=(WEB_REDIRECT,),
            application_type="web",
            source="dcr",
        )
        yield s
