"""What the service holds about the caller, over HTTP (AVG/GDPR article 15): `GET /api/v1/me/export`."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import Field

from buurtkracht_kit.auth import Caller

from ...domain.awards import AwardStatus
from ...service import privacy
from .ballots import BallotOut
from .common import Answer, unit_of_work
from .payouts import BankAccountOut, BatchOut
from .rounds import RoundSummaryOut
from .spending import ClaimOut, PayoutOut

router = APIRouter(tags=["me"])


class WalletExport(Answer):
    round_id: uuid.UUID
    balance_cents: int


class PledgeExport(Answer):
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    requested_cents: int
    status: str
    created_at: datetime


class InitiativeExport(Answer):
    id: uuid.UUID
    title: str
    area_code: str
    initiators: list[str]
    status: str
    round_id: uuid.UUID | None
    awarded_cents: int | None


class MembershipExport(Answer):
    area_code: str
    chair: bool


class AwardProposalExport(Answer):
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    amount_cents: int
    status: AwardStatus
    proposed_at: datetime
    decided_at: datetime | None


class VoteExport(Answer):
    award_id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    vote: Literal["for", "against", "abstain"]
    cast_at: datetime


class RegistrationExport(Answer):
    area_code: str
    changed_at: datetime


class PersonalDataExport(Answer):
    subject: str = Field(description="Your pseudonymous id: everything below is held about it")
    wallets: list[WalletExport] = Field(description="Your wallets, one per round, with what each holds")
    pledges: list[PledgeExport] = Field(description="Every pledge you made, oldest first")
    initiatives: list[InitiativeExport] = Field(
        description="The approved initiatives you (co-)initiate, as this service knows them"
    )
    expense_claims: list[ClaimOut] = Field(description="The expense claims you made or decided, oldest first")
    steering_group_memberships: list[MembershipExport] = Field(
        description="The steering groups you are a registered member of"
    )
    award_proposals: list[AwardProposalExport] = Field(description="The award proposals you made, oldest first")
    award_votes: list[VoteExport] = Field(description="The votes you cast on award proposals, oldest first")
    rounds_opened: list[RoundSummaryOut] = Field(description="The rounds you opened (officials)")
    steering_groups_registered: list[RegistrationExport] = Field(
        description="The steering groups you last registered (officials)"
    )
    ballots: list[BallotOut] = Field(description="Your ballots in Equal Shares rounds, oldest first")
    bank_accounts_given: list[BankAccountOut] = Field(
        description="The bank accounts you gave for your initiatives' payouts, IBAN in full"
    )
    payouts_cancelled: list[PayoutOut] = Field(description="The payouts you cancelled (officials, finance)")
    payout_batches_closed: list[BatchOut] = Field(description="The payout batches you closed (officials, finance)")
    bank_statements_uploaded: list[str] = Field(description="The ids of the bank statements you uploaded (finance)")


@router.get("/me/export", summary="Everything this service holds about you (AVG/GDPR article 15)")
async def export_personal_data(caller: Caller, request: Request) -> PersonalDataExport:
    async with unit_of_work(request) as uow:
        export = await privacy.export(uow, caller)
    return PersonalDataExport.model_validate(
        export.__dict__ | {"bank_accounts_given": [BankAccountOut.of(payee) for payee in export.bank_accounts_given]},
        from_attributes=True,
    )
