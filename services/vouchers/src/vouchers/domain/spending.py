"""Spending an award: expense claims, their decision, and payouts settled by the finance side.

Invariants:
- only an initiator claims, only while the initiative is awarded, a positive amount within what is left; the
  claim holds its amount at once (left = awarded − held − payable − paid − returned);
- nobody decides their own claim: neither its claimant nor an initiator of its initiative;
- a claim is decided once: approved, its hold becomes payable and a payout with its own reference is requested;
  declined (with a reason), the hold goes back to where the budget is — the initiative's budget, or, when the
  initiative has ended meanwhile, its round (the pool, or the municipality once the round has closed);
- a payout settles once, for exactly its amount; the same confirmation again changes nothing;
- a payout is cancelled only while it is not settled and not in a closed batch (its file went to the bank): its
  amount goes back where a declined claim's would; a transfer the bank returned undoes a settlement (paid goes back
  to payable) and the payout waits to be sent again, counting its attempts so each settlement is booked once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed

from .initiatives import Initiative, InitiativeStatus
from .ledger import Account, Entry, InsufficientFunds, Kind
from .rounds import Round


class ClaimStatus(StrEnum):
    HELD = "held"
    APPROVED = "approved"
    DECLINED = "declined"


class PayoutStatus(StrEnum):
    REQUESTED = "requested"
    SETTLED = "settled"
    CANCELLED = "cancelled"


class AmountMismatch(Conflict):
    """A payout confirmation for another amount than the payout's."""

    kind = "amount-mismatch"

    def __init__(self, message: str) -> None:
        super().__init__(message, "amount_mismatch")
        self.field = "amount_cents"


def over_budget(message: str) -> Conflict:
    """A claim above what is left of the budget: a conflict answered as `InsufficientFunds` is (its problem type
    and status)."""
    refusal = Conflict(message, InsufficientFunds.CURRENT_STATUS)
    refusal.kind = InsufficientFunds.kind
    return refusal


@dataclass
class Payout:
    id: uuid.UUID
    claim_id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    reference: str
    amount_cents: int
    status: PayoutStatus
    bank_reference: str | None = None
    settled_at: datetime | None = None
    created_at: datetime | None = None
    batch_id: uuid.UUID | None = None
    attempt: int = 1
    cancelled_by: str | None = None
    cancel_reason: str | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def _booking(self) -> str:
        """The journal reference of this attempt's settlement (the first attempt's is the payout's id)."""
        return str(self.id) if self.attempt == 1 else f"{self.id}:{self.attempt}"

    def cancel(
        self, round_: Round, initiative: Initiative, cancelled_by: str, reason: str, left_cents: int, sent: bool
    ) -> Entry:
        """Cancelled before its batch closed (`sent`: it is in a closed batch): the payable amount goes back to the
        initiative's budget, of which `left_cents` is left — or to its round, when the initiative has ended."""
        if self.status is not PayoutStatus.REQUESTED:
            raise Conflict(f"the payout is {self.status.value}: it cannot be cancelled", self.status.value)
        if sent:
            raise Conflict("the payout's batch is closed: its file went to the bank", "sent")
        if not reason.strip():
            raise InvalidInput("a cancellation needs a reason", "reason")
        if initiative.ended:
            release_to, _ = round_.returns_to()
            self.events.append(round_.funds_returned(self.amount_cents, initiative.ending.reason, self.initiative_id))
        else:
            release_to = Account.of_initiative(Kind.BUDGET, self.initiative_id)
        self.status, self.batch_id, self.cancelled_by, self.cancel_reason = (
            PayoutStatus.CANCELLED,
            None,
            cancelled_by,
            reason,
        )
        self.events.append(
            events.PayoutCancelled(
                round_id=self.round_id,
                area_code=round_.area_code,
                initiative_id=self.initiative_id,
                initiators=initiative.initiators,
                payout_id=self.id,
                payout_reference=self.reference,
                claim_id=self.claim_id,
                amount_cents=self.amount_cents,
                cancelled_by=cancelled_by,
                reason=reason,
            )
        )
        return Entry.transfer(
            "payout_cancelled",
            str(self.id),
            Account.of_initiative(Kind.PAYABLE, self.initiative_id),
            release_to,
            self.amount_cents,
        )

    def returned(
        self, round_: Round, initiative: Initiative, statement_reference: str, reason: str | None
    ) -> Entry | None:
        """The bank returned its transfer: it waits to be sent again (out of any batch; the service puts it in the
        open one). A settled payout is unsettled: its amount goes back from paid to payable."""
        if self.status is PayoutStatus.CANCELLED:
            raise Conflict("the payout was cancelled", self.status.value)
        was_settled = self.status is PayoutStatus.SETTLED
        entry = None
        if was_settled:
            entry = Entry.transfer(
                "payout_returned",
                self._booking,
                Account.of_initiative(Kind.PAID, self.initiative_id),
                Account.of_initiative(Kind.PAYABLE, self.initiative_id),
                self.amount_cents,
            )
        self.events.append(
            events.PayoutReturned(
                round_id=self.round_id,
                area_code=round_.area_code,
                initiative_id=self.initiative_id,
                initiators=initiative.initiators,
                payout_id=self.id,
                payout_reference=self.reference,
                amount_cents=self.amount_cents,
                return_reason=reason,
                statement_reference=statement_reference,
                was_settled=was_settled,
            )
        )
        self.status, self.bank_reference, self.settled_at = PayoutStatus.REQUESTED, None, None
        self.batch_id, self.attempt = None, self.attempt + 1
        return entry

    def settle(
        self, round_: Round, initiative: Initiative, bank_reference: str, paid_at: datetime, amount_cents: int | None
    ) -> Entry | None:
        """The finance side paid the supplier. None when this confirmation settled the payout before."""
        if amount_cents is not None and amount_cents != self.amount_cents:
            raise AmountMismatch(
                f"amount_cents: the confirmation is for {amount_cents} cents, payout {self.reference} "
                f"is for {self.amount_cents} cents"
            )
        if self.status is PayoutStatus.SETTLED:
            if self.bank_reference == bank_reference:
                return None
            raise Conflict("the payout was settled with another bank reference", "settled")
        if self.status is PayoutStatus.CANCELLED:
            raise Conflict("the payout was cancelled", self.status.value)
        self.status, self.bank_reference, self.settled_at = PayoutStatus.SETTLED, bank_reference, paid_at
        self.events.append(
            events.PayoutSettled(
                round_id=self.round_id,
                area_code=round_.area_code,
                initiative_id=self.initiative_id,
                initiators=initiative.initiators,
                payout_id=self.id,
                payout_reference=self.reference,
                amount_cents=self.amount_cents,
                bank_reference=bank_reference,
            )
        )
        return Entry.transfer(
            "payout_settled",
            self._booking,
            Account.of_initiative(Kind.PAYABLE, self.initiative_id),
            Account.of_initiative(Kind.PAID, self.initiative_id),
            self.amount_cents,
        )


@dataclass
class Claim:
    id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    claimed_by: str
    supplier: str
    amount_cents: int
    invoice_reference: str
    status: ClaimStatus
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime
    decided_at: datetime | None = None
    payout: Payout | None = field(default=None, compare=False)
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @property
    def payout_id(self) -> uuid.UUID | None:
        return self.payout.id if self.payout else None

    @property
    def payout_reference(self) -> str | None:
        return self.payout.reference if self.payout else None

    @property
    def held_account(self) -> Account:
        return Account.of_initiative(Kind.HELD, self.initiative_id)

    @classmethod
    def submit(
        cls,
        round_: Round | None,
        initiative: Initiative,
        claimant: str,
        supplier: str,
        amount_cents: int,
        invoice_reference: str,
        left_cents: int,
        now: datetime,
    ) -> tuple[Claim, Entry]:
        """An initiator's claim on the budget, of which `left_cents` is left; the entry holds its amount."""
        if claimant not in initiative.initiators:
            raise NotAllowed("only the initiators can claim expenses of this initiative")
        if initiative.status is not InitiativeStatus.AWARDED or round_ is None:
            raise Conflict(
                f"the initiative is {initiative.status.value}: it has no budget to spend", initiative.status.value
            )
        if amount_cents <= 0:
            raise InvalidInput("a claim is a positive amount", "amount_cents")
        if amount_cents > left_cents:
            raise over_budget("the claim is above what is left of the budget")
        claim = cls(
            uuid.uuid4(),
            initiative.id,
            round_.id,
            claimant,
            supplier,
            amount_cents,
            invoice_reference,
            ClaimStatus.HELD,
            None,
            None,
            now,
        )
        claim.events.append(
            events.ExpenseClaimed(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=initiative.id,
                initiators=initiative.initiators,
                claim_id=claim.id,
                claimed_by=claimant,
                supplier=supplier,
                amount_cents=amount_cents,
                invoice_reference=invoice_reference,
                left_cents=left_cents - amount_cents,
            )
        )
        hold = Entry.transfer(
            "claim_hold",
            str(claim.id),
            Account.of_initiative(Kind.BUDGET, initiative.id),
            claim.held_account,
            amount_cents,
        )
        return claim, hold

    def require_not_own_case(self, initiative: Initiative, decided_by: str) -> None:
        """Nobody decides their own claim: not its claimant, nor any initiator of its initiative."""
        if decided_by == self.claimed_by:
            raise NotAllowed("you submitted this claim: nobody decides their own claim")
        if decided_by in initiative.initiators:
            raise NotAllowed(
                f"you (co-)initiate initiative {initiative.id}: nobody decides a claim on their own initiative"
            )

    def _decided(self, initiative: Initiative, status: ClaimStatus, decided_by: str, reason: str | None) -> None:
        self.require_not_own_case(initiative, decided_by)
        if self.status is not ClaimStatus.HELD:
            raise Conflict(f"the claim was {self.status.value} already", self.status.value)
        if status is ClaimStatus.DECLINED and (not reason or not reason.strip()):
            raise InvalidInput("a declined claim needs a reason", "reason")
        self.status, self.decided_by, self.decision_reason = status, decided_by, reason

    def _facts(self, round_: Round, initiative: Initiative) -> dict[str, Any]:
        return dict(
            round_id=self.round_id,
            area_code=round_.area_code,
            initiative_id=self.initiative_id,
            initiators=initiative.initiators,
            claim_id=self.id,
            decided_by=self.decided_by,
            amount_cents=self.amount_cents,
        )

    def approve(self, round_: Round, initiative: Initiative, decided_by: str, reason: str | None) -> Entry:
        """Approved: the hold becomes payable, and `self.payout` is requested from the finance side."""
        self._decided(initiative, ClaimStatus.APPROVED, decided_by, reason)
        payout_id = uuid.uuid4()
        self.payout = Payout(
            payout_id,
            self.id,
            self.initiative_id,
            self.round_id,
            f"BK-{payout_id.hex[:16].upper()}",
            self.amount_cents,
            PayoutStatus.REQUESTED,
        )
        self.events.append(events.ExpenseApproved(**self._facts(round_, initiative), payout_id=payout_id))
        self.payout.events.append(
            events.PayoutRequested(
                round_id=self.round_id,
                area_code=round_.area_code,
                initiative_id=self.initiative_id,
                initiators=initiative.initiators,
                payout_id=payout_id,
                payout_reference=self.payout.reference,
                claim_id=self.id,
                supplier=self.supplier,
                amount_cents=self.amount_cents,
                invoice_reference=self.invoice_reference,
            )
        )
        return Entry.transfer(
            "claim_approved",
            str(self.id),
            self.held_account,
            Account.of_initiative(Kind.PAYABLE, self.initiative_id),
            self.amount_cents,
        )

    def decline(
        self, round_: Round, initiative: Initiative, decided_by: str, reason: str | None, left_cents: int
    ) -> Entry:
        """Declined: the hold goes back to the budget, of which `left_cents` is left — or, when the initiative has
        ended and its budget went back to the round already, the released amount follows it there."""
        self._decided(initiative, ClaimStatus.DECLINED, decided_by, reason)
        if initiative.ended:
            release_to, _ = round_.returns_to()
            self.events.append(round_.funds_returned(self.amount_cents, initiative.ending.reason, self.initiative_id))
        else:
            release_to = Account.of_initiative(Kind.BUDGET, self.initiative_id)
            left_cents += self.amount_cents
        self.events.append(
            events.ExpenseDeclined(**self._facts(round_, initiative), reason=reason or "", left_cents=left_cents)
        )
        return Entry.transfer("claim_declined", str(self.id), self.held_account, release_to, self.amount_cents)
