"""HTTP API of asking neighbours: offers (`/api/v1/offers/me`), help requests of an initiative
(`/api/v1/initiatives/{id}/help-requests`), asks and their answers (`/api/v1/asks/{id}`) and what officials see
(`/api/v1/areas/{code}/help-statistics`). Translators only (see `service.help`).

Repeating is safe without an Idempotency-Key: putting the same offer again leaves it as it is, withdrawing again
finds nothing, the same answer again replays it. Making a help request again makes a second request; the initiators
see both and nobody is asked twice for one initiative's request by the same pass, which is why a retry is left to
the initiators (they see their requests).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, Field, StrictInt

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_contracts.refusals import NotFound
from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Moment, Strict, Text

from ..adapters.help import Helper, Statistics
from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.help import Answer, Offer, Reach, Rules
from ..service import help

offers_router = APIRouter(prefix="/api/v1/offers", tags=["offers"])
requests_router = APIRouter(prefix="/api/v1/initiatives", tags=["help requests"])
asks_router = APIRouter(prefix="/api/v1/asks", tags=["asks"])
statistics_router = APIRouter(prefix="/api/v1/areas", tags=["help statistics"])

Tag = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$", examples=["klussen"])]


class OfferIn(Strict):
    tags: list[Tag] = Field(min_length=1, max_length=20, description="From the municipality's list (`GET .../tags`)")
    hours_per_month: StrictInt = Field(ge=1, le=200)
    reach: Reach = Field(description="buurt: only your own buurt; wijk: the whole wijk your buurt lies in")
    max_asks_per_month: StrictInt = Field(ge=1, le=31, description="How often you may be asked at most per month")
    introduction: Text = Field(
        "", max_length=1000, description="What the initiators see of you when you say yes (e.g. how to reach you)"
    )


class OfferOut(BaseModel):
    tags: list[str]
    hours_per_month: int
    reach: Reach
    home_buurt: str
    max_asks_per_month: int
    introduction: str
    updated_at: datetime

    @classmethod
    def of(cls, offer: Offer) -> OfferOut:
        assert offer.updated_at is not None
        return cls(
            tags=sorted(offer.tags),
            hours_per_month=offer.hours_per_month,
            reach=offer.reach,
            home_buurt=offer.home_buurt,
            max_asks_per_month=offer.max_asks_per_month,
            introduction=offer.introduction,
            updated_at=offer.updated_at,
        )


class Tags(BaseModel):
    tags: list[str] = Field(description="What residents may offer and initiatives may ask for")


class NewHelpRequest(Strict):
    tags: list[Tag] = Field(min_length=1, max_length=20)
    description: Text = Field(min_length=1, max_length=2000, description="What the help is for")
    hours_per_person: StrictInt = Field(ge=1, le=200)
    people_needed: StrictInt = Field(ge=1, le=100)
    needed_at: Moment | None = Field(None, description="From when the help is needed, if it matters")


class HelperOut(BaseModel):
    resident_id: str
    introduction: str = Field(description="What they chose to share when they said yes")
    accepted_at: datetime

    @classmethod
    def of(cls, helper: Helper) -> HelperOut:
        return cls(resident_id=helper.resident_id, introduction=helper.introduction, accepted_at=helper.accepted_at)


class HelpRequestOut(BaseModel):
    """A request as its initiators see it: how many said yes and who; never who was asked or said no."""

    id: uuid.UUID
    initiative_id: uuid.UUID
    area_code: str
    tags: list[str]
    description: str
    hours_per_person: int
    people_needed: int
    needed_at: datetime | None
    status: str = Field(description="open, or filled once enough neighbours said yes")
    accepted_count: int
    helpers: list[HelperOut]
    created_at: datetime

    @classmethod
    def of(cls, view: help.RequestView) -> HelpRequestOut:
        r = view.request
        return cls(
            id=r.id,
            initiative_id=r.initiative_id,
            area_code=r.area_code,
            tags=r.tags,
            description=r.description,
            hours_per_person=r.hours_per_person,
            people_needed=r.people_needed,
            needed_at=r.needed_at,
            status=r.status,
            accepted_count=r.accepted,
            helpers=[HelperOut.of(helper) for helper in view.helpers],
            created_at=r.created_at,
        )


class AnswerIn(Strict):
    answer: Answer = Field(description='yes: "Ja, ik help mee"; no: "Nee, deze keer niet"')
    introduction: Text | None = Field(
        None, max_length=1000, description="With a yes: what the initiators see of you (default: your offer's)"
    )


class AskOut(BaseModel):
    """An ask as the asked resident sees it."""

    id: uuid.UUID
    initiative_id: uuid.UUID
    title: str
    help_request_id: uuid.UUID
    tags: list[str]
    description: str
    hours_per_person: int
    needed_at: datetime | None
    status: str = Field(description="open; yes or no once answered; lapsed (the request filled) or withdrawn")
    asked_at: datetime
    answered_at: datetime | None

    @classmethod
    def of(cls, view: help.AskView) -> AskOut:
        return cls(
            id=view.ask.id,
            initiative_id=view.ask.initiative_id,
            title=view.title,
            help_request_id=view.request.id,
            tags=view.request.tags,
            description=view.request.description,
            hours_per_person=view.request.hours_per_person,
            needed_at=view.request.needed_at,
            status=view.ask.status,
            asked_at=view.ask.asked_at,
            answered_at=view.ask.answered_at,
        )


class HelpStatistics(BaseModel):
    """Counts for the area and every area in it; no names."""

    area_code: str
    offers: int = Field(description="Residents of the area who offer help")
    offers_by_tag: dict[str, int]
    requests_open: int
    requests_filled: int
    asks_sent: int
    asks_answered: int
    asks_accepted: int
    asks_declined: int

    @classmethod
    def of(cls, area_code: str, stats: Statistics) -> HelpStatistics:
        return cls(area_code=area_code, **stats.__dict__)


def _unit_of_work(request: Request) -> InitiativesUnitOfWork:
    return request.app.state.service.unit_of_work()


def _rules(request: Request) -> Rules:
    return request.app.state.help_rules


def _now() -> datetime:
    return datetime.now(UTC)


# -- offers -----------------------------------------------------------------------------------------------------------
@offers_router.get("/tags", summary="The municipality's list of what residents may offer")
async def offer_tags(caller: Caller, request: Request) -> Tags:
    return Tags(tags=list(_rules(request).tags))


@offers_router.get("/me", summary="Your offer of help, if you made one")
async def get_offer(caller: Caller, request: Request) -> OfferOut:
    async with _unit_of_work(request) as uow:
        offer = await uow.help.offer_of(caller.subject)
    if offer is None:
        raise NotFound("your offer: you have not offered help")
    return OfferOut.of(offer)


@offers_router.put("/me", summary="Say what you could help with (replaces your offer)")
async def put_offer(body: OfferIn, caller: Caller, request: Request) -> OfferOut:
    async with _unit_of_work(request) as uow:
        offer = await help.put_offer(
            uow,
            caller,
            tags=body.tags,
            hours_per_month=body.hours_per_month,
            reach=body.reach,
            max_asks_per_month=body.max_asks_per_month,
            introduction=body.introduction,
            rules=_rules(request),
            now=_now(),
        )
        await uow.commit()
    return OfferOut.of(offer)


@offers_router.delete(
    "/me", status_code=204, summary="Withdraw your offer (your unanswered asks are withdrawn with it)"
)
async def withdraw_offer(caller: Caller, request: Request) -> Response:
    async with _unit_of_work(request) as uow:
        await help.withdraw_offer(uow, caller, _now())
        await uow.commit()
    return Response(status_code=204)


# -- help requests ------------------------------------------------------------------------------------------------
@requests_router.post(
    "/{initiative_id}/help-requests",
    status_code=201,
    summary="The initiators ask for help; fitting neighbours are asked personally",
)
async def request_help(
    initiative_id: uuid.UUID, body: NewHelpRequest, caller: Caller, request: Request, response: Response
) -> HelpRequestOut:
    async with _unit_of_work(request) as uow:
        view = await help.request_help(
            uow,
            caller,
            initiative_id,
            tags=body.tags,
            description=body.description,
            hours_per_person=body.hours_per_person,
            people_needed=body.people_needed,
            needed_at=body.needed_at,
            rules=_rules(request),
            now=_now(),
        )
        await uow.commit()
    response.headers["Location"] = f"{requests_router.prefix}/{initiative_id}/help-requests"
    return HelpRequestOut.of(view)


@requests_router.get(
    "/{initiative_id}/help-requests", summary="The initiative's help requests and who said yes (its initiators)"
)
async def list_help_requests(initiative_id: uuid.UUID, caller: Caller, request: Request) -> list[HelpRequestOut]:
    async with _unit_of_work(request) as uow:
        views = await help.help_requests(uow, caller, initiative_id)
    return [HelpRequestOut.of(view) for view in views]


# -- asks -------------------------------------------------------------------------------------------------------------
@asks_router.get("/{ask_id}", summary="An ask you received (only you see it)")
async def get_ask(ask_id: uuid.UUID, caller: Caller, request: Request) -> AskOut:
    async with _unit_of_work(request) as uow:
        view = await help.ask_of(uow, caller, ask_id)
    return AskOut.of(view)


@asks_router.post("/{ask_id}/answer", summary='Answer an ask: "Ja, ik help mee" or "Nee, deze keer niet"')
async def answer_ask(ask_id: uuid.UUID, body: AnswerIn, caller: Caller, request: Request) -> AskOut:
    async with _unit_of_work(request) as uow:
        before = await uow.help.offer_of(caller.subject)
        introduction = body.introduction if body.introduction is not None else (before.introduction if before else "")
        view = await help.answer(uow, caller, ask_id, body.answer, introduction, _now())
        await uow.commit()
    if not view.replayed:
        outcome = "accepted" if body.answer is Answer.YES else "declined"
        asks_counter(request.app.state.service.metrics.registry).labels(outcome).inc()
    return AskOut.of(view)


# -- what officials see -------------------------------------------------------------------------------------------
@statistics_router.get(
    "/{area_code}/help-statistics", summary="How asking works in an area: counts only (officials of the area)"
)
async def help_statistics(area_code: Annotated[AreaCode, Path()], caller: Caller, request: Request) -> HelpStatistics:
    async with _unit_of_work(request) as uow:
        stats = await help.statistics(uow, caller, area_code)
    return HelpStatistics.of(area_code, stats)


# -- the metric ---------------------------------------------------------------------------------------------------
_COUNTERS: dict[int, Counter] = {}
OUTCOMES = ("sent", "accepted", "declined")


def asks_counter(registry: CollectorRegistry) -> Counter:
    """`buurtkracht_help_asks_total{outcome}`: asks sent, and answers by outcome (answered = accepted + declined)."""
    if id(registry) not in _COUNTERS:
        counter = Counter(
            "buurtkracht_help_asks_total", "Asks sent and answered, by outcome", ["outcome"], registry=registry
        )
        for outcome in OUTCOMES:
            counter.labels(outcome)
        _COUNTERS[id(registry)] = counter
    return _COUNTERS[id(registry)]
