"""Ballots of Equal Shares rounds over HTTP: a resident casts or changes their own ballot, and reads it."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import Field

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Strict

from ...domain.ballots import MOST_APPROVALS
from ...service import ballots
from .common import Answer, now, unit_of_work

router = APIRouter(tags=["ballots"])


class BallotIn(Strict):
    initiative_ids: list[uuid.UUID] = Field(
        max_length=MOST_APPROVALS,
        description="The approved initiatives of the round's area you approve, each once; empty withdraws them all",
    )


class BallotOut(Answer):
    round_id: uuid.UUID
    initiative_ids: list[uuid.UUID]
    cast_at: datetime


@router.put(
    "/rounds/{round_id}/ballots/me",
    summary="Cast or change your ballot in an Equal Shares round (residents of its area, until it closes)",
)
async def cast_ballot(round_id: uuid.UUID, body: BallotIn, caller: Caller, request: Request) -> BallotOut:
    async with unit_of_work(request) as uow:
        ballot = await ballots.cast_ballot(uow, caller, round_id, body.initiative_ids, now())
        await uow.commit()
    return BallotOut.model_validate(ballot, from_attributes=True)


@router.get("/rounds/{round_id}/ballots/me", summary="Your ballot in an Equal Shares round")
async def my_ballot(round_id: uuid.UUID, caller: Caller, request: Request) -> BallotOut:
    async with unit_of_work(request) as uow:
        return BallotOut.model_validate(await ballots.ballot_of(uow, caller, round_id), from_attributes=True)
