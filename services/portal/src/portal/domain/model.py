"""The public read model: what anyone may see of an initiative and of a budget round, as the events tell it.

Invariants:
- nothing here names a person: the events carry pseudonymous resident ids (initiators, supporters, pledgers,
  officials, voters), and none of them is taken over, so a public page can show neither who supports nor who
  pledges; only counts and sums are kept;
- an initiative is public from its first event on the bus (a draft has none); an event about an initiative not
  seen before (the read model was started after its submission) makes it known with what that event carries;
- each event sets what it tells (a status, a count, an amount) instead of adding to what was there, so applying
  the events of one aggregate in their order always ends in the same state; that they are applied once is the
  inbox's work, not this module's;
- the report of what was spent is shown only once the initiative is completed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts import vouchers as round_events


class Status(StrEnum):
    """An initiative's status as the public sees it (a draft never leaves the initiatives service)."""

    GATHERING_SUPPORT = "gathering_support"
    IN_REVIEW = "in_review"
    CHANGES_REQUESTED = "changes_requested"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    FUNDED = "funded"
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class BudgetLine:
    description: str
    amount_cents: int


@dataclass(frozen=True)
class SpentLine:
    description: str
    budgeted_cents: int
    spent_cents: int


@dataclass(frozen=True)
class Report:
    """What the initiators reported when they completed the initiative: what they did and spent, line by line."""

    what_was_done: str
    spent_amount_cents: int
    spending: tuple[SpentLine, ...]


@dataclass(frozen=True)
class PledgeProgress:
    """How far the pledges of residents in a round have come towards the amount the municipality approved."""

    pledged_cents: int
    goal_cents: int | None

    @property
    def percent(self) -> int | None:
        """Whole percent of the goal pledged, at most 100; none without a goal (not approved yet)."""
        if not self.goal_cents:
            return None
        return min(100, self.pledged_cents * 100 // self.goal_cents)


# The status each event of the initiatives service leaves an initiative in; the others (support, volunteers,
# co-initiators) leave it as it is.
_STATUS_AFTER: dict[type[events.InitiativeEvent], Status] = {
    events.SupportThresholdReached: Status.IN_REVIEW,
    events.InitiativeApproved: Status.APPROVED,
    events.InitiativeRejected: Status.REJECTED,
    events.ChangesRequested: Status.CHANGES_REQUESTED,
    events.InitiativeWithdrawn: Status.WITHDRAWN,
    events.InitiativeExpired: Status.EXPIRED,
    events.InitiativeFunded: Status.FUNDED,
    events.InitiativeStarted: Status.IN_PROGRESS,
    events.InitiativeCompleted: Status.COMPLETED,
    events.InitiativeCancelled: Status.CANCELLED,
}


@dataclass
class PublicInitiative:
    id: uuid.UUID
    area_code: str
    title: str
    status: Status
    category: str | None = None
    summary: str | None = None
    requested_amount_cents: int | None = None
    approved_amount_cents: int | None = None
    awarded_amount_cents: int | None = None
    round_id: uuid.UUID | None = None
    support_count: int = 0
    support_threshold: int | None = None
    support_deadline: datetime | None = None
    budget_lines: tuple[BudgetLine, ...] = ()
    report: Report | None = None

    @classmethod
    def first_seen(cls, event: events.InitiativeEvent) -> PublicInitiative:
        """The initiative as far as its first event known here tells; `apply` that event to it next."""
        return cls(
            id=event.initiative_id,
            area_code=event.area_code,
            title=event.title,
            status=_STATUS_AFTER.get(type(event), Status.GATHERING_SUPPORT),
        )

    def apply(self, event: events.InitiativeEvent) -> None:
        """Take over what `event` tells the public about this initiative."""
        self.title, self.area_code = event.title, event.area_code
        if status := _STATUS_AFTER.get(type(event)):
            self.status = status
        match event:
            case events.InitiativeSubmitted():
                self.status = Status(event.status)
                self.category, self.summary = event.category, event.summary
                self.requested_amount_cents = event.requested_amount_cents
                self.support_threshold, self.support_deadline = event.support_threshold, event.support_deadline
                if event.budget_lines:  # events recorded before the lines were given leave the known lines
                    self.budget_lines = tuple(BudgetLine(b.description, b.amount_cents) for b in event.budget_lines)
            case events.InitiativeSupported() | events.InitiativeSupportWithdrawn() | events.SupportThresholdReached():
                self.support_count = event.support_count
            case events.InitiativeApproved():
                self.requested_amount_cents = event.requested_amount_cents
                self.approved_amount_cents = event.approved_amount_cents
            case events.InitiativeFunded():
                self.awarded_amount_cents, self.round_id = event.awarded_amount_cents, event.round_id
            case events.InitiativeCompleted():
                spending = tuple(SpentLine(s.description, s.budgeted_cents, s.spent_cents) for s in event.spending)
                self.report = Report(event.what_was_done, event.spent_amount_cents, spending)
                if not self.budget_lines:
                    self.budget_lines = tuple(BudgetLine(s.description, s.budgeted_cents) for s in spending)

    def public_report(self) -> Report | None:
        """The report, once the initiative is completed; none before."""
        return self.report if self.status is Status.COMPLETED else None

    def progress(self, pledged_cents: int) -> PledgeProgress:
        return PledgeProgress(pledged_cents, self.approved_amount_cents)


@dataclass
class RoundShare:
    """What one initiative has in one round: pledged to it by residents, and awarded to it."""

    round_id: uuid.UUID
    initiative_id: uuid.UUID
    pledged_cents: int = 0
    awarded_cents: int | None = None

    def apply(self, event: round_events.PledgeEvent | round_events.InitiativeAwarded) -> None:
        match event:
            case round_events.PledgeEvent():
                self.pledged_cents = event.pledged_to_initiative_cents
            case round_events.InitiativeAwarded():
                self.awarded_cents = event.awarded_amount_cents


@dataclass
class PublicRound:
    id: uuid.UUID
    area_code: str
    name: str
    mechanism: str
    total_budget_cents: int
    voucher_amount_cents: int | None
    opens_at: datetime
    closes_at: datetime
    is_open: bool = True
    awarded_cents_at_close: int | None = None
    returned_to_pool_cents: int | None = None

    @classmethod
    def opened(cls, event: round_events.RoundOpened) -> PublicRound:
        return cls(
            id=event.round_id,
            area_code=event.area_code,
            name=event.name,
            mechanism=event.mechanism,
            total_budget_cents=event.total_budget_cents,
            voucher_amount_cents=event.voucher_amount_cents,
            opens_at=event.opens_at,
            closes_at=event.closes_at,
        )

    def close(self, event: round_events.RoundClosed) -> None:
        self.is_open = False
        self.awarded_cents_at_close = event.summary.awarded_cents
        self.returned_to_pool_cents = event.summary.returned_to_pool_cents


@dataclass(frozen=True)
class RoundTotals:
    """A round with what its initiatives have: pledged and awarded in all, and how many initiatives have any."""

    round: PublicRound
    shares: tuple[RoundShare, ...] = field(default=())

    @property
    def pledged_cents(self) -> int:
        return sum(share.pledged_cents for share in self.shares)

    @property
    def awarded_cents(self) -> int:
        return sum(share.awarded_cents or 0 for share in self.shares)

    @property
    def initiative_count(self) -> int:
        return sum(1 for share in self.shares if share.pledged_cents or share.awarded_cents)

    @property
    def unawarded_cents(self) -> int:
        """What the round's budget still has to award (never below zero)."""
        return max(0, self.round.total_budget_cents - self.awarded_cents)
