"""The resident journey in Chromium, as the demo people walk it: each signs in at the identity provider with their
own username and password, and every page any of them sees passes axe-core (WCAG 2.1 A/AA) with zero violations.

Anna proposes geveltuinen for her wijk and asks for support; Bas, Dirk and Cem, who live in the wijk, support it;
the wijkcoördinator approves it; a pledge round opens; five residents claim their wallet and pledge until it is
funded; Anna starts, declares the plant invoice; the wijkcoördinator approves the declaration, finance confirms the
payout; Anna reports — and anyone sees the report on the initiative's page without signing in.

Two steps have no page of their own and go through the services' APIs with a signed token, as the systems that
take them would: opening the round (the portal has no page to open one; the vouchers API, as the official) and the
bank's confirmation of the payout (the finance integration). A step the portal offers no page for yet is taken
through the API so the journey reaches the pages after it, and the test then fails naming each such step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect

from .conftest import Portal

pytestmark = pytest.mark.browser

WIJK = "WK036300"
TITLE = "Geveltuinen Oudekerksplein"
NEIGHBOURS = ("bas", "dirk", "cem")  # live in the wijk's buurten: they may support an initiative for the wijk
PLEDGERS = ("bas", "dirk", "cem", "regiegroep1", "regiegroep2")
VOUCHER_CENTS, APPROVED_CENTS = 10_000, 50_000  # five wallets of € 100 fund the € 500 approved
REPORT = "38 geveltuinen aangelegd met 14 buren."
SUPPLIER = "Tuincentrum Amstel"


async def test_an_initiative_from_idea_to_public_report_in_the_browser(portal: Portal):
    journey = portal.system.journey

    # Anna signs in and proposes the initiative, asking for support at once
    anna = await portal.signed_in("anna", screenshot="inloggen")
    await anna.open("/initiatieven/nieuw")
    page = anna.page
    await page.get_by_label("Titel", exact=True).fill(TITLE)
    await page.get_by_label("Samenvatting").fill("Groen langs de gevels")
    await page.get_by_label("Beschrijving").fill("Veertig geveltuinen, samen aangelegd en onderhouden.")
    await page.get_by_label("Buurtcode").fill(WIJK)
    await page.get_by_label("Soort").select_option("green")
    await page.get_by_label("Omschrijving post 1").fill("planten")
    await page.get_by_label("Bedrag post 1 (euro)").fill("450,00")
    await page.get_by_label("Omschrijving post 2").fill("gereedschap")
    await page.get_by_label("Bedrag post 2 (euro)").fill("150,00")
    await anna.screenshots("initiatief-nieuw")
    await anna.press(
        page.get_by_role("button", name="Bewaar en vraag steun"), re.compile(r"/initiatieven/[0-9a-f-]{36}")
    )
    initiative_id = re.search(r"/initiatieven/([0-9a-f-]{36})", page.url).group(1)
    await expect(page.get_by_text("Uw initiatief is ingediend.")).to_be_visible()
    await expect(page.get_by_role("button", name=re.compile("steun", re.IGNORECASE))).to_have_count(0)  # her own

    # three neighbours support it; the third brings it to review
    for name in NEIGHBOURS:
        neighbour = await portal.signed_in(name)
        await neighbour.open(f"/initiatieven/{initiative_id}")
        await neighbour.press(
            neighbour.page.get_by_role("button", name="Steunen"), neighbour.page.get_by_text("Bedankt voor uw steun.")
        )
        await neighbour.leave()
    await portal.until_status(initiative_id, "in_review")

    # the wijkcoördinator finds it in the review queue and approves € 500
    official = await portal.signed_in("wijkcoordinator")
    await official.open("/beoordelen")
    await official.press(official.page.get_by_role("link", name=TITLE), f"**/beoordelen/{initiative_id}")
    page = official.page
    await page.get_by_label("Goedkeuren").check()
    await page.get_by_label(re.compile(r"^Goedgekeurd bedrag")).fill("500,00")
    await official.screenshots("beoordelen")
    await official.press(
        page.get_by_role("button", name="Besluit vastleggen"), page.get_by_text("Uw besluit is vastgelegd.")
    )
    await portal.until_status(initiative_id, "approved")

    # a pledge round opens: the portal has no page to open one, so the official's own API call does it
    now = datetime.now(UTC)
    round_ = await journey.call(
        "vouchers",
        "POST",
        "/api/v1/rounds",
        portal.token("wijkcoordinator") | {"Idempotency-Key": f"browser-round-{journey.run}"},
        {
            "area_code": WIJK,
            "name": "Buurtbudget Burgwallen",
            "total_budget_cents": 2_000_000,
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=30)).isoformat(),
            "mechanism": "pledge",
            "voucher_amount_cents": VOUCHER_CENTS,
            "allow_wallet_claims": True,
        },
    )
    round_id = round_["id"]
    await portal.until_round_knows(round_id, WIJK, initiative_id)

    # residents of the wijk claim their wallet on the round's page and pledge until the initiative is funded
    for n, name in enumerate(PLEDGERS):
        pledger = await portal.signed_in(name)
        await pledger.open(f"/rondes/{round_id}")
        page = pledger.page
        await pledger.press(
            page.get_by_role("button", name="Vraag uw portemonnee aan"), page.get_by_text("Uw portemonnee staat klaar.")
        )
        await page.get_by_label("Initiatief").select_option(initiative_id)
        await page.get_by_label("Bedrag (euro)").fill(f"{VOUCHER_CENTS // 100}")
        if n == 0:
            await pledger.screenshots("ronde")
        await pledger.press(page.get_by_role("button", name="Zeg toe"), page.get_by_text("Uw vouchers zijn toegezegd."))
        if n == 0:
            await pledger.open("/portemonnee")
            await pledger.screenshots("portemonnee")
        await pledger.leave()
    await portal.until_status(initiative_id, "funded")

    # Anna starts the work and declares the plant invoice from her initiative's page
    await anna.open(f"/initiatieven/{initiative_id}")
    page = anna.page
    await anna.press(
        page.get_by_role("button", name=re.compile("start|beginnen", re.IGNORECASE)), page.get_by_text("Bezig").first
    )
    await anna.press(
        page.get_by_role("link", name=re.compile("declar", re.IGNORECASE)), page.get_by_label("Leverancier")
    )
    await page.get_by_label("Leverancier").fill(SUPPLIER)
    await page.get_by_label(re.compile("^Bedrag")).fill("300,00")
    await page.get_by_label(re.compile("^Factuur")).fill(f"F-2026-{journey.run}")
    await anna.screenshots("declareren")
    await anna.press(
        page.get_by_role("button", name=re.compile("declar|versturen", re.IGNORECASE)), page.get_by_role("status")
    )
    await expect(page.get_by_text("Wacht op besluit")).to_be_visible()
    await expect(page.get_by_role("link", name=TITLE)).to_be_visible()
    await anna.screenshots("declaratie-ingediend")

    # the wijkcoördinator approves the declaration; finance pays it and confirms by the payout's reference
    await official.open("/declaraties")
    await official.press(official.page.get_by_role("link", name=re.compile(SUPPLIER)).first, "**/declaraties/*")
    claim_id = official.page.url.rstrip("/").rsplit("/", 1)[1]
    await official.page.get_by_label("Goedkeuren").check()
    await official.screenshots("declaratie")
    await official.press(
        official.page.get_by_role("button", name="Besluit vastleggen"),
        official.page.get_by_text("Uw besluit over de declaratie is vastgelegd."),
    )
    claim = await journey.call("vouchers", "GET", f"/api/v1/expense-claims/{claim_id}", portal.token("wijkcoordinator"))
    paid = await journey.call(
        "vouchers",
        "POST",
        f"/api/v1/payouts/{claim['payout_id']}/confirmation",
        journey.finance(),
        {"bank_reference": f"SEPA-{journey.run}", "paid_at": datetime.now(UTC).isoformat()},
    )
    assert paid["status"] == "settled", paid

    # Anna reports what was done and spent
    await anna.open(f"/initiatieven/{initiative_id}")
    page = anna.page
    await anna.press(
        page.get_by_role("link", name=re.compile("verslag", re.IGNORECASE)),
        page.get_by_label(re.compile("gedaan", re.IGNORECASE)),
    )
    await page.get_by_label(re.compile("gedaan", re.IGNORECASE)).fill(REPORT)
    await page.get_by_label(re.compile("planten", re.IGNORECASE)).fill("300,00")
    await page.get_by_label(re.compile("gereedschap", re.IGNORECASE)).fill("0")
    await anna.screenshots("verslag")
    await anna.press(
        page.get_by_role("button", name=re.compile("verslag|versturen", re.IGNORECASE)), page.get_by_text(REPORT)
    )
    await portal.until_status(initiative_id, "completed")

    # a neighbour who never signed in reads the report on the initiative's page
    visitor = await portal.visitor()
    await visitor.until_shown(
        f"/initiatieven/{initiative_id}",
        lambda page: page.get_by_text(REPORT),
        lambda: portal.until_public(initiative_id, lambda found: found.get("report")),
    )
    await expect(visitor.page.get_by_role("link", name="Inloggen")).to_be_visible()
    assert {
        "idp:/authorize",
        "/",
        "/initiatieven/nieuw",
        "/initiatieven/{id}",
        "/beoordelen",
        "/beoordelen/{id}",
        "/rondes/{id}",
        "/portemonnee",
        "/declaraties",
        "/declaraties/{id}",
        "/initiatieven/{id}/declareren",
        "/initiatieven/{id}/verslag",
    } <= portal.pages_seen()
    portal.finish()
