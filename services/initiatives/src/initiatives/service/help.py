"""Asking neighbours, one function per command, and the asking pass (`ask_neighbours`).

- An offer is the resident's own: they put it, read it and withdraw it; withdrawing withdraws their unanswered asks
  too, so a withdrawn offer is never asked again and its asks hold no place in any request.
- A help request is made by an initiator of an initiative open for volunteers; it is told as `HelpRequested`.
- The pass (one at a time: `take_turn`) plans who to ask with `domain.help.plan` and stores each ask with its
  `NeighbourAsked` in one transaction (the outbox), so an ask is never told without being stored, nor twice.
- Only the asked resident answers their ask. A yes makes them a volunteer of the initiative exactly as "ik doe mee"
  does (`VolunteerJoined`, unless they already volunteer), then `HelpAccepted`; the yes that fills the request also
  records `HelpRequestFilled`, and its unanswered asks lapse. A no is `HelpDeclined`. The same answer again
  replays (nothing changes); another answer to an answered ask, or any answer to an ask that lapsed or was
  withdrawn, is refused.
- Initiators see their requests and who said yes (with what those residents chose to share), never who was asked
  or said no; officials see counts only.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts.areas import enclosing
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.help import Helper, Statistics, StoredAsk, StoredRequest
from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.help import LIMIT_WINDOW, Answer, HelpRequest, Offer, Reach, Rules, filled, home_buurt_of, plan
from ..domain.model import OPEN_FOR_VOLUNTEERS, IllegalTransition, Initiative
from . import commands

logger = logging.getLogger(__name__)


class AskClosed(Conflict):
    """The ask can no longer be answered: its request filled, or the resident withdrew their offer."""

    kind = "ask-closed"


# -- offers ---------------------------------------------------------------------------------------------------------
async def put_offer(
    uow: InitiativesUnitOfWork,
    actor: Principal,
    *,
    tags: list[str],
    hours_per_month: int,
    reach: Reach,
    max_asks_per_month: int,
    introduction: str,
    rules: Rules,
    now: datetime,
) -> Offer:
    """A resident says what they could help with, in their own buurt or its whole wijk (their sign-in's buurt)."""
    if not actor.has(Role.RESIDENT):
        raise NotAllowed("only residents offer help")
    home = home_buurt_of(actor.areas)
    if home is None:
        raise NotAllowed("your sign-in names no buurt you live in")
    offer = Offer(
        resident_id=actor.subject,
        home_buurt=home,
        reach=reach,
        tags=frozenset(rules.check_tags(tags)),
        hours_per_month=hours_per_month,
        max_asks_per_month=max_asks_per_month,
        introduction=introduction,
        updated_at=now,
    )
    await uow.help.put_offer(offer)
    return offer


async def withdraw_offer(uow: InitiativesUnitOfWork, actor: Principal, now: datetime) -> bool:
    """The offer is gone, and its unanswered asks with it; whether there was one. Waits for an asking pass that runs,
    so the asks it stores are withdrawn too, and no later pass sees the offer."""
    await uow.help.wait_for_turn()
    existed = await uow.help.delete_offer(actor.subject)
    withdrawn = await uow.help.withdraw_open_asks(actor.subject, now)
    if withdrawn:
        logger.info("offer withdrawn with %d unanswered asks", withdrawn)
    return existed


# -- help requests ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RequestView:
    request: StoredRequest
    helpers: list[Helper]


async def request_help(
    uow: InitiativesUnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    *,
    tags: list[str],
    description: str,
    hours_per_person: int,
    people_needed: int,
    needed_at: datetime | None,
    rules: Rules,
    now: datetime,
) -> RequestView:
    initiative = await commands.load_for_update(uow, initiative_id)
    if not initiative.is_initiator(actor.subject):
        raise NotAllowed("only the initiators ask for help with their initiative")
    if initiative.status not in OPEN_FOR_VOLUNTEERS:
        raise IllegalTransition("ask for help with", initiative.status)
    if needed_at is not None and needed_at <= now:
        raise InvalidInput("must lie in the future", field="needed_at")
    request = HelpRequest(
        id=uuid.uuid4(),
        initiative_id=initiative.id,
        area_code=initiative.area_code,
        tags=frozenset(rules.check_tags(tags)),
        description=description,
        hours_per_person=hours_per_person,
        people_needed=people_needed,
        created_at=now,
        needed_at=needed_at,
    )
    await uow.help.add_request(request, actor.subject)
    uow.record(
        events.HelpRequested(
            **_facts(initiative),
            help_request_id=request.id,
            tags=sorted(request.tags),
            description=description,
            hours_per_person=hours_per_person,
            people_needed=people_needed,
            needed_at=needed_at,
            requested_by=actor.subject,
        )
    )
    stored = await uow.help.request(request.id)
    assert stored is not None
    return RequestView(stored, [])


async def help_requests(uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID) -> list[RequestView]:
    """The initiative's requests with who said yes: for its initiators only."""
    initiative = await uow.initiatives.get(initiative_id)
    if initiative is None:
        raise NotFound(f"initiative {initiative_id}")
    if not initiative.is_initiator(actor.subject):
        raise NotAllowed("only the initiators see their initiative's help requests")
    requests = await uow.help.requests_of(initiative_id)
    helpers = await uow.help.helpers([request.id for request in requests])
    return [RequestView(request, helpers[request.id]) for request in requests]


# -- asks -------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AskView:
    """An ask as the asked resident sees it: what is asked, for which initiative, and their answer."""

    ask: StoredAsk
    request: StoredRequest
    title: str
    replayed: bool = False  # the same answer came again: nothing changed


async def ask_of(uow: InitiativesUnitOfWork, actor: Principal, ask_id: uuid.UUID) -> AskView:
    """Only the asked resident sees their ask; for anyone else it does not exist."""
    ask = await uow.help.ask(ask_id)
    if ask is None or ask.resident_id != actor.subject:
        raise NotFound(f"ask {ask_id}")
    return await _view(uow, ask)


async def _view(uow: InitiativesUnitOfWork, ask: StoredAsk, replayed: bool = False) -> AskView:
    request = await uow.help.request(ask.help_request_id)
    facts = await uow.help.initiative_facts([ask.initiative_id])
    assert request is not None
    return AskView(ask, request, facts[ask.initiative_id].title, replayed)


async def answer(
    uow: InitiativesUnitOfWork, actor: Principal, ask_id: uuid.UUID, given: Answer, introduction: str, now: datetime
) -> AskView:
    """The asked resident answers (see the module docstring). The initiative is locked first, then the request, then
    the ask, as every command that touches them locks."""
    found = await uow.help.ask(ask_id)
    if found is None or found.resident_id != actor.subject:
        raise NotFound(f"ask {ask_id}")
    initiative = await commands.load_for_update(uow, found.initiative_id)
    request = await uow.help.request(found.help_request_id, for_update=True)
    ask = await uow.help.ask(ask_id, for_update=True)
    assert request is not None and ask is not None
    if ask.status == given.value:
        return await _view(uow, ask, replayed=True)  # the same answer again: nothing changes
    if ask.status in (Answer.YES, Answer.NO):
        raise Conflict(f"you already answered {ask.status} to this ask")
    if ask.status != "open":
        raise AskClosed(
            "this ask is closed: "
            + ("enough neighbours said yes" if ask.status == "lapsed" else "you withdrew your offer")
        )
    facts = _facts(initiative)
    if given is Answer.NO:
        await uow.help.answer(ask_id, Answer.NO.value, now)
        uow.record(events.HelpDeclined(**facts, help_request_id=request.id, ask_id=ask_id, resident_id=actor.subject))
    else:
        already = await uow.initiatives.volunteers_with(initiative.id, actor.subject)
        if not already:
            initiative.join_as_volunteer(actor.subject, False)
            await uow.initiatives.add_volunteer(initiative.id, actor.subject, introduction, now)
            await commands.save(uow, initiative)
        accepted = request.accepted + 1
        done = filled(request.people_needed, accepted)
        await uow.help.answer(ask_id, Answer.YES.value, now)
        await uow.help.record_answer(request.id, accepted, now if done else None)
        uow.record(
            events.HelpAccepted(
                **facts, help_request_id=request.id, ask_id=ask_id, resident_id=actor.subject, accepted_count=accepted
            )
        )
        if done:
            uow.record(
                events.HelpRequestFilled(
                    **facts, help_request_id=request.id, people_needed=request.people_needed, accepted_count=accepted
                )
            )
    answered = await uow.help.ask(ask_id)
    assert answered is not None
    return await _view(uow, answered)


# -- the asking pass --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Pass:
    requests: int  # requests that still missed people
    asked: int  # asks sent
    following: tuple[datetime, uuid.UUID] | None  # where the next batch starts; None after the last


async def ask_neighbours(
    uow: InitiativesUnitOfWork,
    rules: Rules,
    now: datetime,
    batch: int,
    after: tuple[datetime, uuid.UUID] | None = None,
) -> Pass | None:
    """One transaction of the asking pass over at most `batch` open requests (after `after`); None when another
    pass holds the turn. The caller commits."""
    if not await uow.help.take_turn():
        return None
    requests, following = await uow.help.open_requests(
        now, now - rules.ask_waits, sorted(status.value for status in OPEN_FOR_VOLUNTEERS), batch, after
    )
    if not requests:
        return Pass(0, 0, following)
    areas = sorted({area for request in requests for area in _reach_areas(request.area_code)})
    tags = sorted({tag for request in requests for tag in request.tags})
    offers = await uow.help.offers_reaching(areas, tags)
    histories = await uow.help.histories(sorted({offer.resident_id for offer in offers}), now - LIMIT_WINDOW)
    planned = plan(requests, offers, histories, now, rules)
    facts = await uow.help.initiative_facts(sorted({request.initiative_id for request in requests}))
    asks = []
    for planned_ask in planned:
        request = planned_ask.request
        ask_id = uuid.uuid4()
        asks.append((ask_id, request.id, planned_ask.resident_id, request.area_code, now))
        about = facts[request.initiative_id]
        uow.record(
            events.NeighbourAsked(
                initiative_id=about.id,
                area_code=about.area_code,
                title=about.title,
                initiators=about.initiators,
                help_request_id=request.id,
                ask_id=ask_id,
                resident_id=planned_ask.resident_id,
                tags=sorted(request.tags),
                description=request.description,
                hours_per_person=request.hours_per_person,
                needed_at=request.needed_at,
            )
        )
    await uow.help.add_asks(asks)
    return Pass(len(requests), len(asks), following)


def _reach_areas(area_code: str) -> list[str]:
    """The reach areas an offer needs for a request of `area_code` to lie within it: the area and what encloses it."""
    return enclosing(area_code)


async def statistics(uow: InitiativesUnitOfWork, actor: Principal, area_code: str) -> Statistics:
    if not actor.has(Role.OFFICIAL) or not actor.acts_for(area_code):
        raise NotAllowed(f"only an official responsible for {area_code} sees its help statistics")
    return await uow.help.statistics(area_code)


def _facts(initiative: Initiative) -> dict[str, object]:
    return {
        "initiative_id": initiative.id,
        "area_code": initiative.area_code,
        "title": initiative.title,
        "initiators": initiative.initiators,
    }
