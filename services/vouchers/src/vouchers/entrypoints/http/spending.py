"""Spending over HTTP: an initiative's budget, expense claims and their decision, and payout confirmations by the
finance integration."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request
from pydantic import Field, StrictInt

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Line, Moment, Strict, Text
from buurtkracht_kit.paging import MAX_CENTS, Limit, Offset

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...domain.spending import ClaimStatus, PayoutStatus
from ...service import queries, spending
from .bank_accounts import BankAccountIn
from .common import Answer, IdempotencyKey, Paged, money_moving, now, unit_of_work

router = APIRouter(tags=["spending"])


class BudgetOut(Answer):
    initiative_id: uuid.UUID
    round_id: uuid.UUID | None
    status: str
    awarded_cents: int
    held_cents: int = Field(description="Claimed, awaiting a decision")
    payable_cents: int = Field(description="Approved, awaiting payout")
    paid_cents: int
    returned_cents: int
    left_cents: int


class NewClaim(Strict):
    initiative_id: uuid.UUID
    supplier: Line = Field(min_length=1, max_length=200)
    amount_cents: StrictInt = Field(gt=0, le=MAX_CENTS)
    invoice_reference: Line = Field(min_length=1, max_length=100)
    bank_account: BankAccountIn | None = Field(
        None, description="The initiative's bank account for its payouts, given (or changed) with the claim"
    )


class ClaimOut(Answer):
    id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    claimed_by: str
    supplier: str
    amount_cents: int
    invoice_reference: str
    status: str
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None = None
    payout_id: uuid.UUID | None = None
    payout_reference: str | None = None


class ClaimPage(Paged):
    items: list[ClaimOut]


class ClaimDecision(Strict):
    decision: Literal["approve", "decline"]
    reason: Text | None = Field(None, max_length=2000, description="Required to decline")


class PayoutConfirmation(Strict):
    bank_reference: Line = Field(min_length=1, max_length=100)
    paid_at: Moment = Field(description="With its zone (an offset or Z)")
    amount_cents: StrictInt | None = Field(
        None, gt=0, le=MAX_CENTS, description="What was paid; when given, a confirmation for another amount is refused"
    )


class ReferencedPayoutConfirmation(PayoutConfirmation):
    amount_cents: StrictInt = Field(
        gt=0, le=MAX_CENTS, description="What was paid: a confirmation for another amount is refused"
    )


class PayoutOut(Answer):
    id: uuid.UUID
    reference: str
    claim_id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    amount_cents: int
    status: str
    bank_reference: str | None
    settled_at: datetime | None
    created_at: datetime | None = None
    batch_id: uuid.UUID | None = Field(None, description="The payout batch it waits in or was sent with")
    attempt: int = Field(1, description="How many times it was sent: a transfer the bank returned is sent again")


class PayoutPage(Paged):
    items: list[PayoutOut]


@router.get(
    "/initiative-budgets/{initiative_id}",
    summary="An initiative's budget: awarded, held, payable, paid, returned, left",
)
async def initiative_budget(initiative_id: uuid.UUID, caller: Caller, request: Request) -> BudgetOut:
    async with unit_of_work(request) as uow:
        return BudgetOut.model_validate(await queries.initiative_budget(uow, initiative_id), from_attributes=True)


@router.post(
    "/expense-claims",
    status_code=201,
    summary="An initiator claims an expense within the budget left (Idempotency-Key required)",
)
async def claim_expense(
    body: NewClaim, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> ClaimOut:
    async def command(uow: VouchersUnitOfWork) -> ClaimOut:
        account = body.bank_account.account("bank_account.") if body.bank_account else None
        claim, _ = await spending.claim_expense(
            uow, caller, body.initiative_id, body.supplier, body.amount_cents, body.invoice_reference, now(), account
        )
        return ClaimOut.model_validate(claim, from_attributes=True)

    return await money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.get(
    "/expense-claims",
    summary="Expense claims, newest first: of the rounds of your areas (officials, steering group members) and of "
    "your own initiatives",
)
async def list_claims(
    caller: Caller,
    request: Request,
    round_id: uuid.UUID | None = None,
    status: ClaimStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> ClaimPage:
    async with unit_of_work(request) as uow:
        found, total = await spending.claims(uow, caller, round_id, status, limit, offset)
    items = [ClaimOut.model_validate(c, from_attributes=True) for c in found]
    return ClaimPage(items=items, total=total, limit=limit, offset=offset)


@router.get(
    "/expense-claims/{claim_id}",
    summary="An expense claim (officials and steering group members of its round's area, its initiators)",
    responses={404: {"description": "No such claim, or one the caller may not see"}},
)
async def get_claim(claim_id: uuid.UUID, caller: Caller, request: Request) -> ClaimOut:
    async with unit_of_work(request) as uow:
        return ClaimOut.model_validate(await spending.claim_of(uow, caller, claim_id), from_attributes=True)


@router.post(
    "/expense-claims/{claim_id}/decision",
    summary="An official or a steering group member of the round's area approves (payout requested) or declines a "
    "claim; never its claimant or an initiator",
)
async def decide_expense(
    claim_id: uuid.UUID, body: ClaimDecision, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> ClaimOut:
    async def command(uow: VouchersUnitOfWork) -> ClaimOut:
        claim, _ = await spending.decide_expense(uow, caller, claim_id, body.decision == "approve", body.reason, now())
        return ClaimOut.model_validate(claim, from_attributes=True)

    return await money_moving(request, caller, idempotency_key, body, 200, command)  # type: ignore[return-value]


@router.get(
    "/payouts",
    summary="Payouts, newest first: every one for the finance integration, those of their areas for officials",
)
async def list_payouts(
    caller: Caller,
    request: Request,
    status: PayoutStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> PayoutPage:
    async with unit_of_work(request) as uow:
        found, total = await spending.payouts(uow, caller, status, limit, offset)
    items = [PayoutOut.model_validate(p, from_attributes=True) for p in found]
    return PayoutPage(items=items, total=total, limit=limit, offset=offset)


@router.post(
    "/payouts/{payout_id}/confirmation",
    summary="The finance integration confirms a payout by its id; settles it",
    responses={409: {"description": "Settled with another bank reference, or another amount (`amount-mismatch`)"}},
)
async def confirm_payout(payout_id: uuid.UUID, body: PayoutConfirmation, caller: Caller, request: Request) -> PayoutOut:
    async with unit_of_work(request) as uow:
        payout = await spending.confirm_payout(
            uow, caller, payout_id, body.bank_reference, body.paid_at, body.amount_cents
        )
        await uow.commit()
    return PayoutOut.model_validate(payout, from_attributes=True)


@router.post(
    "/payouts/by-reference/{reference}/confirmation",
    summary="The finance integration confirms a payout by our payout reference (BK-...); settles it",
    responses={409: {"description": "Settled with another bank reference, or another amount (`amount-mismatch`)"}},
)
async def confirm_payout_by_reference(
    reference: Annotated[Line, Path(min_length=1, max_length=100, examples=["BK-3F2A9C0D1E7B4A65"])],
    body: ReferencedPayoutConfirmation,
    caller: Caller,
    request: Request,
) -> PayoutOut:
    async with unit_of_work(request) as uow:
        payout = await spending.confirm_payout_by_reference(
            uow, caller, reference, body.bank_reference, body.paid_at, body.amount_cents
        )
        await uow.commit()
    return PayoutOut.model_validate(payout, from_attributes=True)
