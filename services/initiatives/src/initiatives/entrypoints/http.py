"""HTTP API of the initiatives service (`/api/v1/initiatives`): translates requests into commands.

Every command and every read runs in one unit of work the service builds (`Service.unit_of_work()`); a refused
command raises one of the contracts' refusals, which the kit answers as problem+json after the unit of work
rolled back.

Proposing an initiative takes an optional `Idempotency-Key` (`buurtkracht_kit.idempotency.once`): it creates a
new draft every time it runs, so a retry after a lost answer would propose twice; with a key, the draft and the
answer are stored in one transaction and a retry with the key replays the answer. Without a key it proposes as it
always did. The other commands are safe to repeat without one, because a repeat finds the effect of the first in
the state: a transition again (submit, review, withdraw, start, cancel, report) is refused as illegal from the new
status (409), supporting, volunteering, inviting or accepting again is refused as already done (409), withdrawing
support again is refused (409), and the same edit again leaves the draft as it is.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Path, Query, Request, Response
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_contracts.refusals import NotAllowed, NotFound
from buurtkracht_kit import idempotency
from buurtkracht_kit.auth import Caller, Principal, Role
from buurtkracht_kit.inputs import Line, ResidentId, Strict, Text
from buurtkracht_kit.paging import MAX_CENTS, Limit, Offset
from buurtkracht_kit.problems import Problem

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.model import BudgetLine, Category, Initiative, Rules, Spending, Status, Transition
from ..service import commands, privacy

router = APIRouter(prefix="/api/v1/initiatives", tags=["initiatives"])

IdempotencyKey = Annotated[
    Line | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="Optional: a retry with the same key replays the first answer instead of running again",
    ),
]


class BudgetLineIn(Strict):
    description: Line = Field(min_length=1, max_length=200)
    amount_cents: StrictInt = Field(gt=0, le=100_000_000)


class NewInitiative(Strict):
    title: Line = Field(min_length=3, max_length=120)
    summary: Text = Field(min_length=1, max_length=500)
    description: Text = Field(min_length=1, max_length=10_000)
    area_code: AreaCode = Field(examples=["BU03630001"])
    category: Category
    budget_lines: list[BudgetLineIn] = Field(min_length=1, max_length=50)
    volunteers_wanted: StrictInt = Field(0, ge=0, le=10_000)


class InitiativeChanges(Strict):
    title: Line | None = Field(None, min_length=3, max_length=120)
    summary: Text | None = Field(None, min_length=1, max_length=500)
    description: Text | None = Field(None, min_length=1, max_length=10_000)
    category: Category | None = None
    budget_lines: list[BudgetLineIn] | None = Field(None, min_length=1, max_length=50)
    volunteers_wanted: StrictInt | None = Field(None, ge=0, le=10_000)


class CoInitiator(Strict):
    resident_id: ResidentId


class VolunteerIn(Strict):
    offer: Text = Field(min_length=1, max_length=1000, description="What the resident can do")


class Review(Strict):
    decision: Literal["approve", "reject", "request_changes"]
    approved_amount_cents: StrictInt | None = Field(None, gt=0, le=MAX_CENTS, description="Required to approve")
    reason: Text | None = Field(None, max_length=2000, description="Required to reject")
    comment: Text | None = Field(None, max_length=2000, description="Required to request changes")


class Cancellation(Strict):
    reason: Text = Field(min_length=1, max_length=2000)


class SpendingIn(Strict):
    description: Line = Field(min_length=1, max_length=200, description="The budget line accounted for")
    spent_cents: StrictInt = Field(ge=0, le=MAX_CENTS)


class Report(Strict):
    what_was_done: Text = Field(min_length=1, max_length=10_000)
    spending: list[SpendingIn] = Field(min_length=1, max_length=50)


class TransitionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    from_status: Status | None
    to_status: Status
    actor_id: str
    note: str | None
    at: datetime


# The fields of InitiativeOut that are not the initiative's attribute of the same name: the open invitations
# depend on who asks, the report is made of two attributes, the history is read separately.
_NOT_ATTRIBUTES = {"invited_co_initiators", "report", "history"}


class InitiativeOut(BaseModel):
    id: uuid.UUID
    status: Status
    title: str
    summary: str
    description: str
    area_code: str
    category: Category
    owner_id: str
    co_initiators: list[str] = Field(description="The co-initiators who accepted their invitation")
    invited_co_initiators: list[str] = Field(
        description="Open invitations to co-initiate: every one for the initiators, only their own for an invited "
        "resident, none for anyone else"
    )
    budget_lines: list[BudgetLineIn]
    requested_amount_cents: int
    volunteers_wanted: int
    volunteer_count: int
    support_count: int
    support_threshold: int | None
    support_deadline: datetime | None
    approved_amount_cents: int | None
    awarded_amount_cents: int | None
    review_note: str | None
    report: Report | None = Field(None, description="The public account of what was done and spent")
    created_at: datetime
    history: list[TransitionOut] | None = None

    @classmethod
    def of(cls, initiative: Initiative, viewer: str, history: list[Transition] | None = None) -> InitiativeOut:
        """The initiative as `viewer` (a caller's subject) may see it."""
        shown = {name: getattr(initiative, name) for name in cls.model_fields.keys() - _NOT_ATTRIBUTES}
        invited = [
            resident
            for resident in initiative.invited_co_initiators
            if resident == viewer or initiative.is_initiator(viewer)
        ]
        report = None
        if initiative.what_was_done is not None and initiative.spending is not None:
            report = {"what_was_done": initiative.what_was_done, "spending": initiative.spending}
        return cls.model_validate(
            shown | {"invited_co_initiators": invited, "report": report, "history": history}, from_attributes=True
        )


class InitiativePage(BaseModel):
    items: list[InitiativeOut]
    total: int
    limit: int
    offset: int


class VolunteerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    resident_id: str
    offer: str
    joined_at: datetime


def _unit_of_work(request: Request) -> InitiativesUnitOfWork:
    return request.app.state.service.unit_of_work()


def _rules(request: Request) -> Rules:
    return request.app.state.rules


def _now() -> datetime:
    return datetime.now(UTC)


async def _run(
    request: Request,
    command: Callable[..., Awaitable[Initiative]],
    caller: Principal,
    *args: Any,
    **kwargs: Any,
) -> InitiativeOut:
    """Run `command` for `caller` in one unit of work; answer the initiative as the caller may see it."""
    async with _unit_of_work(request) as uow:
        initiative = await command(uow, caller, *args, **kwargs)
        await uow.commit()
    return InitiativeOut.of(initiative, caller.subject)


def _can_see(initiative: Initiative, caller: Principal) -> bool:
    """Drafts (and initiatives back with their initiators for changes) are seen by their initiators, the residents
    invited to co-initiate them, and the officials of their area."""
    if initiative.status not in {Status.DRAFT, Status.CHANGES_REQUESTED}:
        return True
    return (
        initiative.is_initiator(caller.subject)
        or caller.subject in initiative.invited_co_initiators
        or (caller.has(Role.OFFICIAL) and caller.acts_for(initiative.area_code))
    )


@router.post(
    "",
    status_code=201,
    summary="Propose an initiative (a draft only you see); with an Idempotency-Key a retry proposes it once",
)
async def create_initiative(
    body: NewInitiative,
    caller: Caller,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> InitiativeOut:
    async def command(uow: InitiativesUnitOfWork) -> InitiativeOut:
        initiative = await commands.create_draft(
            uow,
            caller,
            title=body.title,
            summary=body.summary,
            description=body.description,
            area_code=body.area_code,
            category=body.category,
            budget_lines=[BudgetLine(b.description, b.amount_cents) for b in body.budget_lines],
            volunteers_wanted=body.volunteers_wanted,
            rules=_rules(request),
            now=_now(),
        )
        return InitiativeOut.of(initiative, caller.subject)

    if idempotency_key is None:
        async with _unit_of_work(request) as uow:
            out = await command(uow)
            await uow.commit()
        response.headers["Location"] = f"{router.prefix}/{out.id}"
        return out
    fingerprint = idempotency.fingerprint(request.method, request.url.path, jsonable_encoder(body))
    answer = await idempotency.once(lambda: _unit_of_work(request), caller, idempotency_key, fingerprint, 201, command)
    answer.headers["Location"] = f"{router.prefix}/{json.loads(answer.body)['id']}"
    return answer  # type: ignore[return-value]


@router.get("", summary="Find initiatives by area, status and category")
async def list_initiatives(
    caller: Caller,
    request: Request,
    area_code: Annotated[AreaCode | None, Query()] = None,
    status: Status | None = None,
    category: Category | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> InitiativePage:
    official_areas = sorted(caller.areas) if caller.has(Role.OFFICIAL) else []
    async with _unit_of_work(request) as uow:
        page = await uow.initiatives.search(
            area_code=area_code,
            status=status,
            category=category,
            visible_to=caller.subject,
            official_areas=official_areas,
            limit=limit,
            offset=offset,
        )
    return InitiativePage(
        items=[InitiativeOut.of(i, caller.subject) for i in page.initiatives],
        total=page.total,
        limit=limit,
        offset=offset,
    )


@router.get("/{initiative_id}", summary="An initiative with its history of transitions")
async def get_initiative(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    async with _unit_of_work(request) as uow:
        initiative = await uow.initiatives.get(initiative_id)
        if initiative is None or not _can_see(initiative, caller):
            raise NotFound(f"initiative {initiative_id}")
        history = await uow.initiatives.history(initiative_id)
    return InitiativeOut.of(initiative, caller.subject, history)


@router.patch("/{initiative_id}", summary="Edit a draft, or an initiative with changes requested")
async def edit_initiative(
    initiative_id: uuid.UUID, body: InitiativeChanges, caller: Caller, request: Request
) -> InitiativeOut:
    changes: dict[str, object] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if value is None:
            raise Problem.invalid(name, "cannot be null")
        changes[name] = [BudgetLine(b.description, b.amount_cents) for b in value] if name == "budget_lines" else value
    if not changes:
        raise Problem.invalid("body", "name at least one field to change")
    return await _run(request, commands.edit, caller, initiative_id, _rules(request), **changes)


@router.post(
    "/{initiative_id}/co-initiators",
    summary="The owner invites a resident to co-initiate (they count as an initiator once they accept)",
)
async def invite_co_initiator(
    initiative_id: uuid.UUID, body: CoInitiator, caller: Caller, request: Request
) -> InitiativeOut:
    return await _run(request, commands.invite_co_initiator, caller, initiative_id, body.resident_id)


@router.post(
    "/{initiative_id}/co-initiators/{resident_id}/acceptance",
    summary="The invited resident accepts and joins as a co-initiator (their support, if any, ends)",
)
async def accept_co_initiator_invitation(
    initiative_id: uuid.UUID,
    resident_id: Annotated[ResidentId, Path()],
    caller: Caller,
    request: Request,
) -> InitiativeOut:
    return await _run(request, commands.accept_co_initiator_invitation, caller, initiative_id, resident_id)


@router.post("/{initiative_id}/submit", summary="Ask the neighbourhood for support")
async def submit(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.submit, caller, initiative_id, _rules(request), _now())


@router.post("/{initiative_id}/supports", status_code=201, summary="Support an initiative of your area")
async def support(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.support, caller, initiative_id, _now())


@router.delete("/{initiative_id}/supports", summary="Withdraw your support while it still counts")
async def withdraw_support(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.withdraw_support, caller, initiative_id, _now())


@router.post("/{initiative_id}/volunteers", status_code=201, summary='Sign up to help ("ik doe mee")')
async def volunteer(initiative_id: uuid.UUID, body: VolunteerIn, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.join_as_volunteer, caller, initiative_id, body.offer, _now())


@router.get("/{initiative_id}/volunteers", summary="Who signed up to help (initiators and officials of the area)")
async def list_volunteers(initiative_id: uuid.UUID, caller: Caller, request: Request) -> list[VolunteerOut]:
    async with _unit_of_work(request) as uow:
        initiative = await uow.initiatives.get(initiative_id)
        if initiative is None or not _can_see(initiative, caller):
            raise NotFound(f"initiative {initiative_id}")
        official = caller.has(Role.OFFICIAL) and caller.acts_for(initiative.area_code)
        if not (initiative.is_initiator(caller.subject) or official):
            raise NotAllowed("only the initiators and officials of the area see the volunteers")
        volunteers = await uow.initiatives.volunteers(initiative_id)
    return [VolunteerOut.model_validate(volunteer) for volunteer in volunteers]


@router.post("/{initiative_id}/review", summary="An official of the area approves, rejects or requests changes")
async def review(initiative_id: uuid.UUID, body: Review, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(
        request,
        commands.review,
        caller,
        initiative_id,
        decision=body.decision,
        now=_now(),
        approved_amount_cents=body.approved_amount_cents,
        reason=body.reason,
        comment=body.comment,
    )


@router.post("/{initiative_id}/withdraw", summary="The initiators withdraw the initiative")
async def withdraw(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.withdraw, caller, initiative_id, _now())


@router.post("/{initiative_id}/start", summary="The initiators start the funded initiative")
async def start(initiative_id: uuid.UUID, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.start, caller, initiative_id, _now())


@router.post("/{initiative_id}/cancel", summary="The initiators cancel a funded or running initiative")
async def cancel(initiative_id: uuid.UUID, body: Cancellation, caller: Caller, request: Request) -> InitiativeOut:
    return await _run(request, commands.cancel, caller, initiative_id, body.reason, _now())


@router.post("/{initiative_id}/report", summary="Report what was done and spent; completes the initiative")
async def report(initiative_id: uuid.UUID, body: Report, caller: Caller, request: Request) -> InitiativeOut:
    spending = [Spending(s.description, s.spent_cents) for s in body.spending]
    return await _run(request, commands.report, caller, initiative_id, body.what_was_done, spending, _now())


# -- what the service holds about the caller (AVG/GDPR article 15) ---------------------------------------------------

me_router = APIRouter(prefix="/api/v1/me", tags=["me"])


class SupportExport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    initiative_id: uuid.UUID
    title: str
    supported_at: datetime


class VolunteeringExport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    initiative_id: uuid.UUID
    title: str
    offer: str = Field(description="What you offered to do")
    joined_at: datetime


class TransitionExport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    initiative_id: uuid.UUID
    from_status: Status | None
    to_status: Status
    note: str | None
    at: datetime


class AskExport(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    initiative_id: uuid.UUID
    help_request_id: uuid.UUID
    status: str = Field(description="open, yes, no, lapsed (the request filled) or withdrawn (you withdrew your offer)")
    asked_at: datetime
    answered_at: datetime | None


class OfferExport(BaseModel):
    tags: list[str]
    hours_per_month: int
    reach: str
    home_buurt: str
    max_asks_per_month: int
    introduction: str
    updated_at: datetime | None


class PersonalDataExport(BaseModel):
    subject: str = Field(description="Your pseudonymous id: everything below is held about it")
    initiatives: list[InitiativeOut] = Field(
        description="The initiatives you own, co-initiate or are invited to co-initiate, oldest first"
    )
    supports: list[SupportExport] = Field(description="The initiatives you support")
    volunteering: list[VolunteeringExport] = Field(description="The initiatives you signed up to help")
    transitions: list[TransitionExport] = Field(
        description="The steps in initiatives' histories you made (a submission, a review, a support that reached "
        "the threshold, ...)"
    )
    offer: OfferExport | None = Field(None, description="What you offered to help with, if you did")
    asks: list[AskExport] = Field(
        default_factory=list, description="Every time you were asked to help, and your answer"
    )


@me_router.get("/export", summary="Everything this service holds about you (AVG/GDPR article 15)")
async def export_personal_data(caller: Caller, request: Request) -> PersonalDataExport:
    async with _unit_of_work(request) as uow:
        export = await privacy.export(uow, caller)
    return PersonalDataExport(
        subject=export.subject,
        initiatives=[InitiativeOut.of(initiative, caller.subject) for initiative in export.initiatives],
        supports=[SupportExport.model_validate(support) for support in export.supports],
        volunteering=[VolunteeringExport.model_validate(volunteering) for volunteering in export.volunteering],
        transitions=[TransitionExport.model_validate(made) for made in export.transitions],
        offer=None
        if export.offer is None
        else OfferExport(
            tags=sorted(export.offer.tags),
            hours_per_month=export.offer.hours_per_month,
            reach=export.offer.reach.value,
            home_buurt=export.offer.home_buurt,
            max_asks_per_month=export.offer.max_asks_per_month,
            introduction=export.offer.introduction,
            updated_at=export.offer.updated_at,
        ),
        asks=[AskExport.model_validate(ask) for ask in export.asks],
    )
