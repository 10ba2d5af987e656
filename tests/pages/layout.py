"""Layout checks made in the browser: the page fits the window across, what is in view,
and the order in which Tab visits the controls (which must be the reading order)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from playwright.async_api import Locator, Page, ViewportSize

# A phone (iPhone 12 to 15 class) and a common laptop window.
SIZES: dict[str, ViewportSize] = {
    "phone-390x844": ViewportSize(width=390, height=844),
    "desktop-1280x800": ViewportSize(width=1280, height=800),
}
# The narrowest window that still shows the account page as a table (68rem and up).
NARROW_TABLE = {"laptop-1100x800": ViewportSize(width=1100, height=800)}

_FITS = """() => {
  const card = document.querySelector("main");
  const box = card.getBoundingClientRect();
  // Boxes whose content spills out sideways; clipping it on purpose (the box itself or
  // a box around it) is not spilling.
  const clipped = el => {
    for (let e = el; e && e !== card; e = e.parentElement) {
      if (getComputedStyle(e).overflowX !== "visible") return true;
    }
    return false;
  };
  const spilling = Array.from(card.querySelectorAll("*")).filter(el =>
    el.clientWidth > 0 && el.scrollWidth > el.clientWidth + 1 && !clipped(el)
  ).map(el => el.tagName + "." + el.className);
  return {
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    cardLeft: box.left, cardRight: box.right,
    cardScrollWidth: card.scrollWidth, cardClientWidth: card.clientWidth,
    spilling,
  };
}"""

_FOCUSED = """() => {
  const el = document.activeElement;
  window.seenStops = window.seenStops || new Set();
  if (!el || el === document.body || window.seenStops.has(el)) return null;
  window.seenStops.add(el);
  const r = el.getBoundingClientRect();
  return {
    name: el.getAttribute("aria-label") || el.id || el.textContent.trim(),
    top: r.top + window.scrollY, bottom: r.bottom + window.scrollY,
    left: r.left + window.scrollX, right: r.right + window.scrollX,
  };
}"""

_CONTROLS = """() => Array.from(document.querySelectorAll(
  "a[href], button, input:not([type=hidden]), select, textarea"
)).filter(el => !el.disabled).length"""

_UNCOVERED = """(el) => {
  const r = el.getBoundingClientRect();
  const hit = document.elementFromPoint(r.left + r.width / 2, r.top + r.height / 2);
  return hit !== null && (hit === el || el.contains(hit));
}"""


async def assert_fits_across(page: Page) -> None:
    """No horizontal scrolling, the card inside the window, and nothing in the card
    spilling out of its box sideways."""
    m: dict[str, Any] = await page.evaluate(_FITS)
    assert m["scrollWidth"] <= m["innerWidth"], m
    assert m["cardLeft"] >= 0 and m["cardRight"] <= m["innerWidth"], m
    assert m["cardScrollWidth"] <= m["cardClientWidth"], m
    assert m["spilling"] == [], m


async def assert_nothing_inline(page: Page) -> None:
    """The page as served (fetched again with the browser's cookies: the live DOM carries
    attributes that Playwright adds) has no script, no style attribute (its CSP would
    block both) and loads nothing from elsewhere."""
    served = await page.context.request.get(page.url)
    html = await served.text()
    assert served.ok and "<main" in html
    assert "<script" not in html and not re.search(r"\sstyle=", html)
    for url in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", url), url


async def assert_in_view(page: Page, control: Locator) -> None:
    """``control`` is inside the window as the page first shows it, and nothing covers it."""
    size = page.viewport_size
    assert size is not None
    box = await control.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], box
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (box, size)
    assert await control.evaluate(_UNCOVERED), "something covers the control"


@dataclass(frozen=True, slots=True)
class Stop:
    name: str
    top: float
    bottom: float
    left: float
    right: float

    def comes_before(self, other: Stop) -> bool:
        """Reading order: ``other`` is on a later line, or on the same line further right."""
        if other.top >= self.bottom - 2:
            return True
        same_line = other.top < self.bottom and self.top < other.bottom
        return same_line and other.left >= self.right - 2


async def tab_stops(page: Page) -> list[Stop]:
    """Press Tab on a freshly loaded page (nothing focused yet) until focus leaves the
    page or comes back to a control already visited; every control on the page must
    have been visited once."""
    controls: int = await page.evaluate(_CONTROLS)
    stops: list[Stop] = []
    for _ in range(controls + 2):
        await page.keyboard.press("Tab")
        focused = await page.evaluate(_FOCUSED)
        if focused is None:
            break
        stops.append(Stop(**focused))
    assert len(stops) == controls, [s.name for s in stops]
    return stops


def assert_reading_order(stops: list[Stop]) -> None:
    for before, after in pairwise(stops):
        assert before.comes_before(after), (before, after)
