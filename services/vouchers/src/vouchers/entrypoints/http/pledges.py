"""Pledges over HTTP: a resident pledges vouchers from their wallet, or withdraws a pledge."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import Field, StrictInt

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.paging import MAX_CENTS

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...service import pledges
from ...service.pledges import PledgeResult
from .common import Answer, IdempotencyKey, Strict, money_moving, now, unit_of_work

router = APIRouter(tags=["pledges"])


class NewPledge(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0, le=MAX_CENTS)


class PledgeOut(Answer):
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    requested_cents: int
    status: str
    created_at: datetime
    wallet_balance_cents: int | None = None
    pledged_to_initiative_cents: int | None = None
    initiative_awarded: bool | None = None

    @classmethod
    def after(cls, result: PledgeResult, awarded: bool | None = None) -> PledgeOut:
        """The pledge with the balances its command left."""
        return cls.model_validate(result.pledge, from_attributes=True).model_copy(
            update={
                "wallet_balance_cents": result.wallet_balance_cents,
                "pledged_to_initiative_cents": result.pledged_to_initiative_cents,
                "initiative_awarded": awarded,
            }
        )


@router.post(
    "/rounds/{round_id}/pledges",
    status_code=201,
    summary="Pledge vouchers to an approved initiative (Idempotency-Key required)",
)
async def pledge(
    round_id: uuid.UUID, body: NewPledge, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> PledgeOut:
    async def command(uow: VouchersUnitOfWork) -> PledgeOut:
        result = await pledges.pledge(uow, caller, round_id, body.initiative_id, body.amount_cents, now())
        return PledgeOut.after(result, result.awarded)

    return await money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.delete(
    "/rounds/{round_id}/pledges/{pledge_id}",
    summary="Withdraw your pledge while the round is open and the initiative not awarded",
)
async def withdraw_pledge(round_id: uuid.UUID, pledge_id: uuid.UUID, caller: Caller, request: Request) -> PledgeOut:
    async with unit_of_work(request) as uow:
        result = await pledges.withdraw_pledge(uow, caller, round_id, pledge_id, now())
        await uow.commit()
    return PledgeOut.after(result)
