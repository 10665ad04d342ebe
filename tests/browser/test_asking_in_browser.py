"""Asking neighbours in Chromium, as the demo people do it, every page passing axe-core: Bas says on his settings
page what he could help with, Anna asks for help on her initiative's page, the asking pass asks Bas, and he answers
"Ja, ik help mee" on the ask's page (the page the ask message links to); Anna then sees who said yes."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from .conftest import Portal

pytestmark = pytest.mark.browser


async def test_a_neighbour_offers_help_is_asked_and_says_yes_in_the_browser(portal: Portal):
    journey = portal.system.journey

    bas = await portal.signed_in("bas")
    await bas.open("/instellingen")
    page = bas.page
    await page.get_by_label("klussen").check()
    await page.get_by_label("Hoeveel uur per maand").fill("6")
    await page.get_by_label("Waar", exact=True).select_option("wijk")
    await page.get_by_label("Wat de initiatiefnemers van u zien als u ja zegt").fill("Bas, via de buurtapp")
    await bas.press(page.get_by_role("button", name="Bewaar mijn aanbod"), page.get_by_text("Uw aanbod is opgeslagen."))

    anna_token = portal.token("anna")
    initiative = await journey.call(
        "initiatives",
        "POST",
        "/api/v1/initiatives",
        anna_token,
        {
            "title": f"Hekjes speeltuin {journey.run}",
            "summary": "De hekjes van de speeltuin repareren",
            "description": "Samen de hekjes repareren.",
            "area_code": "BU03630001",
            "category": "play",
            "budget_lines": [{"description": "hout", "amount_cents": 10_000}],
        },
    )
    await journey.call("initiatives", "POST", f"/api/v1/initiatives/{initiative['id']}/submit", anna_token)
    anna = await portal.signed_in("anna")
    await anna.open(f"/initiatieven/{initiative['id']}")
    page = anna.page
    await page.get_by_label("klussen").check()
    await page.get_by_label("Waarvoor zoekt u hulp?").fill("Hekjes repareren")
    await page.get_by_label("Hoeveel mensen").fill("1")
    await anna.press(
        page.get_by_role("button", name="Vraag buren om hulp"), page.get_by_text("Uw hulpvraag staat uit.")
    )

    bas_token = portal.token("bas")

    async def asked():
        export = await journey.call("initiatives", "GET", "/api/v1/me/export", bas_token)
        return next((ask for ask in export["asks"] if ask["initiative_id"] == initiative["id"]), None)

    ask = await journey.until("Bas to be asked", asked, timeout=60)
    await bas.open(f"/vragen/{ask['id']}")
    page = bas.page
    await expect(page.get_by_text("Hekjes repareren")).to_be_visible()
    await bas.press(page.get_by_role("button", name="Ja, ik help mee"), page.get_by_text("Bedankt! U doet mee."))

    await anna.open(f"/initiatieven/{initiative['id']}")
    await expect(anna.page.get_by_text("Bas, via de buurtapp")).to_be_visible()
    assert {"/instellingen", "/vragen/{id}", "/initiatieven/{id}"} <= portal.pages_seen()
    portal.finish()
