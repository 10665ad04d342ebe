"""Budget rounds over HTTP: opening, reading with live totals, closing, and the round's ledger."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import Field, StrictBool, StrictInt

from buurtkracht_contracts.areas import AreaCode
from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Line, Moment, Strict
from buurtkracht_kit.paging import MAX_CENTS, MAX_INTEGER, Limit, Offset

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...domain.rounds import Mechanism, Round, RoundStatus
from ...service import queries, rounds
from .common import Answer, IdempotencyKey, Paged, money_moving, now, unit_of_work

router = APIRouter(tags=["rounds"])


class NewRound(Strict):
    area_code: AreaCode = Field(examples=["WK036300"])
    name: Line = Field(min_length=1, max_length=200)
    total_budget_cents: StrictInt = Field(gt=0, le=MAX_CENTS)
    opens_at: Moment = Field(description="With its zone (an offset or Z)")
    closes_at: Moment = Field(description="With its zone (an offset or Z)")
    mechanism: Mechanism
    voucher_amount_cents: StrictInt | None = Field(
        None, gt=0, le=MAX_CENTS, description="Per resident; pledge rounds only"
    )
    allow_wallet_claims: StrictBool = Field(
        False, description="Pledge rounds: residents of the area may claim a wallet"
    )
    committee_quorum: StrictInt | None = Field(
        None, gt=0, le=MAX_INTEGER, description="Committee rounds: counted votes needed before an award"
    )


class RoundSummaryOut(Answer):
    """A round in a list (its live totals are on the round itself)."""

    id: uuid.UUID
    area_code: str
    name: str
    mechanism: Mechanism
    status: RoundStatus
    total_budget_cents: int
    voucher_amount_cents: int | None
    allow_wallet_claims: bool
    committee_quorum: int | None
    opens_at: datetime
    closes_at: datetime


class RoundOut(RoundSummaryOut):
    """A round with its live totals."""

    totals: dict[str, int] = Field(description="Live: cents per kind of account (pool, wallet, pledged, budget, ...)")

    @classmethod
    def with_totals(cls, shown: tuple[Round, dict[str, int]]) -> RoundOut:
        round_, totals = shown
        return cls.model_validate(vars(round_) | {"totals": totals})


class RoundPage(Paged):
    items: list[RoundSummaryOut]


class InitiativeProgressOut(Answer):
    initiative_id: uuid.UUID
    title: str
    area_code: str
    approved_amount_cents: int
    pledged_cents: int = Field(description="Pledged to it in this round: active pledges, or those that awarded it")
    status: Literal["open", "awarded"] = Field(description="awarded by this round, or open: it may still be awarded")
    awarded_cents: int | None


class InitiativeProgressPage(Paged):
    items: list[InitiativeProgressOut]


class JournalEntryOut(Answer):
    id: int
    kind: str
    reference: str
    at: datetime
    lines: list[dict[str, Any]]


class LedgerOut(Answer):
    round_id: uuid.UUID
    balances: list[dict[str, Any]]
    entries: list[JournalEntryOut]
    next_after: int | None
    problems: list[str] = Field(description="Violated ledger invariants; empty when the books are right")


@router.post(
    "/rounds",
    status_code=201,
    summary="An official opens a budget round for an area, moving its whole budget (Idempotency-Key required)",
)
async def open_round(
    body: NewRound, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> RoundOut:
    async def command(uow: VouchersUnitOfWork) -> RoundOut:
        round_ = await rounds.open_round(uow, caller, **body.model_dump())
        return RoundOut.with_totals(await queries.round_with_totals(uow, round_.id))

    return await money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.get("/rounds", summary="Budget rounds, newest first: of an area, the areas inside it and those it lies in")
async def list_rounds(
    caller: Caller,
    request: Request,
    area_code: Annotated[AreaCode | None, Query(description="Rounds of this area, inside it, or around it")] = None,
    status: RoundStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> RoundPage:
    async with unit_of_work(request) as uow:
        found, total = await queries.rounds(uow, area_code, status, limit, offset)
    return RoundPage(items=[RoundSummaryOut.model_validate(r) for r in found], total=total, limit=limit, offset=offset)


@router.get(
    "/rounds/{round_id}/initiatives",
    summary="How far each initiative of the round's area is: pledged in the round, awarded or open (residents of "
    "the area and officials)",
)
async def round_initiatives(
    round_id: uuid.UUID, caller: Caller, request: Request, limit: Limit = 20, offset: Offset = 0
) -> InitiativeProgressPage:
    async with unit_of_work(request) as uow:
        progress, total = await queries.round_initiatives(uow, caller, round_id, limit, offset)
    return InitiativeProgressPage(
        items=[InitiativeProgressOut.model_validate(p) for p in progress], total=total, limit=limit, offset=offset
    )


@router.get("/rounds/{round_id}", summary="A round with its live totals")
async def get_round(round_id: uuid.UUID, caller: Caller, request: Request) -> RoundOut:
    async with unit_of_work(request) as uow:
        return RoundOut.with_totals(await queries.round_with_totals(uow, round_id))


@router.post("/rounds/{round_id}/close", summary="Close the round now (it also closes at closes_at)")
async def close_round(round_id: uuid.UUID, caller: Caller, request: Request) -> RoundOut:
    async with unit_of_work(request) as uow:
        await rounds.close_round(uow, caller, round_id, now())
        shown = await queries.round_with_totals(uow, round_id)
        await uow.commit()
    return RoundOut.with_totals(shown)


@router.get("/rounds/{round_id}/ledger", summary="The round's journal and balances (officials)")
async def round_ledger(
    round_id: uuid.UUID,
    caller: Caller,
    request: Request,
    after: Annotated[int, Query(ge=0, le=2**63 - 1, description="Entries after this id")] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> LedgerOut:
    async with unit_of_work(request) as uow:
        return LedgerOut.model_validate(
            await queries.round_ledger(uow, caller, round_id, after, limit), from_attributes=True
        )
