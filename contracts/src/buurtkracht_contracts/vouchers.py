"""Events of the vouchers service: budget rounds, wallets, pledges, awards, spending and the ledger.

Amounts are integer euro cents. Residents appear only as pseudonymous ids.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from .event import TYPE_PREFIX, Event
from .money import Cents
from .personal import PersonId
from .registry import register, register_upcaster
from .topics import VOUCHERS_EVENTS

Mechanism = Literal["committee", "pledge", "equal_shares"]
MechanismV1 = Literal["committee", "pledge"]  # before Equal Shares rounds: the mechanism of the v1 events


def _type(name: str, version: int = 1) -> str:
    return f"{TYPE_PREFIX}.vouchers.{name}.v{version}"


class RoundEvent(Event):
    aggregate_type: ClassVar[str] = "round"
    topic: ClassVar[str] = VOUCHERS_EVENTS

    round_id: uuid.UUID
    area_code: str

    def subject(self) -> str:
        return str(self.round_id)


@register
class RoundOpened(RoundEvent):
    """A round opened with its budget. Version 2: the mechanism may be `equal_shares`."""

    event_type: ClassVar[str] = _type("round-opened", 2)
    name: str
    mechanism: Mechanism
    total_budget_cents: Cents
    voucher_amount_cents: Cents | None = Field(description="What each resident's wallet holds (pledge rounds)")
    opens_at: datetime
    closes_at: datetime


@register
class WalletsIssued(RoundEvent):
    """One batch of wallets (at most 5,000 residents an event), each holding the round's voucher amount."""

    event_type: ClassVar[str] = _type("wallets-issued")
    resident_ids: list[PersonId]
    voucher_amount_cents: Cents
    issued_cents: Cents


class PledgeEvent(RoundEvent):
    pledge_id: uuid.UUID
    initiative_id: uuid.UUID
    resident_id: PersonId
    amount_cents: Cents
    wallet_balance_cents: Cents = Field(
        description="What the resident's wallet holds once the transaction that recorded this event committed; "
        "0 after a round closed, since its wallets then expire to the pool"
    )
    pledged_to_initiative_cents: Cents = Field(
        description="What is pledged to the initiative in the round once that transaction committed"
    )


@register
class PledgeMade(PledgeEvent):
    event_type: ClassVar[str] = _type("pledge-made")
    requested_amount_cents: Cents = Field(description="What the resident asked to pledge; more than taken when capped")


@register
class PledgeWithdrawn(PledgeEvent):
    """A pledge went back to the wallet: withdrawn by the resident, or returned because the initiative was
    withdrawn or the round closed (when the wallet expires to the pool in the same transaction: its balance is 0)."""

    event_type: ClassVar[str] = _type("pledge-withdrawn")
    reason: Literal["withdrawn_by_resident", "initiative_withdrawn", "round_closed"]


@register
class InitiativeAwarded(RoundEvent):
    """The round awarded the initiative its budget: by pledges reaching the approved amount, by the committee, or
    by the Method of Equal Shares at the close. Version 2: the mechanism may be `equal_shares`."""

    event_type: ClassVar[str] = _type("initiative-awarded", 2)
    initiative_id: uuid.UUID
    mechanism: Mechanism
    awarded_amount_cents: Cents


class Vote(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    member_id: PersonId
    vote: Literal["for", "against", "abstain"]


@register
class SteeringGroupChanged(Event):
    """An official responsible for the area registered its steering group anew: who the members are after the
    change, who chairs it, and who joined or left."""

    event_type: ClassVar[str] = _type("steering-group-changed")
    aggregate_type: ClassVar[str] = "steering_group"
    topic: ClassVar[str] = VOUCHERS_EVENTS

    area_code: str
    member_ids: list[PersonId] = Field(
        description="Every member after the change (pseudonymous ids), in the given order"
    )
    chair_id: PersonId | None = Field(description="The member who chairs the group; null when nobody does")
    joined_member_ids: list[PersonId] = Field(description="Members who were not members before the change")
    left_member_ids: list[PersonId] = Field(description="Members who are no longer members after the change")
    changed_by: PersonId = Field(description="The official who registered the change")

    def subject(self) -> str:
        return self.area_code


@register
class AwardProposed(RoundEvent):
    """A member of the steering group proposed to award an approved initiative of a committee round; the
    proposer's vote is `for`. The eligible members vote until the proposal is decided (AwardDecided)."""

    event_type: ClassVar[str] = _type("award-proposed")
    initiative_id: uuid.UUID
    decision_id: uuid.UUID = Field(description="The proposal; its AwardDecided carries the same decision_id")
    amount_cents: Cents
    proposed_by: PersonId
    quorum: int = Field(description="How many eligible members must vote before it can be awarded")
    eligible_member_ids: list[PersonId] = Field(
        description="The members who may vote on it: the steering group of the round's area, but not the "
        "initiative's initiators"
    )


@register
class AwardDecided(RoundEvent):
    """The steering group decided on awarding an initiative, with who voted how."""

    event_type: ClassVar[str] = _type("award-decided")
    initiative_id: uuid.UUID
    decision_id: uuid.UUID
    amount_cents: Cents
    awarded: bool
    votes: list[Vote]
    quorum: int
    proposed_by: PersonId | None = Field(
        None, description="The member who proposed the award; absent in decisions recorded before proposals"
    )


@register
class BallotCast(RoundEvent):
    """A resident of the area of an Equal Shares round approved initiatives of the round: the whole ballot, which
    replaces the resident's ballot before it (an empty list withdraws every approval). One ballot per resident a
    round; cast while the round is open."""

    event_type: ClassVar[str] = _type("ballot-cast")
    resident_id: PersonId
    initiative_ids: list[uuid.UUID] = Field(description="The approved initiatives, each at most once")


class BudgetEvent(RoundEvent):
    initiative_id: uuid.UUID
    initiators: list[PersonId]


@register
class ExpenseClaimed(BudgetEvent):
    event_type: ClassVar[str] = _type("expense-claimed")
    claim_id: uuid.UUID
    claimed_by: PersonId
    supplier: str
    amount_cents: Cents
    invoice_reference: str
    left_cents: Cents


@register
class ExpenseApproved(BudgetEvent):
    event_type: ClassVar[str] = _type("expense-approved")
    claim_id: uuid.UUID
    decided_by: PersonId
    amount_cents: Cents
    payout_id: uuid.UUID


@register
class ExpenseDeclined(BudgetEvent):
    event_type: ClassVar[str] = _type("expense-declined")
    claim_id: uuid.UUID
    decided_by: PersonId
    amount_cents: Cents
    reason: str
    left_cents: Cents


@register
class PayoutRequested(BudgetEvent):
    """For the finance integration: pay the supplier, then confirm with the payout reference."""

    event_type: ClassVar[str] = _type("payout-requested")
    payout_id: uuid.UUID
    payout_reference: str = Field(description="Unique; the finance side reconciles by it, never by description")
    claim_id: uuid.UUID
    supplier: str
    amount_cents: Cents
    invoice_reference: str


@register
class PayoutSettled(BudgetEvent):
    event_type: ClassVar[str] = _type("payout-settled")
    payout_id: uuid.UUID
    payout_reference: str
    amount_cents: Cents
    bank_reference: str


@register
class PayoutBatchClosed(Event):
    """A payout batch closed (daily, or by an official or the finance integration): its payouts are in one SEPA
    credit-transfer file (pain.001) for the bank, each transaction's end-to-end id the payout's reference. No bank
    account appears here: the file is downloaded from the service."""

    aggregate_type: ClassVar[str] = "payout_batch"
    topic: ClassVar[str] = VOUCHERS_EVENTS
    event_type: ClassVar[str] = _type("payout-batch-closed")
    batch_id: uuid.UUID
    closed_by: PersonId | None = Field(description="Who closed it; none when it closed at its daily time")
    payout_ids: list[uuid.UUID]
    payout_references: list[str]
    payout_count: int = Field(ge=0)
    total_cents: Cents
    message_reference: str = Field(description="The pain.001 file's message id (GrpHdr/MsgId)")
    requested_execution_date: date

    def subject(self) -> str:
        return str(self.batch_id)


@register
class PayoutReturned(BudgetEvent):
    """The bank returned a payout's transfer (a camt.053 entry with return information or a reversal). The payout
    waits to be sent again, in the next batch, once the initiators checked their bank account; a return after
    settlement undoes the settlement (paid goes back to payable)."""

    event_type: ClassVar[str] = _type("payout-returned")
    payout_id: uuid.UUID
    payout_reference: str
    amount_cents: Cents
    return_reason: str | None = Field(description="The ISO 20022 return reason code (e.g. AC04), when the bank gave it")
    statement_reference: str = Field(description="The camt.053 statement (Stmt/Id) that reported it")
    was_settled: bool = Field(description="Whether the payout had been settled before it came back")


@register
class PayoutCancelled(BudgetEvent):
    """A payout cancelled before its batch closed: its amount goes back to the initiative's budget (or, when the
    initiative has ended, to its round)."""

    event_type: ClassVar[str] = _type("payout-cancelled")
    payout_id: uuid.UUID
    payout_reference: str
    claim_id: uuid.UUID
    amount_cents: Cents
    cancelled_by: PersonId
    reason: str


@register
class FundsReturned(RoundEvent):
    """Money went back: pledges to a wallet, or an initiative's unspent budget to the round's pool."""

    event_type: ClassVar[str] = _type("funds-returned")
    initiative_id: uuid.UUID | None
    amount_cents: Cents
    reason: Literal["initiative_completed", "initiative_cancelled", "initiative_withdrawn", "round_closed"]
    to: Literal["wallets", "pool", "municipality"]


class RoundSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")
    total_budget_cents: Cents
    awarded_cents: Cents
    returned_to_pool_cents: Cents
    awarded_initiative_ids: list[uuid.UUID]
    unawarded_initiative_ids: list[uuid.UUID] = Field(
        description="Approved initiatives of the round's area that the round closed without awarding"
    )


@register
class RoundClosed(RoundEvent):
    """A round closed, with what it awarded and returned. Version 2: the mechanism may be `equal_shares`."""

    event_type: ClassVar[str] = _type("round-closed", 2)
    name: str
    mechanism: Mechanism
    summary: RoundSummary


# Version 1 of the events above, from before Equal Shares rounds: still read (upcast unchanged, since every v1
# mechanism is a v2 mechanism) and their schemas still published, so integrations on v1 keep their contract.


@register
class RoundOpenedV1(RoundEvent):
    event_type: ClassVar[str] = _type("round-opened")
    name: str
    mechanism: MechanismV1
    total_budget_cents: Cents
    voucher_amount_cents: Cents | None = Field(description="What each resident's wallet holds (pledge rounds)")
    opens_at: datetime
    closes_at: datetime


@register
class InitiativeAwardedV1(RoundEvent):
    """The round awarded the initiative its budget: by pledges reaching the approved amount, or by the committee."""

    event_type: ClassVar[str] = _type("initiative-awarded")
    initiative_id: uuid.UUID
    mechanism: MechanismV1
    awarded_amount_cents: Cents


@register
class RoundClosedV1(RoundEvent):
    event_type: ClassVar[str] = _type("round-closed")
    name: str
    mechanism: MechanismV1
    summary: RoundSummary


for _v1, _v2 in ((RoundOpenedV1, RoundOpened), (InitiativeAwardedV1, InitiativeAwarded), (RoundClosedV1, RoundClosed)):
    register_upcaster(_v1.event_type, _v2.event_type, dict)
