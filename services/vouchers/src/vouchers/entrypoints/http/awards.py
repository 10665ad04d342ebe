"""Committee awards over HTTP: a member of the steering group proposes an award, each member votes with their own
sign-in, and the officials of the area and the members read the decisions with who voted how — except on an
initiative the reader (co-)initiates, where they read the counts and the outcome only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field, StrictInt

from buurtkracht_kit.auth import Caller
from buurtkracht_kit.inputs import Strict
from buurtkracht_kit.paging import MAX_CENTS, Limit, Offset

from ...adapters.unit_of_work import VouchersUnitOfWork
from ...domain.awards import AwardStatus
from ...service import awards
from ...service.awards import AwardView
from .common import Answer, IdempotencyKey, Paged, money_moving, now, unit_of_work

router = APIRouter(tags=["awards"])

WITHHELD = (
    "Nobody sees who voted how on the awards of an initiative they (co-)initiate: such a proposal is answered with "
    "`ballots_withheld` true, the counts in `vote_counts` and the outcome, no `votes` and no `proposed_by`."
)


class Proposal(Strict):
    initiative_id: uuid.UUID
    amount_cents: StrictInt = Field(gt=0, le=MAX_CENTS)


class VoteIn(Strict):
    vote: Literal["for", "against", "abstain"]


class VoteOut(Answer):
    member_id: str
    vote: Literal["for", "against", "abstain"]
    cast_at: datetime
    counted: bool = Field(description="Whether it counts: the member is eligible to vote on this proposal now")


class AwardOut(Answer):
    id: uuid.UUID = Field(description="The proposal; AwardProposed and AwardDecided name it `decision_id`")
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    status: AwardStatus = Field(description="open (members vote), awarded, not_awarded, or lapsed")
    awarded: bool | None = Field(description="The decision; null while open or when it lapsed")
    quorum: int = Field(description="Counted votes needed before it can be awarded")
    proposed_by: str | None = Field(description="The member who proposed it; null where the ballots are withheld")
    proposed_at: datetime
    decided_at: datetime | None
    eligible_member_ids: list[str] = Field(
        description="Who may vote on it: the steering group of the round's area, but the initiative's initiators"
    )
    vote_counts: dict[Literal["for", "against", "abstain"], int] = Field(
        description="How many of the votes that count (those of the eligible members) are for, against and abstain"
    )
    ballots_withheld: bool = Field(
        description="True when you (co-)initiate the initiative: you see the counts and the outcome, not who voted "
        "how (`votes` is empty) nor who proposed it"
    )
    votes: list[VoteOut] = Field(description="Who voted how, in the order cast; empty where the ballots are withheld")

    @classmethod
    def of(cls, view: AwardView) -> AwardOut:
        award = view.award
        votes = [
            VoteOut(
                member_id=b.member_id, vote=b.vote, cast_at=b.cast_at, counted=b.member_id in view.eligible_member_ids
            )
            for b in award.ballots.values()
        ]
        withheld = view.ballots_withheld
        return cls.model_validate(
            vars(award)
            | {
                "awarded": award.awarded,
                "proposed_by": None if withheld else award.proposed_by,
                "eligible_member_ids": view.eligible_member_ids,
                "vote_counts": award.counts(view.eligible_member_ids),
                "ballots_withheld": withheld,
                "votes": [] if withheld else votes,
            }
        )


class AwardPage(Paged):
    items: list[AwardOut]


@router.post(
    "/rounds/{round_id}/awards",
    status_code=201,
    summary="A member of the area's steering group proposes an award, voting for it (Idempotency-Key required)",
    responses={
        403: {"description": "Not a registered member of the steering group, or an initiator of the initiative"},
        409: {"description": "A proposal for the initiative is open already, or it is not open for an award"},
    },
)
async def propose_award(
    round_id: uuid.UUID, body: Proposal, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
) -> AwardOut:
    async def command(uow: VouchersUnitOfWork) -> AwardOut:
        return AwardOut.of(
            await awards.propose_award(uow, caller, round_id, body.initiative_id, body.amount_cents, now())
        )

    return await money_moving(request, caller, idempotency_key, body, 201, command)  # type: ignore[return-value]


@router.put(
    "/rounds/{round_id}/awards/{award_id}/votes/me",
    summary="A member of the area's steering group casts (or changes) their own vote on an open proposal",
    description="The same vote again changes nothing while the proposal is open. The vote that decides it answers "
    "with the decision; a vote after that, a repeat included, is a 409 whose `current_status` is the decision.",
    responses={
        403: {"description": "Not a registered member of the steering group, or an initiator of the initiative"},
        409: {"description": "The proposal was decided or lapsed, or the round is closed"},
    },
)
async def cast_vote(
    round_id: uuid.UUID, award_id: uuid.UUID, body: VoteIn, caller: Caller, request: Request
) -> AwardOut:
    async with unit_of_work(request) as uow:
        view = await awards.cast_vote(uow, caller, round_id, award_id, body.vote, now())
        await uow.commit()
    return AwardOut.of(view)


@router.get(
    "/rounds/{round_id}/awards",
    summary="The round's award proposals and decisions with who voted how, newest first (officials and members)",
    description=WITHHELD,
)
async def list_awards(
    round_id: uuid.UUID,
    caller: Caller,
    request: Request,
    status: AwardStatus | None = None,
    limit: Limit = 20,
    offset: Offset = 0,
) -> AwardPage:
    async with unit_of_work(request) as uow:
        views, total = await awards.awards_of_round(uow, caller, round_id, status, limit, offset)
    return AwardPage(items=[AwardOut.of(v) for v in views], total=total, limit=limit, offset=offset)


@router.get(
    "/rounds/{round_id}/awards/{award_id}",
    summary="One award proposal or decision with who voted how (officials and members)",
    description=WITHHELD,
)
async def get_award(round_id: uuid.UUID, award_id: uuid.UUID, caller: Caller, request: Request) -> AwardOut:
    async with unit_of_work(request) as uow:
        return AwardOut.of(await awards.award_of(uow, caller, round_id, award_id))
