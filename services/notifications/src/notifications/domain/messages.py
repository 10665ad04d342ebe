"""Messages in Dutch (the default) and English: a catalogue per language (`templates/<lang>.toml`, one
section per kind with a Jinja2 `subject` and `body`), wrapped in an HTML and a plain-text layout.

Rendering is strict: a template that uses a missing value fails loudly instead of sending "None". What a template
uses is known before rendering (`template_fields`), so a stored message keeps only that.
"""

from __future__ import annotations

import tomllib
import unicodedata
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, meta

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str


def euro(cents: int, language: str = "nl") -> str:
    """Integer cents as euros, the Dutch way (€ 1.234,50) or the English way (€1,234.50)."""
    whole, rest = divmod(abs(int(cents)), 100)
    sign = "-" if cents < 0 else ""
    if language == "nl":
        return f"{sign}€ {whole:,}".replace(",", ".") + f",{rest:02d}"
    return f"{sign}€{whole:,}.{rest:02d}"


@cache
def catalogue(language: str) -> dict[str, dict[str, str]]:
    return tomllib.loads((TEMPLATES / f"{language}.toml").read_text(encoding="utf-8"))


@cache
def _environment(autoescape: bool) -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
        autoescape=autoescape,
    )
    environment.filters["euro"] = euro
    return environment


CONTEXT = frozenset({"lang", "base_url"})  # what rendering adds to a message's own values


@cache
def template_fields(kind: str) -> frozenset[str]:
    """The values the subject and body of a message of `kind` use, in any language (the names at the top: a
    template reading `summary.awarded_cents` uses `summary`)."""
    used: set[str] = set()
    for language in LANGUAGES:
        entry = catalogue(language).get(kind, {})
        for part in ("subject", "body"):
            if part in entry:
                used |= meta.find_undeclared_variables(_environment(False).parse(entry[part]))
    return frozenset(used - CONTEXT)


def _render(source: str, values: dict[str, Any], autoescape: bool = False) -> str:
    return _environment(autoescape).from_string(source).render(**values)


def render_parts(kind: str, language: str, values: dict[str, Any], base_url: str) -> tuple[str, str]:
    """The subject and plain body of one message."""
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    entry = catalogue(language)[kind]
    context = values | {"lang": language, "base_url": base_url}
    return one_line(_render(entry["subject"], context)), _render(entry["body"], context).strip()


def one_line(text: str) -> str:
    """A subject is one line: every run of whitespace (line and paragraph separators, tabs, vertical tabs
    included) becomes one space and other control characters go, whatever a title held."""
    return " ".join("".join(c for c in text if c.isspace() or unicodedata.category(c) != "Cc").split())


def _framed(subject: str, body: str, language: str, base_url: str) -> Message:
    layout = catalogue(language)["_layout"]
    frame = {
        "subject": subject,
        "body": body,
        "greeting": layout["greeting"],
        "footer": layout["footer"],
        "lang": language,
        "base_url": base_url,
    }
    text = _environment(False).get_template("layout.txt.j2").render(**frame)
    html = _environment(True).get_template("layout.html.j2").render(**frame)
    return Message(subject, text, html)


def render(kind: str, language: str, values: dict[str, Any], base_url: str) -> Message:
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    subject, body = render_parts(kind, language, values, base_url)
    return _framed(subject, body, language, base_url)


def render_digest(items: list[tuple[str, dict[str, Any]]], language: str, base_url: str) -> Message:
    """One message for a period's worth of notifications (never called with none)."""
    if not items:
        raise ValueError("a digest is never empty")
    language = language if language in LANGUAGES else DEFAULT_LANGUAGE
    parts = [render_parts(kind, language, values, base_url) for kind, values in items]
    subject = one_line(_render(catalogue(language)["_layout"]["digest_subject"], {"count": len(parts)}))
    body = "\n\n".join(f"• {part_subject}\n{part_body}" for part_subject, part_body in parts)
    return _framed(subject, body, language, base_url)
