"""The browser tier's fixtures: one Chromium for the tier, the whole system once for it (every service, the portal
and the local identity provider, each a process of its own on the real stack), and the demo people in it."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, async_playwright, expect

from ..system import System, running_system
from .chromium import WAIT_MS, Person, launch

PEOPLE = Path(__file__).parents[2] / "deploy" / "local" / "people.toml"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@dataclass(frozen=True)
class Account:
    """A demo person who can sign in at the local identity provider (deploy/local/people.toml)."""

    username: str
    password: str
    sub: str
    name: str
    roles: list[str]
    areas: list[str]


def accounts() -> dict[str, Account]:
    document = tomllib.loads(PEOPLE.read_text(encoding="utf-8"))
    return {
        entry["username"]: Account(**{key: entry[key] for key in Account.__dataclass_fields__})
        for entry in document["people"]
    }


@dataclass
class Portal:
    """The running system as people in Chromium meet it: they sign in at the identity provider and use the portal;
    every page any of them sees passed axe-core (`Person.looked`), and is remembered by its path."""

    system: System
    browser: Browser
    people: dict[str, Account] = field(default_factory=accounts)
    seen: list[str] = field(default_factory=list)
    persons: list[Person] = field(default_factory=list)
    unreflowed: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.system.url("portal")

    async def visitor(self, name: str = "visitor") -> Person:
        """Someone who has not signed in."""
        person = await Person.enter(self.browser, self.url, name)
        person.seen, person.unreflowed = self.seen, self.unreflowed
        self.persons.append(person)
        return person

    async def signed_in(self, username: str, screenshot: str | None = None) -> Person:
        """A demo person signed in as a person does: `Inloggen` on the portal, username and password at the
        identity provider's page (checked with axe too, and photographed as `screenshot` if given), back on the
        portal with their name in the header."""
        account = self.people[username]
        person = await self.visitor(username)
        page = person.page
        await person.open("/")
        await person.press(page.get_by_role("link", name="Inloggen"), page.get_by_label("Gebruikersnaam"))
        if screenshot:
            await person.screenshots(screenshot)
        await page.get_by_label("Gebruikersnaam").fill(account.username)
        await page.get_by_label("Wachtwoord").fill(account.password)
        await person.press(page.get_by_role("button", name="Inloggen"), f"{self.url}/**")
        await expect(page.get_by_text(account.name).first).to_be_visible(timeout=WAIT_MS)
        return person

    def token(self, username: str) -> dict[str, str]:
        """The bearer token the identity provider gives this person, for the steps that no page takes."""
        account = self.people[username]
        return self.system.journey.token(account.sub, account.roles, account.areas)

    async def until_public(self, initiative_id: str, condition: Callable[[dict[str, Any]], Any]) -> dict[str, Any]:
        """Until the portal's public read side shows the initiative as `condition` wants it."""
        journey = self.system.journey

        async def shown():
            answer = await journey.http.get(f"{self.url}/api/v1/public/initiatives/{initiative_id}")
            return answer.json() if answer.status_code == 200 and condition(answer.json()) else None

        return await journey.until(f"the portal to show initiative {initiative_id} as expected", shown)

    async def until_status(self, initiative_id: str, status: str) -> dict[str, Any]:
        return await self.until_public(initiative_id, lambda found: found["status"] == status)

    async def until_round_knows(self, round_id: str, area_code: str, initiative_id: str) -> None:
        """Until the vouchers service knows the approved initiative and the portal's read side the open round."""
        journey, official = self.system.journey, self.token("wijkcoordinator")
        await journey.until(
            "the vouchers service to know the approved initiative",
            lambda: journey.call("vouchers", "GET", f"/api/v1/initiative-budgets/{initiative_id}", official),
        )

        async def round_shown():
            answer = await journey.http.get(f"{self.url}/api/v1/public/areas/{area_code}/rounds")
            return answer.status_code == 200 and any(r["id"] == round_id for r in answer.json()["items"])

        await journey.until(f"the portal to know round {round_id}", round_shown)

    def finish(self, missing: list[str] = ()) -> None:
        """Fails naming every page that needed sideways scrolling at a phone's width and every step the portal has
        no page for yet (`missing`): each was noted where it was met, and the journey went on to see the rest."""
        problems = [*self.unreflowed, *(f"no page yet: {step}" for step in missing)]
        if problems:
            pytest.fail(f"{len(problems)} problems on the way:\n" + "\n".join(f"- {problem}" for problem in problems))

    def pages_seen(self) -> set[str]:
        """The pages seen, by path with ids as `{id}`, and the identity provider's by its path."""
        portal = urlsplit(self.url).netloc
        return {
            (path if urlsplit(url).netloc == portal else f"idp:{path}")
            for url in self.seen
            for path in [UUID.sub("{id}", urlsplit(url).path)]
        }


@pytest.fixture(scope="package")
async def chromium():
    """Debian's Chromium, launched once for the tier; each person gets a browser context of their own."""
    async with async_playwright() as playwright:
        browser = await launch(playwright)
        try:
            yield browser
        finally:
            await browser.close()


@pytest.fixture(scope="package")
async def system(kafka_bootstrap, tmp_path_factory):
    """Every service, the portal and the identity provider, each a process on the real stack, for the tier."""
    async with running_system(kafka_bootstrap, tmp_path_factory, "browser") as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    report = yield
    if report.when == "call":
        item.failed_call = report.failed
    return report


@pytest.fixture
async def portal(request, system, chromium, tmp_path):
    """The system in Chromium for one test; after a failure, what each person's page showed (a screenshot and its
    accessibility tree), to see where the journey stopped."""
    portal = Portal(system, chromium)
    yield portal
    for person in portal.persons:
        if getattr(request.node, "failed_call", False) and not person.page.is_closed():
            shot = tmp_path / f"{person.name}.png"
            await person.page.screenshot(path=shot, full_page=True)
            tree = await person.page.locator("body").aria_snapshot()
            print(f"\n{person.name} was on {person.page.url} ({shot}):\n{tree}")
        await person.context.close()
