"""Offers, help requests and asking neighbours: the pure rules of who is asked for what ("omdat niemand mij heeft
gevraagd": most people who do not volunteer say nobody asked them).

An **offer** is a resident's own statement of what they could help with: tags from the municipality's list, hours per
month, where (their own buurt, or the whole wijk their buurt lies in) and how often they may be asked at most per
month. A **help request** of an initiative names tags, a description, hours per person, how many people and, if
it matters, from when.

Invariants `plan` protects, pass after pass (the caller hands it the state as stored, and stores what it returns):
- an offer fits a request when they share a tag, the offer's hours per month reach the request's hours per person,
  and the request's area lies within the offer's reach (its buurt, or its wijk); a wijk-wide request fits only those
  who offered the whole wijk;
- nobody is asked twice for one request, nobody is asked for their own initiative or one they already volunteer for,
  and nobody is asked more often than their limit in the `LIMIT_WINDOW` before the pass (the asks of this pass
  count too);
- a request is asked of as many residents as it still misses: people needed minus yeses minus asks still waiting for
  an answer (an ask waits `Rules.ask_waits` long; after that it no longer holds a place, though it may still be
  answered while the request is open); a filled request is asked of nobody;
- fairness: among those who fit, those never asked come first, then the least recently asked; whoever said no within
  `Rules.decline_rest` comes after everyone else who fits; ties break on a number made of the request's id and a
  CRC-32 of the resident's, so the order is fixed for a request yet no resident is always first. So nobody is asked
  again while someone who fits has not been asked (unless that someone is resting after a no);
- requests are planned oldest first, and each ask of the pass counts at once for the requests after it.
"""

from __future__ import annotations

import heapq
import uuid
import zlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from buurtkracht_contracts.areas import enclosing, within
from buurtkracht_contracts.refusals import InvalidInput

LIMIT_WINDOW = timedelta(days=30)  # "per month": the asks in the thirty days before the pass


class Reach(StrEnum):
    BUURT = "buurt"  # the resident's own buurt
    WIJK = "wijk"  # the whole wijk their buurt lies in


class Answer(StrEnum):
    YES = "yes"
    NO = "no"


@dataclass(frozen=True)
class Rules:
    """The municipality's settings for asking."""

    tags: tuple[str, ...] = (
        "koken",
        "klussen",
        "tuinieren",
        "computerhulp",
        "vervoer",
        "taal",
        "organiseren",
        "kinderactiviteiten",
    )
    ask_waits: timedelta = timedelta(days=7)
    decline_rest: timedelta = timedelta(days=30)

    def check_tags(self, tags: Iterable[str], field_name: str = "tags") -> tuple[str, ...]:
        """The tags, once each and sorted; a tag not on the municipality's list is refused."""
        chosen = sorted(set(tags))
        unknown = [tag for tag in chosen if tag not in self.tags]
        if unknown:
            raise InvalidInput(
                f"{', '.join(unknown)} is not on the municipality's list: {', '.join(self.tags)}", field=field_name
            )
        if not chosen:
            raise InvalidInput("name at least one tag", field=field_name)
        return tuple(chosen)


@dataclass(frozen=True)
class Offer:
    resident_id: str
    home_buurt: str
    reach: Reach
    tags: frozenset[str]
    hours_per_month: int
    max_asks_per_month: int
    introduction: str = ""  # what the resident shares with the initiators when they say yes
    updated_at: datetime | None = None

    @property
    def reach_area(self) -> str:
        """The area the resident helps in: their buurt, or the wijk it lies in."""
        if self.reach is Reach.BUURT:
            return self.home_buurt
        return next(code for code in enclosing(self.home_buurt) if code.startswith("WK"))


def home_buurt_of(areas: Iterable[str]) -> str | None:
    """A resident's home buurt from the areas their sign-in names (one buurt), if it names one."""
    buurten = sorted(code for code in areas if code.startswith("BU"))
    return buurten[0] if buurten else None


@dataclass(frozen=True)
class HelpRequest:
    id: uuid.UUID
    initiative_id: uuid.UUID
    area_code: str
    tags: frozenset[str]
    description: str
    hours_per_person: int
    people_needed: int
    created_at: datetime
    needed_at: datetime | None = None
    accepted: int = 0
    waiting: int = 0  # asks still holding a place (unanswered, asked within `ask_waits`)
    filled: bool = False
    not_to_ask: frozenset[str] = frozenset()  # its initiators, its volunteers, those already asked for it

    @property
    def missing(self) -> int:
        return 0 if self.filled else max(0, self.people_needed - self.accepted - self.waiting)


@dataclass
class History:
    """What asking did to one resident so far (all requests)."""

    asked_at: list[datetime] = field(default_factory=list)  # within the limit window
    last_asked: datetime | None = None
    last_declined: datetime | None = None

    def asks_within(self, now: datetime) -> int:
        return sum(1 for at in self.asked_at if at > now - LIMIT_WINDOW)


@dataclass(frozen=True)
class PlannedAsk:
    request: HelpRequest
    resident_id: str


def fits(offer: Offer, request: HelpRequest) -> bool:
    """Whether the offer fits the request by tags, hours and area (not yet whether its resident may be asked)."""
    return (
        bool(offer.tags & request.tags)
        and offer.hours_per_month >= request.hours_per_person
        and within(request.area_code, offer.reach_area)
    )


def _digest(resident_id: str) -> int:
    return zlib.crc32(resident_id.encode())


def _salt(request: HelpRequest) -> int:
    return request.id.int & 0xFFFFFFFF


NEVER_ASKED, ASKED_BEFORE, RESTING = 0, 1, 2


def order_key(
    request: HelpRequest, resident_id: str, history: History | None, now: datetime, rules: Rules
) -> tuple[int, float, int]:
    """Where the resident stands in the queue for `request` (smaller first): never asked, then asked before (least
    recently first), then resting after a recent no; ties break on the CRC-32 of the resident's id mixed with the
    request's id, a number fixed for (request, resident) that orders residents differently for every request."""
    tie = _digest(resident_id) ^ _salt(request)
    if history is None or history.last_asked is None:
        rank, last = NEVER_ASKED, 0.0
    else:
        rank, last = ASKED_BEFORE, history.last_asked.timestamp()
    if history is not None and history.last_declined is not None and history.last_declined > now - rules.decline_rest:
        rank = RESTING
    return (rank, last, tie)


def plan(
    requests: list[HelpRequest],
    offers: list[Offer],
    histories: dict[str, History],
    now: datetime,
    rules: Rules,
) -> list[PlannedAsk]:
    """Who to ask for which request in this pass (see the module's invariants). `histories` is updated with the
    asks planned, so the caller may plan again with it.

    Offers are indexed by (reach area, tag): a request's candidates are the offers of the areas enclosing its own
    and of its tags, so the area and tag parts of `fits` hold for every candidate by construction. Someone never
    asked is ordered by the tie-break alone, without building their whole `order_key`."""
    by_reach_and_tag: dict[tuple[str, str], list[tuple[Offer, int]]] = defaultdict(list)
    for offer in offers:
        digest = _digest(offer.resident_id)
        for tag in offer.tags:
            by_reach_and_tag[(offer.reach_area, tag)].append((offer, digest))
    planned: list[PlannedAsk] = []
    for request in sorted(requests, key=lambda r: (r.created_at, r.id)):
        wanted = request.missing
        if wanted <= 0 or (request.needed_at is not None and request.needed_at <= now):
            continue
        hours, not_to_ask, salt = request.hours_per_person, request.not_to_ask, _salt(request)
        queue: dict[str, tuple[tuple[int, float, int], Offer]] = {}
        for area in enclosing(request.area_code):
            for tag in request.tags:
                for offer, digest in by_reach_and_tag.get((area, tag), ()):
                    resident = offer.resident_id
                    if offer.hours_per_month < hours or resident in not_to_ask or resident in queue:
                        continue
                    history = histories.get(resident)
                    if history is None:
                        queue[resident] = ((NEVER_ASKED, 0.0, digest ^ salt), offer)
                    elif history.asks_within(now) < offer.max_asks_per_month:
                        queue[resident] = (order_key(request, resident, history, now, rules), offer)
        chosen = heapq.nsmallest(wanted, queue.values(), key=lambda entry: entry[0])
        for _, offer in chosen:
            history = histories.setdefault(offer.resident_id, History())
            history.asked_at.append(now)
            history.last_asked = now
            planned.append(PlannedAsk(request, offer.resident_id))
    return planned


def filled(people_needed: int, accepted: int) -> bool:
    return accepted >= people_needed
