"""The rules of the portal's pages that need no I/O: where a visitor may be sent after signing in, what a signed-in
person may see, and euros as people type them.

Invariants:
- `local_path` only ever gives a path on this portal (one leading slash, no scheme, no host, no backslash), so
  the `next` of a sign-in can never send a person to another site;
- amounts typed in euros become integer cents exactly, or are refused (never rounded).
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from buurtkracht_contracts.areas import within

RESIDENT, OFFICIAL, STEERING_GROUP = "resident", "official", "steering_group"

_LOCAL = re.compile(r"^/(?![/\\])[^\s\\]*$")


def local_path(candidate: str | None, fallback: str = "/") -> str:
    """`candidate` if it is a path on this site (`/rondes/...`), else `fallback`: no open redirect."""
    if candidate and len(candidate) <= 2000 and _LOCAL.match(candidate) and ":" not in candidate.split("?")[0]:
        return candidate
    return fallback


def cents_from_euros(typed: str) -> int:
    """`12`, `12,50`, `12.50` or `1.234,50` euros as cents; ValueError for anything else (or more than 2 decimals)."""
    text = typed.strip().replace("€", "").replace(" ", "")
    if re.fullmatch(r"\d{1,3}(\.\d{3})+(,\d{1,2})?", text):  # Dutch thousands separators
        text = text.replace(".", "")
    text = text.replace(",", ".")
    if not re.fullmatch(r"\d+(\.\d{1,2})?", text):
        raise ValueError(typed)
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation as error:  # pragma: no cover - the pattern above already refused it
        raise ValueError(typed) from error


def euros(cents: int | None) -> str:
    """Cents as euros the Dutch way: `€ 1.234,50`."""
    if cents is None:
        return "–"
    whole, part = divmod(abs(cents), 100)
    sign = "-" if cents < 0 else ""
    return f"{sign}€ {whole:,}".replace(",", ".") + f",{part:02d}"


def euro_input(cents: int | None) -> str:
    """Cents as a form field shows them, to be read back by `cents_from_euros`: `1234,50`."""
    if cents is None:
        return ""
    whole, part = divmod(cents, 100)
    return f"{whole},{part:02d}"


@dataclass(frozen=True)
class Visitor:
    """Who is looking at a page: signed in (with roles and areas from their access token) or not."""

    signed_in: bool = False
    display_name: str | None = None
    roles: frozenset[str] = field(default_factory=frozenset)
    areas: frozenset[str] = field(default_factory=frozenset)

    def has(self, role: str) -> bool:
        return self.signed_in and role in self.roles

    def lives_in(self, area_code: str) -> bool:
        """A resident whose home buurt lies in `area_code` (as the services decide)."""
        return self.has(RESIDENT) and any(within(home, area_code) for home in self.areas)

    def acts_for(self, area_code: str) -> bool:
        return any(within(area_code, area) for area in self.areas)


def signed(token: str, secret: str) -> str:
    """The cookie value for a session token: the token, and an HMAC of it when a secret is set."""
    if not secret:
        return token
    return f"{token}.{hmac.new(secret.encode(), token.encode(), hashlib.sha256).hexdigest()[:32]}"


def unsigned(value: str | None, secret: str) -> str | None:
    """The session token in a cookie value, if its signature holds (always, without a secret); else None."""
    if not value:
        return None
    if not secret:
        return value
    token, _, _ = value.rpartition(".")
    return token if token and hmac.compare_digest(signed(token, secret), value) else None
