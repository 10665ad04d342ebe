"""The public JSON API (`/api/v1/public`): anyone may read it, without signing in, and it is answered from the
portal's own read model only, so anonymous traffic never reaches the services that move money.

What it shows is what a public page shows: statuses, counts and sums; never who supports or pledges. The report
of what an initiative spent is there once the initiative is completed.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_kit.paging import Limit, Offset

from ..adapters.read_model import Listed, Reading
from ..domain.model import PledgeProgress, RoundTotals, Status
from ..service import queries

router = APIRouter(prefix="/api/v1/public", tags=["public"])


class ParentOut(BaseModel):
    code: str
    name: str | None = Field(description="Its name; null while the registry has not told of it")


class AreaOut(BaseModel):
    code: str = Field(examples=["WK036300"])
    name: str = Field(examples=["Burgwallen-Oude Zijde"])
    kind: Literal["gemeente", "wijk", "buurt"]
    parent: ParentOut | None = Field(description="The area it lies in; null for a municipality")
    outline: dict[str, Any] | None = Field(description="The area's outline as a GeoJSON geometry; null when unknown")


Area = Annotated[AreaCode, Path(description="CBS code of a municipality, wijk or buurt; areas inside it count too")]


class BudgetLineOut(BaseModel):
    description: str
    amount_cents: int


class SpentLineOut(BaseModel):
    description: str
    budgeted_cents: int
    spent_cents: int


class ReportOut(BaseModel):
    what_was_done: str
    spent_amount_cents: int
    spending: list[SpentLineOut]


class PledgeProgressOut(BaseModel):
    pledged_cents: int = Field(description="Pledged by residents in the round the initiative was last pledged to in")
    goal_cents: int | None = Field(description="The amount approved; null until approved")
    percent: int | None = Field(description="Whole percent of the goal pledged, at most 100; null without a goal")

    @classmethod
    def of(cls, progress: PledgeProgress) -> PledgeProgressOut:
        return cls(pledged_cents=progress.pledged_cents, goal_cents=progress.goal_cents, percent=progress.percent)


class InitiativeSummaryOut(BaseModel):
    id: uuid.UUID
    area_code: str
    title: str
    summary: str | None
    category: str | None
    status: Status
    support_count: int
    support_threshold: int | None
    support_deadline: datetime | None
    requested_amount_cents: int | None
    approved_amount_cents: int | None
    awarded_amount_cents: int | None
    pledge_progress: PledgeProgressOut


class InitiativeOut(InitiativeSummaryOut):
    budget_lines: list[BudgetLineOut] = Field(description="The budget asked for, line by line")
    report: ReportOut | None = Field(description="What was done and spent; null until the initiative is completed")


class InitiativePage(BaseModel):
    items: list[InitiativeSummaryOut]
    total: int
    limit: int
    offset: int


class RoundOut(BaseModel):
    id: uuid.UUID
    area_code: str
    name: str
    mechanism: str
    opens_at: datetime
    closes_at: datetime
    total_budget_cents: int
    voucher_amount_cents: int | None
    pledged_cents: int = Field(description="Pledged by residents to the round's initiatives, in all")
    awarded_cents: int = Field(description="Awarded to initiatives so far")
    unawarded_cents: int = Field(description="What the budget still has to award")
    initiative_count: int = Field(description="Initiatives pledged to or awarded in this round")

    @classmethod
    def of(cls, totals: RoundTotals) -> RoundOut:
        public_round = totals.round
        return cls(
            id=public_round.id,
            area_code=public_round.area_code,
            name=public_round.name,
            mechanism=public_round.mechanism,
            opens_at=public_round.opens_at,
            closes_at=public_round.closes_at,
            total_budget_cents=public_round.total_budget_cents,
            voucher_amount_cents=public_round.voucher_amount_cents,
            pledged_cents=totals.pledged_cents,
            awarded_cents=totals.awarded_cents,
            unawarded_cents=totals.unawarded_cents,
            initiative_count=totals.initiative_count,
        )


class RoundList(BaseModel):
    items: list[RoundOut]


def _summary_fields(listed: Listed) -> dict[str, object]:
    initiative = listed.initiative
    return {
        "id": initiative.id,
        "area_code": initiative.area_code,
        "title": initiative.title,
        "summary": initiative.summary,
        "category": initiative.category,
        "status": initiative.status,
        "support_count": initiative.support_count,
        "support_threshold": initiative.support_threshold,
        "support_deadline": initiative.support_deadline,
        "requested_amount_cents": initiative.requested_amount_cents,
        "approved_amount_cents": initiative.approved_amount_cents,
        "awarded_amount_cents": initiative.awarded_amount_cents,
        "pledge_progress": PledgeProgressOut.of(initiative.progress(listed.pledged_cents)),
    }


def _reading(request: Request) -> Reading:
    """The read model for one request, outside a transaction (the queries are one statement each)."""
    service = request.app.state.service
    return Reading(service.pool, service.settings.db_acquire_timeout_seconds)


@router.get("/areas/{area_code}/initiatives", summary="The initiatives of an area, the most recent first")
async def list_initiatives(area_code: Area, request: Request, limit: Limit = 20, offset: Offset = 0) -> InitiativePage:
    async with _reading(request) as reading:
        listed, total = await queries.initiatives_in(reading, area_code, limit, offset)
    items = [InitiativeSummaryOut.model_validate(_summary_fields(one)) for one in listed]
    return InitiativePage(items=items, total=total, limit=limit, offset=offset)


@router.get("/initiatives/{initiative_id}", summary="One initiative with its budget and, once completed, its report")
async def get_initiative(initiative_id: uuid.UUID, request: Request) -> InitiativeOut:
    async with _reading(request) as reading:
        listed = await queries.initiative(reading, initiative_id)
    initiative = listed.initiative
    report = initiative.public_report()
    return InitiativeOut.model_validate(
        _summary_fields(listed)
        | {
            "budget_lines": [BudgetLineOut(**vars(line)) for line in initiative.budget_lines],
            "report": None
            if report is None
            else ReportOut(
                what_was_done=report.what_was_done,
                spent_amount_cents=report.spent_amount_cents,
                spending=[SpentLineOut(**vars(line)) for line in report.spending],
            ),
        }
    )


@router.get("/areas/{area_code}/rounds", summary="The open budget rounds of an area, with their totals")
async def list_open_rounds(area_code: Area, request: Request) -> RoundList:
    async with _reading(request) as reading:
        rounds = await queries.open_rounds_for(reading, area_code)
    return RoundList(items=[RoundOut.of(totals) for totals in rounds])


@router.get("/areas/{area_code}", summary="An area: its name, kind, the area it lies in, and its outline")
async def get_area(area_code: Annotated[AreaCode, Path()], request: Request) -> AreaOut:
    async with _reading(request) as reading:
        area, parent_name = await queries.area(reading, area_code)
    parent = ParentOut(code=area.parent_code, name=parent_name) if area.parent_code else None
    return AreaOut.model_validate(
        {"code": area.code, "name": area.name, "kind": area.kind, "parent": parent, "outline": area.outline}
    )
