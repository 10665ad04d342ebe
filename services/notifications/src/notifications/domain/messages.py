"""Messages in Dutch (the default) and English: a catalogue per language (`templates/<lang>.toml`, one
section per kind with a Jinja2 `subject`, `body` and `action`, the words of its one call to action), wrapped in an
HTML and a plain-text layout that carry the municipality's name and colour.

Every message says what it is about (the initiative's title, the budget round, the area as `area_label` names it
from the area names the caller gives)
and opens one portal page (`pages.PAGE_OF_KIND`) by an absolute link: a button in the HTML part, the address in
the plain-text part. The HTML part is table-based with its CSS inlined (`css-inline`): mail clients drop
`<style>`, and none is left.

Rendering is strict: a template that uses a missing value fails loudly instead of sending "None". What a message
uses is known before rendering (`template_fields`), so a stored message keeps only that. What it is about is shown
when known: a message stored before messages named their round or area still renders.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, meta, pass_context
from jinja2.runtime import Context

from . import areas
from .pages import INBOX, SETTINGS, link, page_fields, path

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
PREHEADER_LENGTH = 140


@dataclass(frozen=True)
class Municipality:
    """Whose messages these are: the municipality's name, its primary colour (`#RRGGBB`, checked by the settings)
    and, if it has one, the absolute URL of its logo."""

    name: str = "Buurtkracht"
    primary_colour: str = "#01689B"
    logo_url: str | None = None

    @property
    def text_colour(self) -> str:
        """Black or white, whichever contrasts more with the primary colour (WCAG relative luminance)."""
        red, green, blue = (int(self.primary_colour[i : i + 2], 16) / 255 for i in (1, 3, 5))

        def linear(c: float) -> float:
            return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

        luminance = 0.2126 * linear(red) + 0.7152 * linear(green) + 0.0722 * linear(blue)
        return "#000000" if (luminance + 0.05) / 0.05 > 1.05 / (luminance + 0.05) else "#FFFFFF"


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Part:
    """One notification as a message shows it: its subject, its paragraphs, what it is about (label, name), and
    its call to action."""

    subject: str
    paragraphs: tuple[str, ...]
    about: tuple[tuple[str, str], ...]
    action: str
    url: str


def euro(cents: int, language: str = "nl") -> str:
    """Integer cents as euros, the Dutch way (€ 1.234,50) or the English way (€1,234.50)."""
    whole, rest = divmod(abs(int(cents)), 100)
    sign = "-" if cents < 0 else ""
    if language == "nl":
        return f"{sign}€ {whole:,}".replace(",", ".") + f",{rest:02d}"
    return f"{sign}€{whole:,}.{rest:02d}"


def named(title: str, otherwise: str) -> str:
    """A title in quotes, or `otherwise` when it is not known (empty)."""
    return f"'{title}'" if title else otherwise


@cache
def catalogue(language: str) -> dict[str, dict[str, Any]]:
    return tomllib.loads((TEMPLATES / f"{language}.toml").read_text(encoding="utf-8"))


@pass_context
def _area(context: Context, code: str) -> str:
    return areas.area_label(code, context.get(AREA_NAMES))


@cache
def _environment(autoescape: bool) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )
    environment.filters["euro"] = euro
    environment.filters["area"] = _area  # looked up when used: one place names areas
    environment.filters["named"] = named
    return environment


AREA_NAMES = "area_names"  # the names of the areas a message is about, as this service knows them when it renders
CONTEXT = frozenset({"lang", "base_url", AREA_NAMES})  # what rendering adds to a message's own values
# What the layout shows a message is about, when the message holds it: the initiative's title (`title` in a message
# of an initiative's event, `initiative_title` where the service looked it up), the round's name (`name` in a
# round's own events, `round_name` looked up) and the area's code.
ABOUT = frozenset({"title", "initiative_title", "name", "round_name", "area_code"})
PARTS = ("subject", "body", "action")


@cache
def template_fields(kind: str) -> frozenset[str]:
    """The values a message of `kind` uses, in any language (the names at the top: a template reading
    `summary.awarded_cents` uses `summary`): its templates', its page's, and what it is about."""
    used: set[str] = set(page_fields(kind)) | ABOUT
    for language in LANGUAGES:
        entry = catalogue(language).get(kind, {})
        for part in PARTS:
            if part in entry:
                used |= meta.find_undeclared_variables(_environment(False).parse(entry[part]))
    return frozenset(used - CONTEXT)


def _render(source: str, values: dict[str, Any], autoescape: bool = False) -> str:
    return _environment(autoescape).from_string(source).render(**values)


def one_line(text: str) -> str:
    """A subject is one line: every run of whitespace (line and paragraph separators, tabs, vertical tabs
    included) becomes one space and other control characters go, whatever a title held."""
    return " ".join("".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc").split())


def _about(values: dict[str, Any], layout: dict[str, Any], names: areas.Names | None) -> tuple[tuple[str, str], ...]:
    facts = []
    if initiative := values.get("initiative_title") or values.get("title"):
        facts.append((layout["initiative"], one_line(str(initiative))))
    if round_name := values.get("round_name") or values.get("name"):
        facts.append((layout["round"], one_line(str(round_name))))
    if area := values.get("area_code"):
        facts.append((layout["area"][areas.area_level(str(area))], areas.area_label(str(area), names)))
    return tuple(facts)


def render_part(
    kind: str, language: str, values: dict[str, Any], base_url: str, area_names: areas.Names | None = None
) -> Part:
    """One notification in `language`: a KeyError when `kind` has no message or its page misses a value. Areas
    read as `area_names` names them."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    entry = catalogue(language)[kind]
    context = values | {"lang": language, "base_url": base_url, AREA_NAMES: area_names or {}}
    body = _render(entry["body"], context).strip()
    return Part(
        subject=one_line(_render(entry["subject"], context)),
        paragraphs=tuple(line.strip() for line in body.splitlines() if line.strip()),
        about=_about(values, catalogue(language)["_layout"], area_names),
        action=one_line(_render(entry["action"], context)),
        url=link(base_url, path(kind, values)),
    )


def _preheader(text: str) -> str:
    text = one_line(text)
    return text if len(text) <= PREHEADER_LENGTH else text[: PREHEADER_LENGTH - 1].rstrip() + "…"


_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False, keep_style_tags=False, keep_link_tags=False)


def _framed(
    subject: str,
    intro: str,
    parts: list[Part],
    language: str,
    base_url: str,
    municipality: Municipality,
    digest: bool,
) -> Message:
    layout = catalogue(language)["_layout"]
    frame = {
        "subject": subject,
        "intro": intro,
        "parts": parts,
        "digest": digest,
        "preheader": _preheader(
            " · ".join(part.subject for part in parts) if digest else (*parts[0].paragraphs, parts[0].subject)[0]
        ),
        "footer": layout["footer"],
        "settings_url": link(base_url, SETTINGS),
        "inbox": layout["inbox"],
        "inbox_url": link(base_url, INBOX),
        "lang": language,
        "municipality": municipality,
    }
    text = _environment(False).get_template("layout.txt.j2").render(**frame)
    html = _INLINER.inline(_environment(True).get_template("layout.html.j2").render(**frame))
    return Message(subject, text, html)


def render(
    kind: str,
    language: str,
    values: dict[str, Any],
    base_url: str,
    municipality: Municipality | None = None,
    area_names: areas.Names | None = None,
) -> Message:
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    part = render_part(kind, language, values, base_url, area_names)
    greeting = catalogue(language)["_layout"]["greeting"]
    return _framed(part.subject, greeting, [part], language, base_url, municipality or Municipality(), False)


def render_digest(
    items: list[tuple[str, dict[str, Any]]],
    language: str,
    base_url: str,
    municipality: Municipality | None = None,
    area_names: areas.Names | None = None,
) -> Message:
    """One message for a period's worth of notifications (never called with none), each with its own link."""
    if not items:
        raise ValueError("a digest is never empty")
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    parts = [render_part(kind, language, values, base_url, area_names) for kind, values in items]
    layout = catalogue(language)["_layout"]
    subject = one_line(_render(layout["digest_subject"], {"count": len(parts)}))
    intro = one_line(_render(layout["digest_intro"], {"count": len(parts)}))
    return _framed(subject, intro, parts, language, base_url, municipality or Municipality(), True)
