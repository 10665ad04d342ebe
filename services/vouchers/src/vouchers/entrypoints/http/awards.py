"""Committee awards over HTTP: the steering group records a decision, with who voted how."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field, StrictInt

from buurtkracht_kit.auth import Caller

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...service import awards
from .common import Answer, IdempotencyKey, Strict, money_moving, now

router = APIRouter(tags=["awards"])


class VoteIn(Strict):
    member_id: str = Field(min_length=1, max_length=100)
    vote: Literal["for", "against", "abstain"]


class AwardDecision(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0)
    votes: list[VoteIn] = Field(min_length=1, max_length=100)


class AwardDecisionOut(Answer):
    decision_id: uuid.UUID
    initiative_id: uuid.UUID
    awarded: bool


@router.post(
    "/rounds/{round_id}/awards",
    status_code=201,
    summary="The steering group records an award decision, with who voted how (Idempotency-Key required)",
)
async def decide_award(
    round_id: uuid.UUID, body: AwardDecision, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> AwardDecisionOut:
    async def command(uow: VouchersUnitOfWork) -> AwardDecisionOut:
        votes = [(v.member_id, v.vote) for v in body.votes]
        decision_id, awarded = await awards.decide_award(
            uow, caller, round_id, body.initiative_id, body.amount_cents, votes, now()
        )
        return AwardDecisionOut(decision_id=decision_id, initiative_id=body.initiative_id, awarded=awarded)

    return await money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]
