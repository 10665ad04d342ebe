"""HTTP API of the initiatives service (`/api/v1/initiatives`): translates requests into commands.

Every command runs in one unit of work; a refused command raises a domain error, which the app
answers as problem+json (see `problem_for`) after the unit of work rolled back.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictInt

from buurtkracht_kit.auth import Caller, Principal, Role
from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.problems import Problem

from ..adapters.repository import InitiativeRepository
from ..domain.model import (
    AlreadyDone,
    BudgetLine,
    Category,
    DomainError,
    IllegalTransition,
    Initiative,
    InvalidInput,
    NotAllowed,
    NotInvited,
    Rules,
    Spending,
    Status,
    Transition,
)
from ..service import commands
from ..service.commands import NotFound

router = APIRouter(prefix="/api/v1/initiatives", tags=["initiatives"])

AreaCode = Annotated[str, Field(pattern=r"^(GM\d{4}|WK\d{6}|BU\d{8})$", examples=["BU03630001"])]
ResidentId = Annotated[str, Field(min_length=1, max_length=100)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BudgetLineIn(Strict):
    description: str = Field(min_length=1, max_length=200)
    amount_cents: StrictInt = Field(gt=0, le=100_000_000)


class NewInitiative(Strict):
    title: str = Field(min_length=3, max_length=120)
    summary: str = Field(min_length=1, max_length=500)
    description: str = Field(min_length=1, max_length=10_000)
    area_code: AreaCode
    category: Category
    budget_lines: list[BudgetLineIn] = Field(min_length=1, max_length=50)
    volunteers_wanted: StrictInt = Field(0, ge=0, le=10_000)


class InitiativeChanges(Strict):
    title: str | None = Field(None, min_length=3, max_length=120)
    summary: str | None = Field(None, min_length=1, max_length=500)
    description: str | None = Field(None, min_length=1, max_length=10_000)
    category: Category | None = None
    budget_lines: list[BudgetLineIn] | None = Field(None, min_length=1, max_length=50)
    volunteers_wanted: StrictInt | None = Field(None, ge=0, le=10_000)


class CoInitiator(Strict):
    resident_id: ResidentId


class VolunteerIn(Strict):
    offer: str = Field(min_length=1, max_length=1000, description="What the resident can do")


class Review(Strict):
    decision: Literal["approve", "reject", "request_changes"]
    approved_amount_cents: StrictInt | None = Field(None, gt=0, description="Required to approve")
    reason: str | None = Field(None, max_length=2000, description="Required to reject")
    comment: str | None = Field(None, max_length=2000, description="Required to request changes")


class Cancellation(Strict):
    reason: str = Field(min_length=1, max_length=2000)


class SpendingIn(Strict):
    description: str = Field(min_length=1, max_length=200, description="The budget line accounted for")
    spent_cents: StrictInt = Field(ge=0)


class Report(Strict):
    what_was_done: str = Field(min_length=1, max_length=10_000)
    spending: list[SpendingIn] = Field(min_length=1, max_length=50)


class TransitionOut(BaseModel):
    from_status: Status | None
    to_status: Status
    actor_id: str
    note: str | None
    at: datetime

    @classmethod
    def of(cls, transition: Transition) -> TransitionOut:
        return cls(
            from_status=transition.from_status,
            to_status=transition.to_status,
            actor_id=transition.actor_id,
            note=transition.note,
            at=transition.at,
        )


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
        report = None
        if initiative.what_was_done is not None and initiative.spending is not None:
            report = Report(
                what_was_done=initiative.what_was_done,
                spending=[
                    SpendingIn(description=s.description, spent_cents=s.spent_cents) for s in initiative.spending
                ],
            )
        return cls(
            id=initiative.id,
            status=initiative.status,
            title=initiative.title,
            summary=initiative.summary,
            description=initiative.description,
            area_code=initiative.area_code,
            category=initiative.category,
            owner_id=initiative.owner_id,
            co_initiators=initiative.co_initiators,
            invited_co_initiators=[
                invited
                for invited in initiative.invited_co_initiators
                if invited == viewer or initiative.is_initiator(viewer)
            ],
            budget_lines=[
                BudgetLineIn(description=b.description, amount_cents=b.amount_cents) for b in initiative.budget_lines
            ],
            requested_amount_cents=initiative.requested_amount_cents,
            volunteers_wanted=initiative.volunteers_wanted,
            volunteer_count=initiative.volunteer_count,
            support_count=initiative.support_count,
            support_threshold=initiative.support_threshold,
            support_deadline=initiative.support_deadline,
            approved_amount_cents=initiative.approved_amount_cents,
            awarded_amount_cents=initiative.awarded_amount_cents,
            review_note=initiative.review_note,
            report=report,
            created_at=initiative.created_at,
            history=[TransitionOut.of(t) for t in history] if history is not None else None,
        )


class InitiativePage(BaseModel):
    items: list[InitiativeOut]
    total: int
    limit: int
    offset: int


class VolunteerOut(BaseModel):
    resident_id: str
    offer: str
    joined_at: datetime


def problem_for(error: DomainError) -> Problem:
    """The HTTP answer to a refused command."""
    if isinstance(error, NotFound):
        return Problem.not_found(str(error).removesuffix(" does not exist"))
    if isinstance(error, NotInvited):
        return Problem(404, "Not found", str(error), kind="not-found")
    if isinstance(error, IllegalTransition):
        return Problem.conflict(str(error), kind="illegal-transition", current_status=error.status.value)
    if isinstance(error, NotAllowed):
        return Problem.forbidden(str(error))
    if isinstance(error, InvalidInput):
        return Problem.invalid(error.field or "body", str(error))
    if isinstance(error, AlreadyDone):
        return Problem.conflict(str(error), kind="already-done")
    return Problem.conflict(str(error))


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
    settings = request.app.state.settings
    async with UnitOfWork(request.app.state.pool, settings.event_source) as uow:
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


@router.post("", status_code=201, summary="Propose an initiative (a draft only you see)")
async def create_initiative(body: NewInitiative, caller: Caller, request: Request, response: Response) -> InitiativeOut:
    out = await _run(
        request,
        commands.create_draft,
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
    response.headers["Location"] = f"{router.prefix}/{out.id}"
    return out


@router.get("", summary="Find initiatives by area, status and category")
async def list_initiatives(
    caller: Caller,
    request: Request,
    area_code: Annotated[str | None, Query(pattern=r"^(GM\d{4}|WK\d{6}|BU\d{8})$")] = None,
    status: Status | None = None,
    category: Category | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> InitiativePage:
    official_areas = sorted(caller.areas) if caller.has(Role.OFFICIAL) else []
    async with request.app.state.pool.acquire() as conn:
        page = await InitiativeRepository(conn).search(
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
    async with request.app.state.pool.acquire() as conn:
        repository = InitiativeRepository(conn)
        initiative = await repository.get(initiative_id)
        if initiative is None or not _can_see(initiative, caller):
            raise Problem.not_found(f"initiative {initiative_id}")
        return InitiativeOut.of(initiative, caller.subject, await repository.history(initiative_id))


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
    resident_id: Annotated[str, Path(min_length=1, max_length=100)],
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
    async with request.app.state.pool.acquire() as conn:
        repository = InitiativeRepository(conn)
        initiative = await repository.get(initiative_id)
        if initiative is None or not _can_see(initiative, caller):
            raise Problem.not_found(f"initiative {initiative_id}")
        official = caller.has(Role.OFFICIAL) and caller.acts_for(initiative.area_code)
        if not (initiative.is_initiator(caller.subject) or official):
            raise Problem.forbidden("only the initiators and officials of the area see the volunteers")
        return [
            VolunteerOut(resident_id=v.resident_id, offer=v.offer, joined_at=v.joined_at)
            for v in await repository.volunteers(initiative_id)
        ]


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
