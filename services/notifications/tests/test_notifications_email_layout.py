"""Every e-mail, in both languages, as a person reads it: it names its initiative (or round) and its area, has one
call to action that is an absolute link to a portal page, renders well in mail clients (tables, CSS inlined, a
plain-text part beside the HTML, a preheader, the language) and carries the municipality's name and colour."""

from __future__ import annotations

import re
import uuid
from html.parser import HTMLParser

import pytest
from notifications.adapters.mail import compose
from notifications.domain import areas
from notifications.domain.messages import LANGUAGES, Municipality, render, render_digest
from notifications.domain.pages import PAGE_OF_KIND, path
from notifications.domain.recipients import KINDS, RULES, params
from notifications.settings import NotificationsSettings
from portal.entrypoints.web import router as portal_pages
from pydantic import ValidationError
from test_notifications_messages import CONSUMED, FakePeople, sample, told
from test_notifications_reminders import EVERY_DUE
from test_notifications_reminders import stored as reminder_values

from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v

pytestmark = pytest.mark.unit

# The pages the portal serves: every link of a message must open one of them.
PORTAL_ROUTES = tuple(route.path for route in portal_pages.routes if "GET" in getattr(route, "methods", ()))
BASE = "https://buurtkracht.gemeente.example"
AMSTERDAM = Municipality("Gemeente Amsterdam", "#EC0000", None)
INITIATIVE_TITLE, ROUND_NAME = "Geveltuinen", "Voorjaarsronde"


def portal_route(page_path: str) -> str | None:
    """The route of the portal `page_path` is a page of, if any."""
    for route in PORTAL_ROUTES:
        pattern = re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(route))
        if re.fullmatch(pattern, page_path):
            return route
    return None


class Anchors(HTMLParser):
    """The links, image sources, style elements and the elements by class of an HTML document."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.links: list[tuple[str, str, str]] = []  # (class, href, text)
        self.sources: list[str] = []
        self.styles = 0
        self.lang: str | None = None
        self.classes: dict[str, list[str]] = {}
        self._open: list[tuple[str, str]] = []  # (tag, class) of the elements being read, for their text
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag == "html":
            self.lang = attributes.get("lang")
        if tag == "style":
            self.styles += 1
        if tag == "img":
            self.sources.append(attributes.get("src") or "")
        if tag == "a":
            self.links.append((attributes.get("class") or "", attributes.get("href") or "", ""))
        if attributes.get("class"):
            self.classes.setdefault(attributes["class"], []).append("")
        self._open.append((tag, attributes.get("class") or ""))

    def handle_endtag(self, tag):
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data):
        for tag, css_class in self._open:
            if css_class:
                self.classes[css_class][-1] += data
            if tag == "a":
                kind, href, text = self.links[-1]
                self.links[-1] = (kind, href, text + data)

    @property
    def buttons(self) -> list[tuple[str, str]]:
        return [(href, text) for kind, href, text in self.links if kind == "button"]


REMINDERS = {due.kind.value: due for due in EVERY_DUE}  # a reminder of every kind
EMAILED = [(model, rule.kind, language) for model in CONSUMED for rule in RULES[model] for language in LANGUAGES]


def stored(model, kind: str) -> dict:
    """What a stored message of `kind` about a sample of `model` holds, with what the service knew of it."""
    known = {}
    if issubclass(model, v.RoundEvent):
        if "initiative_id" in model.model_fields:
            known["initiative_title"] = INITIATIVE_TITLE
        if model not in (v.RoundOpened, v.RoundClosed):
            known["round_name"] = ROUND_NAME
    return params(sample(model), kind, **known)


def test_the_routes_of_the_test_are_the_portal_pages_the_messages_open():
    assert set(PAGE_OF_KIND) == set(KINDS)
    for kind, route in PAGE_OF_KIND.items():
        assert route in PORTAL_ROUTES, f"{kind} opens {route}, which is no portal page"


@pytest.mark.parametrize("model, kind, language", EMAILED, ids=[f"{k}-{lang}" for _, k, lang in EMAILED])
def test_every_email_names_what_it_is_about_and_has_one_call_to_action_to_a_portal_page(model, kind, language):
    values = stored(model, kind)
    message = render(kind, language, values, BASE, AMSTERDAM)
    html = Anchors(message.html)

    [(href, label)] = html.buttons
    assert href.startswith(BASE + "/") and label.strip()
    page = href.removeprefix(BASE)
    assert portal_route(page) == PAGE_OF_KIND[kind] and page == path(kind, values)
    assert f"{label.strip()}: {href}" in message.text, "the plain-text part has the link, with the same words"

    area = "Buurt" if language == "nl" else "Neighbourhood"
    assert f"{area}: BU03630001" in message.text and "BU03630001" in html.classes["about"][0]
    if "initiative_id" in model.model_fields:
        title = INITIATIVE_TITLE if issubclass(model, v.RoundEvent) else sample(model).title
        assert title in html.classes["about"][0] and title in message.text, "it names its initiative"
    elif issubclass(model, v.RoundEvent):
        name = ROUND_NAME if model not in (v.RoundOpened, v.RoundClosed) else sample(model).name
        assert name in html.classes["about"][0] and name in message.text, "it names its round"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_the_html_part_is_a_mail_clients_html_and_the_text_part_stands_beside_it(kind, language):
    model = next((model for model in CONSUMED for rule in RULES[model] if rule.kind == kind), None)
    if model:
        values = stored(model, kind)
    elif kind in REMINDERS:
        values = reminder_values(REMINDERS[kind])
    else:
        values = {"subscription_id": str(uuid.uuid4()), "url": "https://x", "reason": "r"}
    message = render(kind, language, values, BASE, AMSTERDAM)
    html = Anchors(message.html)

    assert html.styles == 0 and "<style" not in message.html, "every style is inlined"
    assert 'class="button"' in message.html and re.search(r'<a class="button" href="[^"]+" style="[^"]+"', message.html)
    assert all(re.fullmatch(r"https?://[^\s\"<>]+", href) for _, href, _ in html.links), html.links
    assert all(re.fullmatch(r"https?://\S+", source) for source in html.sources)
    assert html.lang == language and message.html.startswith("<!DOCTYPE html>")
    assert 'role="presentation"' in message.html, "a table-based layout"
    assert html.classes["preheader"][0].strip() and "display: none" in message.html
    assert "Gemeente Amsterdam" in message.html and "#EC0000" in message.html and "Gemeente Amsterdam" in message.text
    assert f"{BASE}/instellingen" in message.text and f'href="{BASE}/instellingen"' in message.html

    email = compose(uuid.uuid4(), "anna@example.nl", message, "Buurtkracht <noreply@example.nl>", language)
    assert email.get_content_type() == "multipart/alternative"
    assert [part.get_content_type() for part in email.iter_parts()] == ["text/plain", "text/html"]


@pytest.mark.parametrize("language", LANGUAGES)
async def test_the_payout_message_names_its_initiative_though_its_event_does_not(monkeypatch, language):
    settled = sample(v.PayoutSettled).model_copy(update={"initiators": ["r-owner"], "amount_cents": 12_345})
    assert "title" not in v.PayoutSettled.model_fields
    [(kind, values)] = (await told(monkeypatch, settled, FakePeople(title="Bankjes bij de speeltuin"))).values()
    message = render(kind, language, values, BASE, AMSTERDAM)
    assert "'Bankjes bij de speeltuin'" in message.subject
    assert "'Bankjes bij de speeltuin'" in message.text and "Bankjes bij de speeltuin" in message.html
    assert ("€ 123,45" if language == "nl" else "€123.45") in message.subject
    assert f"{BASE}/initiatieven/{settled.initiative_id}" in message.text


@pytest.mark.parametrize("model", [v.ExpenseClaimed, v.ExpenseApproved, v.ExpenseDeclined, v.PledgeMade])
async def test_claims_and_pledges_name_their_initiative_and_round_from_what_the_service_learnt(monkeypatch, model):
    event = sample(model).model_copy(update={"initiators": ["r-owner"], "resident_id": "r-pledger"})
    for kind, values in (await told(monkeypatch, event, FakePeople(title="Bankjes"))).values():
        assert values["initiative_title"] == "Bankjes" and values["round_name"] == "Voorjaarsronde"
        for language in LANGUAGES:
            text = render(kind, language, values, BASE).text
            assert "'Bankjes'" in text and "Voorjaarsronde" in text


def test_an_area_reads_by_its_registered_name_everywhere_in_a_message():
    values = stored(i.SupportThresholdReached, "initiative_in_review")
    names = {"BU03630001": "Burgwallen-Oude Zijde"}
    message = render("initiative_in_review", "nl", values, BASE, area_names=names)
    assert message.subject == f"Ter beoordeling: '{values['title']}' (Burgwallen-Oude Zijde)"
    assert "BU03630001" not in message.text and "BU03630001" not in message.html
    assert "Buurt: Burgwallen-Oude Zijde" in message.text and "Burgwallen-Oude Zijde" in message.html


def test_an_area_of_no_known_name_reads_as_its_code():
    values = stored(i.SupportThresholdReached, "initiative_in_review")
    message = render("initiative_in_review", "nl", values, BASE, area_names={"WK036300": "Burgwallen-Oude Zijde"})
    assert message.subject == f"Ter beoordeling: '{values['title']}' (BU03630001)"
    assert "Buurt: BU03630001" in message.text
    assert areas.area_label("BU03630001") == "BU03630001" and areas.area_label("GM0363", {"GM0363": "Amsterdam"}) == (
        "Amsterdam"
    )


def test_a_wijk_reads_as_a_wijk():
    values = stored(v.RoundOpened, "round_opened") | {"area_code": "WK036301"}
    assert "Wijk: WK036301" in render("round_opened", "nl", values, BASE).text
    assert "District: WK036301" in render("round_opened", "en", values, BASE).text


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_digest_shows_every_message_with_what_it_is_about_and_its_own_link(language):
    kinds = [
        ("new_supporter", i.InitiativeSupported),
        ("payout_settled", v.PayoutSettled),
        ("round_opened", v.RoundOpened),
    ]
    items = [(kind, stored(model, kind)) for kind, model in kinds]
    digest = render_digest(items, language, BASE, AMSTERDAM)
    html = Anchors(digest.html)
    assert html.styles == 0 and html.lang == language
    assert [href.removeprefix(BASE) for href, _ in html.buttons] == [path(kind, values) for kind, values in items]
    assert all(re.fullmatch(r"https?://\S+", href) for _, href, _ in html.links)
    assert f"{BASE}/inbox" in digest.text and f'href="{BASE}/inbox"' in digest.html
    area = "Buurt" if language == "nl" else "Neighbourhood"
    assert digest.text.count("• ") == 3 and digest.text.count(f"{area}: BU03630001") == 3
    assert INITIATIVE_TITLE in digest.text and digest.text.count("https://") == 3 + 2  # each link, inbox, settings
    for href, _ in html.buttons:
        assert href in digest.text


def test_the_button_text_contrasts_with_the_municipalitys_colour():
    assert Municipality("Gemeente", "#FFDD00").text_colour == "#000000"
    assert Municipality("Gemeente", "#01689B").text_colour == "#FFFFFF"
    assert Municipality("Gemeente", "#EC0000").text_colour == "#FFFFFF"


def test_a_logo_replaces_the_name_at_the_top():
    logo = Municipality("Gemeente Utrecht", "#CC0000", "https://www.utrecht.nl/logo.png")
    message = render("new_supporter", "nl", stored(i.InitiativeSupported, "new_supporter"), BASE, logo)
    assert '<img src="https://www.utrecht.nl/logo.png" alt="Gemeente Utrecht"' in message.html


@pytest.mark.parametrize(
    "setting, value",
    [
        ("public_base_url", "/relative"),
        ("public_base_url", "portal.gemeente.example"),
        ("public_base_url", "ftp://portal.gemeente.example"),
        ("municipality_logo_url", "/logo.png"),
        ("municipality_primary_colour", "red"),
        ("municipality_primary_colour", "#12345"),
        ("municipality_name", "Gemeente\nBcc: x@example.nl"),
    ],
)
def test_settings_that_would_make_a_link_relative_or_a_colour_or_name_unsafe_are_refused(setting, value):
    with pytest.raises(ValidationError) as refused:
        NotificationsSettings(database_url="postgresql://x", **{setting: value})
    assert setting in str(refused.value)


def test_the_portal_base_url_is_kept_without_a_trailing_slash():
    settings = NotificationsSettings(database_url="postgresql://x", public_base_url="https://portal.example/")
    assert settings.public_base_url == "https://portal.example"
