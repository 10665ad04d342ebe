"""What anyone sees without signing in — the home page, a buurt's and a wijk's page, a completed initiative with its
report — and the identity provider's sign-in page pass axe-core (WCAG 2.1 A/AA) with zero violations, in Chromium.
The data comes from the resident journey through the services' APIs (signed tokens), so every part of the public
pages has something to show: an initiative gathering support, a funded one, a completed one with its report, an
open round."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from ..system import journey_module
from .conftest import Portal

pytestmark = pytest.mark.browser

BUURT, WIJK = journey_module.BUURTEN[1], journey_module.WIJK


async def test_the_public_pages_and_the_sign_in_page_have_no_accessibility_violations(portal: Portal):
    journey = portal.system.journey
    walked = await journey.walk()
    initiative_id = walked["initiative_id"]
    completed = await portal.until_public(initiative_id, lambda found: found.get("report"))

    visitor = await portal.visitor()
    await visitor.open("/")
    await visitor.screenshots("home")
    await visitor.open(f"/buurten/{BUURT}")
    await expect(visitor.page.get_by_text(completed["title"]).first).to_be_visible()
    await visitor.screenshots("buurt")
    await visitor.open(f"/buurten/{WIJK}")
    await visitor.open(f"/initiatieven/{initiative_id}")
    await expect(visitor.page.get_by_text(completed["report"]["what_was_done"])).to_be_visible()
    await visitor.screenshots("initiatief")
    await visitor.press(visitor.page.get_by_role("link", name="Inloggen"), visitor.page.get_by_label("Gebruikersnaam"))

    assert portal.pages_seen() == {
        "/",
        f"/buurten/{BUURT}",
        f"/buurten/{WIJK}",
        "/initiatieven/{id}",
        "idp:/authorize",
    }
    portal.finish()
