"""Debian's Chromium under Playwright, and a person in it who checks every page they see.

Playwright only drives the browser Debian installed (`make browser`); it never downloads one of its own. Every page
a `Person` sees is checked with axe-core for WCAG 2.1 A and AA, and a page that answered with a server error, threw
a script error or broke its Content-Security-Policy fails the test there, where it happened. Nothing here waits a
fixed time: each step waits for what it expects to see (Playwright's auto-waiting and `expect`), within a bound."""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.async_api import Browser, BrowserContext, Locator, Page, Playwright, Response, expect
from playwright.async_api import TimeoutError as PlaywrightTimeoutError

ROOT = Path(__file__).parents[2]
CHROMIUM = Path("/usr/bin/chromium")
# what this machine needs: no sandbox as root, no GPU, and no traffic of the browser's own (updates, sync, QUIC)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
AXE_SCRIPT = ROOT / "services" / "portal" / "node_modules" / "axe-core" / "axe.min.js"
WCAG_21_AA = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
SCREENSHOTS = ROOT / "docs" / "screenshots"
WAIT_MS = 30_000  # the bound on every wait for something to show: generous for a busy two-core machine


def installed(path: Path, how: str) -> Path:
    if not path.exists():
        raise RuntimeError(f"{path} is missing: {how}")
    return path


@functools.cache
def axe_source() -> str:
    return installed(AXE_SCRIPT, "`make install` installs the portal's npm packages (axe-core)").read_text("utf-8")


async def launch(playwright: Playwright) -> Browser:
    """Debian's Chromium, headless; Playwright gives each launch a fresh user-data-dir of its own, removed at close."""
    installed(CHROMIUM, "`make browser` installs Debian's chromium and chromium-driver")
    return await playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=list(FLAGS))


@dataclass(frozen=True)
class Violation:
    """One axe rule a page breaks, and where."""

    rule: str
    impact: str
    help: str
    url: str
    targets: tuple[str, ...]

    def __str__(self) -> str:
        where = "\n".join(f"      at {target}" for target in self.targets[:10])
        more = f"\n      … and {len(self.targets) - 10} more" if len(self.targets) > 10 else ""
        return f"  - {self.rule} ({self.impact}): {self.help}\n{where}{more}\n      {self.url}"


_RUN_AXE = """async (tags) => {
  const results = await axe.run(document, {runOnly: {type: "tag", values: tags}, resultTypes: ["violations"]});
  return results.violations.map((v) => ({
    rule: v.id, impact: v.impact || "unknown", help: v.help, url: v.helpUrl,
    targets: v.nodes.map((node) => node.target.map((part) => [].concat(part).join(" >>> ")).join(" ")),
  }));
}"""


async def axe_violations(page: Page, tags: tuple[str, ...] = WCAG_21_AA) -> list[Violation]:
    """What axe-core finds on the page as it is now. The script is evaluated through the DevTools protocol, so a
    page's Content-Security-Policy (no inline scripts) neither blocks it nor has to be loosened for it."""
    if not await page.evaluate("() => typeof window.axe === 'object'"):
        await page.evaluate(axe_source() + "\n;undefined")
    found = await page.evaluate(_RUN_AXE, list(tags))
    return [Violation(**{**violation, "targets": tuple(violation["targets"])}) for violation in found]


async def axe(page: Page, tags: tuple[str, ...] = WCAG_21_AA) -> None:
    """Fails, listing every violation (rule, impact, target, help URL), unless axe finds none on the page."""
    if violations := await axe_violations(page, tags):
        listed = "\n".join(str(violation) for violation in violations)
        raise AssertionError(f"axe-core: {len(violations)} WCAG 2.1 A/AA violations on {page.url}\n{listed}")


_OVERFLOWING = """() => {
  const width = document.documentElement.clientWidth;
  return [...document.querySelectorAll("body *")]
    .filter((element) => element.getBoundingClientRect().right > width + 1 && element.getClientRects().length)
    .filter((element) => !element.closest(".utrecht-table-container, pre"))  // these scroll on their own
    .slice(0, 10)
    .map((element) => `${element.tagName.toLowerCase()}${element.id ? "#" + element.id : ""}`
      + `${element.className ? "." + String(element.className).trim().split(/\\s+/).join(".") : ""}`
      + ` (to ${Math.round(element.getBoundingClientRect().right)}px)`);
}"""


async def reflows(page: Page) -> None:
    """WCAG 2.1 success criterion 1.4.10 (Reflow, AA), which axe cannot judge: at a phone's width the page needs no
    scrolling sideways. Fails naming the elements that reach past the right edge."""
    sideways = await page.evaluate("() => document.documentElement.scrollWidth > document.documentElement.clientWidth")
    if sideways:
        overflowing = await page.evaluate(_OVERFLOWING)
        width = page.viewport_size["width"] if page.viewport_size else "?"
        raise AssertionError(
            f"{page.url} does not reflow at {width}px (WCAG 1.4.10): these reach past the right edge:\n  "
            + "\n  ".join(overflowing)
        )


async def screenshots(page: Page, name: str, unreflowed: list[str] | None = None) -> list[Path]:
    """`docs/screenshots/{name}-desktop.png` and `{name}-phone.png` of the page as it is, at 1280x800 and 390x844;
    the page is checked with axe at phone width too (a narrow layout can show, hide or reflow things), and must need
    no sideways scrolling there (`reflows`): a page that does fails here, or is added to `unreflowed` if given, so
    a journey can go on and name every such page at its end."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    written = []
    for width, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        await page.set_viewport_size(viewport)
        await page.evaluate("() => document.fonts.ready.then(() => true)")
        await axe(page)
        if viewport is PHONE:
            try:
                await reflows(page)
            except AssertionError as error:
                if unreflowed is None:
                    raise
                unreflowed.append(str(error))
        path = SCREENSHOTS / f"{name}-{width}.png"
        await page.screenshot(path=path, animations="disabled", caret="hide")
        written.append(path)
    await page.set_viewport_size(DESKTOP)
    return written


@dataclass
class Person:
    """Someone in a browser of their own (cookies, session) on the portal. Every page they come to is checked
    before they go on (`looked`): no server error, no script or console error (a blocked script, a failed
    request), zero axe violations."""

    name: str
    context: BrowserContext
    page: Page
    portal: str
    seen: list[str] = field(default_factory=list)
    troubles: list[str] = field(default_factory=list)
    unreflowed: list[str] = field(default_factory=list)

    @classmethod
    async def enter(cls, browser: Browser, portal: str, name: str) -> Person:
        context = await browser.new_context(viewport=DESKTOP, locale="nl-NL", timezone_id="Europe/Amsterdam")
        context.set_default_timeout(WAIT_MS)
        page = await context.new_page()
        person = cls(name, context, page, portal.rstrip("/"))
        page.on("response", person._answered)
        page.on("pageerror", lambda error: person.troubles.append(f"script error: {error}"))
        page.on("console", person._console)
        return person

    def _answered(self, response: Response) -> None:
        if response.request.is_navigation_request() and response.status >= 500:
            self.troubles.append(f"{response.request.method} {response.url} answered {response.status}")

    def _console(self, message: Any) -> None:
        """An error the browser reports on the console: a script or style the Content-Security-Policy blocked, a
        request that failed (a boosted link whose redirect left the site, blocked by CORS), a resource missing (but
        for the icon the browser asks every site for by itself)."""
        if message.type == "error" and not message.location.get("url", "").endswith("/favicon.ico"):
            where = message.location.get("url") or self.page.url
            self.troubles.append(f"console error: {message.text} ({where})")

    def url(self, path: str) -> str:
        return path if path.startswith("http") else f"{self.portal}{path}"

    async def looked(self) -> None:
        """The page has loaded and passes every check; it counts as seen."""
        await self.page.wait_for_load_state("load")
        if self.troubles:
            raise AssertionError(f"{self.name} on {self.page.url}:\n  " + "\n  ".join(self.troubles))
        await axe(self.page)
        self.seen.append(self.page.url)

    async def open(self, path: str) -> Response | None:
        """Go to a page by its address, as from a link in an e-mail or a bookmark; it must exist (no 404)."""
        response = await self.page.goto(self.url(path))
        if response is not None and response.status == 404:
            raise AssertionError(f"{self.name}: the page {path} does not exist yet (404)")
        await self.looked()
        return response

    async def press(self, control: Locator, then: Locator | str | re.Pattern[str]) -> None:
        """Click a link or button and wait until `then` shows: something on the next page (a locator) or its
        address (a glob or pattern). Works alike whether the portal navigates or htmx swaps a part of the page."""
        await control.click()
        try:
            if isinstance(then, Locator):
                await expect(then.first).to_be_visible(timeout=WAIT_MS)
            else:
                await self.page.wait_for_url(then, timeout=WAIT_MS)
        except (AssertionError, PlaywrightTimeoutError) as error:
            troubles = "".join(f"\n  {trouble}" for trouble in self.troubles)
            raise AssertionError(
                f"{self.name} pressed {control} on {self.page.url} and did not get to {then}{troubles}"
            ) from error
        await self.looked()

    async def until_shown(self, path: str, shown: Callable[[Page], Locator], ready: Callable[[], Awaitable]) -> None:
        """Open `path` once `ready()` says the portal's read side has what the page is to show (the portal learns
        of changes from events, a moment after the service made them), and expect it there."""
        await ready()
        await self.open(path)
        await expect(shown(self.page).first).to_be_visible(timeout=WAIT_MS)

    async def screenshots(self, name: str) -> list[Path]:
        return await screenshots(self.page, name, self.unreflowed)

    async def leave(self) -> None:
        await self.context.close()
