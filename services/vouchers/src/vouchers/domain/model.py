"""Budget rounds, pledges, committee awards and spending: the rules, without I/O.

Invariants:
- a pledge goes only to an approved, not yet awarded initiative in the round's area, while the
  round is open; it never takes more than the initiative still needs (the last pledge is capped and
  the rest stays in the wallet), and never more than the wallet holds (the ledger refuses that);
- an initiative is awarded exactly when its pledges reach its approved amount, or when the steering
  group decides so with a quorum; an award is never above the approved amount;
- an expense claim holds its amount at once (left = awarded − held − payable − paid), within what is left;
  a declined claim releases the hold; an approved one becomes a payout with its own reference.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Mechanism(StrEnum):
    COMMITTEE = "committee"
    PLEDGE = "pledge"


class RoundStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class InitiativeStatus(StrEnum):
    """What the vouchers service needs to know of an initiative (it learns it from the initiatives service)."""

    APPROVED = "approved"
    AWARDED = "awarded"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class DomainError(Exception):
    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotFound(DomainError):
    pass


class NotAllowed(DomainError):
    pass


class Conflict(DomainError):
    """The request is valid but the state does not allow it now (round closed, initiative awarded...)."""

    def __init__(self, message: str, current_status: str | None = None) -> None:
        super().__init__(message)
        self.current_status = current_status


class InvalidInput(DomainError):
    pass


class InsufficientFunds(Conflict):
    pass


def within(area: str, outer: str) -> bool:
    """Whether CBS area `area` lies in `outer` (GM0363 ⊃ WK036301 ⊃ BU03630101)."""
    if area == outer:
        return True
    level = {"GM": 0, "WK": 1, "BU": 2}
    return level.get(outer[:2], 9) < level.get(area[:2], -1) and area[2:].startswith(outer[2:])


@dataclass
class Round:
    id: uuid.UUID
    area_code: str
    name: str
    mechanism: Mechanism
    total_budget_cents: int
    voucher_amount_cents: int | None
    allow_wallet_claims: bool
    committee_quorum: int | None
    opens_at: datetime
    closes_at: datetime
    status: RoundStatus = RoundStatus.OPEN

    @classmethod
    def open(
        cls,
        *,
        area_code: str,
        name: str,
        mechanism: Mechanism,
        total_budget_cents: int,
        opens_at: datetime,
        closes_at: datetime,
        voucher_amount_cents: int | None,
        allow_wallet_claims: bool,
        committee_quorum: int | None,
    ) -> Round:
        if total_budget_cents <= 0:
            raise InvalidInput("the total budget must be positive", "total_budget_cents")
        if closes_at <= opens_at:
            raise InvalidInput("a round closes after it opens", "closes_at")
        if mechanism is Mechanism.PLEDGE:
            if not voucher_amount_cents or voucher_amount_cents <= 0:
                raise InvalidInput(
                    "a pledge round needs a positive voucher amount per resident", "voucher_amount_cents"
                )
            if voucher_amount_cents > total_budget_cents:
                raise InvalidInput("one voucher cannot exceed the total budget", "voucher_amount_cents")
        if mechanism is Mechanism.COMMITTEE and (not committee_quorum or committee_quorum < 1):
            raise InvalidInput("a committee round needs a quorum of at least one member", "committee_quorum")
        return cls(
            id=uuid.uuid4(),
            area_code=area_code,
            name=name,
            mechanism=mechanism,
            total_budget_cents=total_budget_cents,
            voucher_amount_cents=voucher_amount_cents if mechanism is Mechanism.PLEDGE else None,
            allow_wallet_claims=allow_wallet_claims and mechanism is Mechanism.PLEDGE,
            committee_quorum=committee_quorum if mechanism is Mechanism.COMMITTEE else None,
            opens_at=opens_at,
            closes_at=closes_at,
        )

    def require_open(self, now: datetime, action: str) -> None:
        if self.status is RoundStatus.CLOSED or now >= self.closes_at:
            raise Conflict(f"cannot {action}: the round is closed", "closed")
        if now < self.opens_at:
            raise Conflict(f"cannot {action}: the round opens at {self.opens_at.isoformat()}", "not_yet_open")

    def require_mechanism(self, mechanism: Mechanism, action: str) -> None:
        if self.mechanism is not mechanism:
            raise Conflict(f"cannot {action} in a {self.mechanism.value} round", self.mechanism.value)


@dataclass
class Initiative:
    id: uuid.UUID
    area_code: str
    title: str
    initiators: list[str]
    approved_amount_cents: int
    status: InitiativeStatus
    round_id: uuid.UUID | None = None
    awarded_cents: int | None = None

    def require_pledgeable_in(self, round_: Round) -> None:
        if self.status is not InitiativeStatus.APPROVED:
            raise Conflict(f"the initiative is {self.status.value}, not open for pledges", self.status.value)
        if not within(self.area_code, round_.area_code):
            raise Conflict(f"the initiative's area {self.area_code} is not in the round's area {round_.area_code}")


@dataclass(frozen=True)
class PledgeDecision:
    take_cents: int
    completes_award: bool


def decide_pledge(requested_cents: int, approved_cents: int, pledged_so_far_cents: int) -> PledgeDecision:
    """How much of a pledge is taken: never more than the initiative still needs."""
    if requested_cents <= 0:
        raise InvalidInput("a pledge is a positive amount", "amount_cents")
    still_needed = approved_cents - pledged_so_far_cents
    if still_needed <= 0:
        raise Conflict("the initiative needs no more pledges", "awarded")
    take = min(requested_cents, still_needed)
    return PledgeDecision(take, take == still_needed)


Vote = tuple[str, str]  # (member id, "for" | "against" | "abstain")


@dataclass(frozen=True)
class AwardOutcome:
    awarded: bool
    quorum: int


def decide_committee_award(votes: list[Vote], quorum: int, recorder_id: str) -> AwardOutcome:
    """A decision counts when at least `quorum` distinct members voted; it awards when `for` outnumbers `against`."""
    members = [member for member, _ in votes]
    if len(set(members)) != len(members):
        raise InvalidInput("each member votes once", "votes")
    if recorder_id not in members:
        raise NotAllowed("the member recording the decision must be among those who voted")
    if len(members) < quorum:
        raise Conflict(f"{len(members)} votes do not make the quorum of {quorum}", "no_quorum")
    in_favour = sum(1 for _, vote in votes if vote == "for")
    against = sum(1 for _, vote in votes if vote == "against")
    return AwardOutcome(in_favour > against, quorum)


@dataclass(frozen=True)
class Budget:
    """An initiative's budget: left = awarded − held − payable − paid − returned (to the pool)."""

    awarded_cents: int
    held_cents: int
    payable_cents: int
    paid_cents: int
    left_cents: int

    @property
    def returned_cents(self) -> int:
        return self.awarded_cents - self.held_cents - self.payable_cents - self.paid_cents - self.left_cents
