"""The accessibility check itself: it finds what a person with a screen reader or a keyboard would run into, and
names each rule, its impact, where on the page and where to read about it — and passes a page without faults; and
the reflow check at a phone's width, which axe cannot make."""

from __future__ import annotations

import pytest

from .chromium import PHONE, axe, axe_violations, reflows

pytestmark = pytest.mark.browser

FAULTY = """<!doctype html><html><head><title>Geveltuinen</title></head><body>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
<form><input type="text" name="titel"><button type="submit"></button></form>
<p style="color:#aaa;background:#fff">Veertig geveltuinen</p>
</body></html>"""

SOUND = """<!doctype html><html lang="nl"><head><title>Geveltuinen</title></head><body>
<header><a href="#inhoud">Naar de inhoud</a></header>
<main id="inhoud"><h1>Geveltuinen Oudekerksplein</h1>
<img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" alt="Een geveltuin">
<form><label for="titel">Titel</label><input id="titel" type="text" name="titel">
<button type="submit">Opslaan</button></form>
<p style="color:#333;background:#fff">Veertig geveltuinen</p></main>
</body></html>"""


@pytest.fixture
async def page(chromium):
    context = await chromium.new_context()
    try:
        yield await context.new_page()
    finally:
        await context.close()


async def test_axe_lists_every_violation_by_rule_impact_target_and_help(page):
    await page.set_content(FAULTY)

    rules = {violation.rule: violation for violation in await axe_violations(page)}
    assert {"html-has-lang", "image-alt", "label", "button-name", "color-contrast"} <= set(rules)
    assert rules["image-alt"].impact == "critical" and rules["image-alt"].targets == ("img",)
    assert rules["label"].targets == ("input",)
    assert rules["color-contrast"].url.startswith("https://dequeuniversity.com/rules/axe/")

    with pytest.raises(AssertionError) as failed:
        await axe(page)
    message = str(failed.value)
    assert f"{len(rules)} WCAG 2.1 A/AA violations on about:blank" in message
    assert "  - image-alt (critical): Images must have alternative text\n      at img\n" in message


async def test_axe_passes_a_page_without_violations(page):
    await page.set_content(SOUND)

    assert await axe_violations(page) == []
    await axe(page)


async def test_a_page_wider_than_a_phone_fails_the_reflow_check_naming_what_sticks_out(page):
    await page.set_viewport_size(PHONE)
    await page.set_content(SOUND.replace("<header>", '<header><nav id="menu" style="width:600px">Menu</nav>'))

    with pytest.raises(AssertionError) as failed:
        await reflows(page)
    assert "does not reflow at 390px (WCAG 1.4.10)" in str(failed.value)
    assert "nav#menu (to 608px)" in str(failed.value)

    await page.set_content(SOUND)
    await reflows(page)
