"""Initiatives as the vouchers service knows them: approved by the initiatives service, then awarded here, until
the initiatives service ends them.

Invariants:
- only an approved initiative of the round's area receives pledges or a committee award, and it is awarded once,
  never above its approved amount;
- an initiative that ends (withdrawn, cancelled, completed) keeps no budget: what is left of an award goes back
  to its round's pool at once, or to the municipality when the round has closed. Claims it still holds stay held
  until decided; a claim declined later follows the budget back.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.areas import within
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict

from .ledger import Account, Entry, Kind
from .rounds import Round


class InitiativeStatus(StrEnum):
    APPROVED = "approved"
    AWARDED = "awarded"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


ENDED = frozenset(
    {InitiativeStatus.WITHDRAWN, InitiativeStatus.EXPIRED, InitiativeStatus.COMPLETED, InitiativeStatus.CANCELLED}
)


class Ending(StrEnum):
    """How the initiatives service ended an initiative."""

    WITHDRAWN = "withdrawn"
    CANCELLED = "cancelled"
    COMPLETED = "completed"

    @property
    def reason(self) -> str:
        return f"initiative_{self.value}"


@dataclass(frozen=True)
class Budget:
    """An initiative's budget: left = awarded − held − payable − paid − returned (to its round)."""

    initiative_id: uuid.UUID
    round_id: uuid.UUID | None
    status: InitiativeStatus
    awarded_cents: int
    held_cents: int
    payable_cents: int
    paid_cents: int
    left_cents: int

    @property
    def returned_cents(self) -> int:
        return self.awarded_cents - self.held_cents - self.payable_cents - self.paid_cents - self.left_cents


@dataclass(frozen=True)
class Progress:
    """How far an initiative of a round's area is: what is pledged to it in the round (pledges still active, or
    those that made its award), and whether the round awarded it (`awarded`) or it may still be (`open`)."""

    initiative_id: uuid.UUID
    title: str
    area_code: str
    approved_amount_cents: int
    pledged_cents: int
    status: str
    awarded_cents: int | None


@dataclass
class Initiative:
    id: uuid.UUID
    area_code: str
    title: str
    initiators: list[str]
    approved_amount_cents: int
    status: InitiativeStatus = InitiativeStatus.APPROVED
    round_id: uuid.UUID | None = None
    awarded_cents: int | None = None
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    def initiators_changed(self, initiators: list[str]) -> bool:
        """The initiatives service told who initiates it now (a co-initiator joined); returns whether that
        changed anything. Who may decide on its award and its claims follows from this list."""
        if not initiators or initiators == self.initiators:
            return False
        self.initiators = list(initiators)
        return True

    def require_pledgeable_in(self, round_: Round) -> None:
        if self.status is not InitiativeStatus.APPROVED:
            raise Conflict(f"the initiative is {self.status.value}, not open for pledges", self.status.value)
        if not within(self.area_code, round_.area_code):
            raise Conflict(f"the initiative's area {self.area_code} is not in the round's area {round_.area_code}")

    def award_by_pledges(self, round_: Round, pledged_cents: int) -> Entry | None:
        """Awarded the moment its pledges in the round reach its approved amount: they become its budget."""
        if pledged_cents != self.approved_amount_cents:
            return None
        return self._award(
            round_,
            self.approved_amount_cents,
            Entry.transfer(
                "pledge_award",
                f"{round_.id}:{self.id}",
                Account.of_initiative(Kind.PLEDGED, self.id),
                Account.of_initiative(Kind.BUDGET, self.id),
                self.approved_amount_cents,
            ),
        )

    def award_by_committee(self, round_: Round, decision_id: uuid.UUID, amount_cents: int) -> Entry:
        """The steering group awarded `amount_cents` from the round's pool."""
        return self._award(
            round_,
            amount_cents,
            Entry.transfer(
                "committee_award",
                str(decision_id),
                Account.pool(),
                Account.of_initiative(Kind.BUDGET, self.id),
                amount_cents,
            ),
        )

    def award_by_equal_shares(self, round_: Round) -> Entry:
        """The Method of Equal Shares funded it at the round's close: its approved amount, from the round's pool."""
        return self._award(
            round_,
            self.approved_amount_cents,
            Entry.transfer(
                "equal_shares_award",
                f"{round_.id}:{self.id}",
                Account.pool(),
                Account.of_initiative(Kind.BUDGET, self.id),
                self.approved_amount_cents,
            ),
        )

    def _award(self, round_: Round, amount_cents: int, entry: Entry) -> Entry:
        self.require_pledgeable_in(round_)
        self.status, self.round_id, self.awarded_cents = InitiativeStatus.AWARDED, round_.id, amount_cents
        self.events.append(
            events.InitiativeAwarded(
                round_id=round_.id,
                area_code=round_.area_code,
                initiative_id=self.id,
                mechanism=round_.mechanism.value,
                awarded_amount_cents=amount_cents,
            )
        )
        return entry

    def end(self, how: Ending, round_: Round | None, left_cents: int) -> Entry | None:
        """The initiatives service ended it. Awarded: `left_cents`, what is left of its budget, goes back to the
        round. Approved and withdrawn: it takes no more pledges or awards (its pledges go back, see pledges).
        An initiative that was not awarded cannot be completed or cancelled: nothing changes then."""
        if self.status is InitiativeStatus.APPROVED and how is Ending.WITHDRAWN:
            self.status = InitiativeStatus.WITHDRAWN
            return None
        if self.status is not InitiativeStatus.AWARDED:
            return None
        self.status = InitiativeStatus(how.value)
        if not left_cents:
            return None
        assert round_ is not None and round_.id == self.round_id, "an award's budget returns to its own round"
        target, _ = round_.returns_to()
        self.events.append(round_.funds_returned(left_cents, how.reason, self.id))
        return Entry.transfer(
            "unspent_returned", str(self.id), Account.of_initiative(Kind.BUDGET, self.id), target, left_cents
        )

    def pledges_given_back(self, round_: Round, amount_cents: int) -> None:
        """Withdrawn before it was awarded: its pledges in the round, `amount_cents` in all, went back to the
        wallets (see pledges)."""
        if amount_cents:
            self.events.append(round_.funds_returned(amount_cents, Ending.WITHDRAWN.reason, self.id, to="wallets"))

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @property
    def ending(self) -> Ending:
        """How it ended, for an initiative that ended with money to give back: withdrawn, cancelled or completed
        (an expired one was never awarded, and counts as completed)."""
        return Ending(self.status.value) if self.status.value in tuple(Ending) else Ending.COMPLETED

    def budget(self, balances: Mapping[Kind, int]) -> Budget:
        """Its budget from the balances of its accounts in its round."""
        return Budget(
            self.id,
            self.round_id,
            self.status,
            self.awarded_cents or 0,
            balances.get(Kind.HELD, 0),
            balances.get(Kind.PAYABLE, 0),
            balances.get(Kind.PAID, 0),
            balances.get(Kind.BUDGET, 0),
        )
