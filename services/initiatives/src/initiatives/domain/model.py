"""The initiative aggregate: a resident's proposal for their neighbourhood, from draft to accountability.

Invariants the aggregate protects (every method checks them before changing anything, so a refused
command changes nothing):
- only the transitions of the lifecycle below happen; any other is an `IllegalTransition`;
- the requested amount is the sum of the budget lines and never above the municipal maximum;
- an approved amount is positive and at most the requested amount;
- the initiators are the owner and the co-initiators who accepted the owner's invitation; an invitation
  alone makes nobody an initiator;
- support comes once per resident, from residents of the area, never from an initiator, and only
  while support is being gathered before the deadline; a supporter who becomes a co-initiator loses their
  support, so the support count is always the number of supporters who are not initiators;
- nobody decides their own case: an official never reviews an initiative they initiate or co-initiate;
- every transition records exactly one event and one history entry;
- a resident who asked to be forgotten appears only as their tombstone: as (co-)initiator of the initiatives that
  stay public, never as an invited resident.

A refused command raises one of the contracts' refusals (`buurtkracht_contracts.refusals`), answered alike by
every HTTP API: `NotAllowed` (not an initiator, not of the area, an initiator supporting themselves or reviewing
their own initiative), `InvalidInput`, `NotInvited` (a `NotFound`), or a conflict: `IllegalTransition`,
`AlreadyDone`, or a plain `DomainError`.

    draft ─submit─▶ gathering_support ─threshold─▶ in_review ─approve─▶ approved ─awarded─▶ funded
      ▲  (in_review directly when enough support)   │ reject → rejected                      │ start
      └──── changes_requested ◀── request changes ──┘        approved ─round closed─▶ expired ▼
    gathering_support ─deadline missed─▶ expired                                        in_progress
    draft/changes_requested/gathering_support/in_review/approved ─withdraw─▶ withdrawn     │ report
    funded/in_progress ─cancel─▶ cancelled                                               completed
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, DomainError, InvalidInput, NotAllowed, NotFound


class Status(StrEnum):
    DRAFT = "draft"
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


class Category(StrEnum):
    GREEN = "green"
    PLAY = "play"
    SAFETY = "safety"
    SOCIAL = "social"
    CULTURE = "culture"
    SPORT = "sport"
    SUSTAINABILITY = "sustainability"
    OTHER = "other"


EDITABLE = frozenset({Status.DRAFT, Status.CHANGES_REQUESTED})
WITHDRAWABLE = frozenset(
    {Status.DRAFT, Status.CHANGES_REQUESTED, Status.GATHERING_SUPPORT, Status.IN_REVIEW, Status.APPROVED}
)
OPEN_FOR_VOLUNTEERS = frozenset(
    {Status.GATHERING_SUPPORT, Status.IN_REVIEW, Status.APPROVED, Status.FUNDED, Status.IN_PROGRESS}
)
FINAL = frozenset({Status.REJECTED, Status.WITHDRAWN, Status.EXPIRED, Status.COMPLETED, Status.CANCELLED})


class IllegalTransition(Conflict):
    """The lifecycle has no such transition from the initiative's current status."""

    kind = "illegal-transition"

    def __init__(self, action: str, status: Status) -> None:
        super().__init__(f"cannot {action} an initiative that is {status.value}", status.value)
        self.action, self.status = action, status


class AlreadyDone(Conflict):
    """The resident already supports, volunteers for, co-initiates or is invited to co-initiate this initiative."""

    kind = "already-done"

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class NotInvited(NotFound):
    """There is no open invitation for the resident to co-initiate this initiative."""

    def __init__(self, resident_id: str) -> None:
        message = f"{resident_id} is not invited: an invitation for them to co-initiate this initiative"
        super().__init__(message, field="resident_id")


@dataclass(frozen=True)
class BudgetLine:
    description: str
    amount_cents: int


@dataclass(frozen=True)
class Spending:
    description: str
    spent_cents: int


@dataclass(frozen=True)
class Rules:
    """The municipality's settings for initiatives."""

    support_threshold: int = 25
    support_period: timedelta = timedelta(days=42)
    max_requested_amount_cents: int = 1_500_000


@dataclass(frozen=True)
class Transition:
    from_status: Status | None
    to_status: Status
    actor_id: str
    at: datetime
    note: str | None = None


@dataclass
class Initiative:
    id: uuid.UUID
    owner_id: str
    title: str
    summary: str
    description: str
    area_code: str
    category: Category
    budget_lines: list[BudgetLine]
    volunteers_wanted: int
    created_at: datetime
    status: Status = Status.DRAFT
    co_initiators: list[str] = field(default_factory=list)
    invited_co_initiators: list[str] = field(default_factory=list)
    support_threshold: int | None = None
    support_deadline: datetime | None = None
    support_count: int = 0
    volunteer_count: int = 0
    approved_amount_cents: int | None = None
    awarded_amount_cents: int | None = None
    round_id: uuid.UUID | None = None
    review_note: str | None = None
    what_was_done: str | None = None
    spending: list[Spending] | None = None
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False)
    transitions: list[Transition] = field(default_factory=list, repr=False)

    # -- creating and editing -------------------------------------------------------------

    @classmethod
    def draft(
        cls,
        *,
        owner_id: str,
        title: str,
        summary: str,
        description: str,
        area_code: str,
        category: Category,
        budget_lines: list[BudgetLine],
        volunteers_wanted: int,
        rules: Rules,
        now: datetime,
        initiative_id: uuid.UUID | None = None,
    ) -> Initiative:
        initiative = cls(
            id=initiative_id or uuid.uuid4(),
            owner_id=owner_id,
            title=title,
            summary=summary,
            description=description,
            area_code=area_code,
            category=category,
            budget_lines=list(budget_lines),
            volunteers_wanted=volunteers_wanted,
            created_at=now,
        )
        initiative._check_budget(rules)
        initiative.transitions.append(Transition(None, Status.DRAFT, owner_id, now))
        return initiative

    @property
    def initiators(self) -> list[str]:
        """The owner first, then the co-initiators who accepted their invitation (in the order they joined)."""
        return [self.owner_id, *self.co_initiators]

    @property
    def requested_amount_cents(self) -> int:
        return sum(line.amount_cents for line in self.budget_lines)

    def is_initiator(self, resident_id: str) -> bool:
        return resident_id in self.initiators

    def edit(self, actor_id: str, rules: Rules, **changes: object) -> None:
        """Change the proposal's own fields while it is a draft or changes were requested."""
        self._require_initiator(actor_id, "edit")
        if self.status not in EDITABLE:
            raise IllegalTransition("edit", self.status)
        unknown = set(changes) - {"title", "summary", "description", "category", "budget_lines", "volunteers_wanted"}
        if unknown:
            raise InvalidInput(f"cannot edit {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
        before = {name: getattr(self, name) for name in changes}
        for name, value in changes.items():
            setattr(self, name, value)
        try:
            self._check_budget(rules)
        except DomainError:
            for name, value in before.items():
                setattr(self, name, value)
            raise

    def invite_co_initiator(self, actor_id: str, resident_id: str) -> None:
        """The owner invites a resident to co-initiate; they count as an initiator only once they accept."""
        if actor_id != self.owner_id:
            raise NotAllowed("only the owner invites co-initiators")
        if self.status in FINAL:
            raise IllegalTransition("invite a co-initiator to", self.status)
        if self.is_initiator(resident_id):
            raise AlreadyDone(f"{resident_id} is already an initiator", field="resident_id")
        if resident_id in self.invited_co_initiators:
            raise AlreadyDone(f"{resident_id} is already invited to co-initiate", field="resident_id")
        self.invited_co_initiators.append(resident_id)

    def accept_co_initiator_invitation(self, actor_id: str, resident_id: str, supports: bool) -> None:
        """The invited resident, and only they, accepts and becomes a co-initiator.

        A co-initiator cannot support their own initiative: support they gave earlier is withdrawn first
        (`InitiativeSupportWithdrawn` with reason `became_initiator`, recorded while they are not yet an
        initiator), then `CoInitiatorJoined` carries the initiators with them. `supports` says whether the
        resident supports the initiative now.
        """
        if actor_id != resident_id:
            raise NotAllowed(f"only {resident_id} can accept their own invitation to co-initiate")
        if self.is_initiator(resident_id):
            raise AlreadyDone(f"{resident_id} already co-initiates this initiative", field="resident_id")
        if resident_id not in self.invited_co_initiators:
            raise NotInvited(resident_id)
        if self.status in FINAL:
            raise IllegalTransition("join as a co-initiator", self.status)
        if supports:
            self.support_count -= 1
            self._record(
                events.InitiativeSupportWithdrawn(
                    **self._facts(),
                    supporter_id=resident_id,
                    support_count=self.support_count,
                    reason="became_initiator",
                )
            )
        self.invited_co_initiators.remove(resident_id)
        self.co_initiators.append(resident_id)
        self._record(events.CoInitiatorJoined(**self._facts(), resident_id=resident_id))

    # -- the lifecycle ----------------------------------------------------------------------

    def submit(self, actor_id: str, rules: Rules, now: datetime) -> None:
        """Ask the neighbourhood for support; straight to review when the support needed is already there."""
        self._require_initiator(actor_id, "submit")
        if self.status not in EDITABLE:
            raise IllegalTransition("submit", self.status)
        self._check_budget(rules)
        self.support_threshold = rules.support_threshold
        self.support_deadline = now + rules.support_period
        enough = self.support_count >= rules.support_threshold
        self._move(Status.IN_REVIEW if enough else Status.GATHERING_SUPPORT, actor_id, now)
        self._record(
            events.InitiativeSubmitted(
                **self._facts(),
                category=self.category.value,
                summary=self.summary,
                requested_amount_cents=self.requested_amount_cents,
                status=self.status.value,
                support_threshold=rules.support_threshold,
                support_deadline=self.support_deadline,
                budget_lines=[
                    events.PlannedBudgetLine(description=line.description, amount_cents=line.amount_cents)
                    for line in self.budget_lines
                ],
            )
        )

    def support(self, resident_id: str, lives_in_area: bool, already_supports: bool, now: datetime) -> None:
        if self.status is not Status.GATHERING_SUPPORT:
            raise IllegalTransition("support", self.status)
        if self.support_deadline is not None and now > self.support_deadline:
            raise IllegalTransition("support (its support period ended)", self.status)
        if self.is_initiator(resident_id):
            raise NotAllowed("initiators cannot support their own initiative")
        if not lives_in_area:
            raise NotAllowed(f"only residents of {self.area_code} can support this initiative")
        if already_supports:
            raise AlreadyDone("you already support this initiative")
        self.support_count += 1
        self._record(
            events.InitiativeSupported(**self._facts(), supporter_id=resident_id, support_count=self.support_count)
        )
        if self.support_count >= (self.support_threshold or 0):
            self._move(Status.IN_REVIEW, resident_id, now, note="support threshold reached")
            self._record(events.SupportThresholdReached(**self._facts(), support_count=self.support_count))

    def withdraw_support(self, resident_id: str, supports: bool, now: datetime) -> None:
        """Support can be taken back while it still counts: while support is being gathered."""
        if not supports:
            raise DomainError("you do not support this initiative")
        if self.status is not Status.GATHERING_SUPPORT:
            raise IllegalTransition("withdraw support from", self.status)
        self.support_count -= 1
        self._record(
            events.InitiativeSupportWithdrawn(
                **self._facts(),
                supporter_id=resident_id,
                support_count=self.support_count,
                reason="withdrawn_by_supporter",
            )
        )

    def join_as_volunteer(self, resident_id: str, already_volunteers: bool) -> None:
        if self.status not in OPEN_FOR_VOLUNTEERS:
            raise IllegalTransition("volunteer for", self.status)
        if self.is_initiator(resident_id):
            raise NotAllowed("initiators are already part of their initiative")
        if already_volunteers:
            raise AlreadyDone("you already volunteer for this initiative")
        self.volunteer_count += 1
        self._record(
            events.VolunteerJoined(**self._facts(), volunteer_id=resident_id, volunteer_count=self.volunteer_count)
        )

    def approve(self, official_id: str, approved_amount_cents: int, now: datetime) -> None:
        self._require_independent_reviewer(official_id, "approve")
        self._require_status("approve", Status.IN_REVIEW)
        if not 0 < approved_amount_cents <= self.requested_amount_cents:
            raise InvalidInput(
                f"the approved amount must be positive and at most the requested {self.requested_amount_cents} cents",
                field="approved_amount_cents",
            )
        self.approved_amount_cents = approved_amount_cents
        self._move(Status.APPROVED, official_id, now)
        self._record(
            events.InitiativeApproved(
                **self._facts(),
                official_id=official_id,
                requested_amount_cents=self.requested_amount_cents,
                approved_amount_cents=approved_amount_cents,
            )
        )

    def reject(self, official_id: str, reason: str, now: datetime) -> None:
        self._require_independent_reviewer(official_id, "reject")
        self._require_status("reject", Status.IN_REVIEW)
        self._require_text(reason, "reason")
        self.review_note = reason
        self._move(Status.REJECTED, official_id, now, note=reason)
        self._record(events.InitiativeRejected(**self._facts(), official_id=official_id, reason=reason))

    def request_changes(self, official_id: str, comment: str, now: datetime) -> None:
        self._require_independent_reviewer(official_id, "request changes to")
        self._require_status("request changes to", Status.IN_REVIEW)
        self._require_text(comment, "comment")
        self.review_note = comment
        self._move(Status.CHANGES_REQUESTED, official_id, now, note=comment)
        self._record(events.ChangesRequested(**self._facts(), official_id=official_id, comment=comment))

    def withdraw(self, actor_id: str, now: datetime) -> None:
        self._require_initiator(actor_id, "withdraw")
        if self.status not in WITHDRAWABLE:
            raise IllegalTransition("withdraw", self.status)
        previous = self.status
        self._move(Status.WITHDRAWN, actor_id, now)
        self._record(events.InitiativeWithdrawn(**self._facts(), withdrawn_by=actor_id, previous_status=previous.value))

    def expire_support_period(self, now: datetime) -> None:
        """The deadline passed before enough residents supported it."""
        self._require_status("expire", Status.GATHERING_SUPPORT)
        if self.support_deadline is None or now <= self.support_deadline:
            raise DomainError("the support period has not ended")
        self._move(Status.EXPIRED, "system", now, note="support deadline missed")
        self._record(
            events.InitiativeExpired(
                **self._facts(), reason="support_deadline_missed", previous_status=Status.GATHERING_SUPPORT.value
            )
        )

    def fund(self, round_id: uuid.UUID, awarded_amount_cents: int, now: datetime) -> None:
        """The vouchers service awarded the initiative its budget."""
        self._require_status("fund", Status.APPROVED)
        self.round_id, self.awarded_amount_cents = round_id, awarded_amount_cents
        self._move(Status.FUNDED, "vouchers", now)
        self._record(
            events.InitiativeFunded(**self._facts(), round_id=round_id, awarded_amount_cents=awarded_amount_cents)
        )

    def expire_unawarded(self, round_id: uuid.UUID, now: datetime) -> None:
        """The round closed without awarding the approved initiative."""
        self._require_status("expire", Status.APPROVED)
        self._move(Status.EXPIRED, "vouchers", now, note=f"round {round_id} closed without an award")
        self._record(
            events.InitiativeExpired(
                **self._facts(), reason="round_closed_without_award", previous_status=Status.APPROVED.value
            )
        )

    def start(self, actor_id: str, now: datetime) -> None:
        self._require_initiator(actor_id, "start")
        self._require_status("start", Status.FUNDED)
        self._move(Status.IN_PROGRESS, actor_id, now)
        self._record(events.InitiativeStarted(**self._facts(), started_by=actor_id))

    def cancel(self, actor_id: str, reason: str, now: datetime) -> None:
        self._require_initiator(actor_id, "cancel")
        if self.status not in {Status.FUNDED, Status.IN_PROGRESS}:
            raise IllegalTransition("cancel", self.status)
        self._require_text(reason, "reason")
        previous = self.status
        self._move(Status.CANCELLED, actor_id, now, note=reason)
        self._record(
            events.InitiativeCancelled(
                **self._facts(), cancelled_by=actor_id, reason=reason, previous_status=previous.value
            )
        )

    def report(self, actor_id: str, what_was_done: str, spending: list[Spending], now: datetime) -> None:
        """Account for the initiative: what was done, and what was spent per budget line (public)."""
        self._require_initiator(actor_id, "report on")
        self._require_status("report on", Status.IN_PROGRESS)
        self._require_text(what_was_done, "what_was_done")
        budgeted = [line.description for line in self.budget_lines]
        reported = [line.description for line in spending]
        if sorted(reported) != sorted(budgeted):
            raise InvalidInput("report the spending of every budget line exactly once", field="spending")
        if any(line.spent_cents < 0 for line in spending):
            raise InvalidInput("spent amounts cannot be negative", field="spending")
        self.what_was_done, self.spending = what_was_done, list(spending)
        self._move(Status.COMPLETED, actor_id, now)
        amounts = {line.description: line.amount_cents for line in self.budget_lines}
        self._record(
            events.InitiativeCompleted(
                **self._facts(),
                reported_by=actor_id,
                what_was_done=what_was_done,
                spent_amount_cents=sum(line.spent_cents for line in spending),
                spending=[
                    events.BudgetLineSpending(
                        description=line.description,
                        budgeted_cents=amounts[line.description],
                        spent_cents=line.spent_cents,
                    )
                    for line in spending
                ],
            )
        )

    # -- a resident forgotten ---------------------------------------------------------------

    def forget(self, resident_id: str, tombstone: str) -> bool:
        """The resident asked to be forgotten: the initiative stays, public as it was, with `tombstone` where they
        owned or co-initiated it, and their open invitation is gone (nobody can accept it any more). Nothing else
        changes and nothing is recorded; returns whether anything changed."""
        initiators = [tombstone if initiator == resident_id else initiator for initiator in self.initiators]
        invited = [resident for resident in self.invited_co_initiators if resident != resident_id]
        if initiators == self.initiators and invited == self.invited_co_initiators:
            return False
        self.owner_id, self.co_initiators, self.invited_co_initiators = initiators[0], initiators[1:], invited
        return True

    # -- rules shared by the commands --------------------------------------------------------

    def _check_budget(self, rules: Rules) -> None:
        if not self.budget_lines:
            raise InvalidInput("at least one budget line is needed", field="budget_lines")
        descriptions = [line.description for line in self.budget_lines]
        if len(set(descriptions)) != len(descriptions):
            raise InvalidInput("budget line descriptions must differ", field="budget_lines")
        if any(line.amount_cents <= 0 for line in self.budget_lines):
            raise InvalidInput("every budget line needs a positive amount", field="budget_lines")
        if self.requested_amount_cents > rules.max_requested_amount_cents:
            raise InvalidInput(
                f"the requested amount is above the maximum of {rules.max_requested_amount_cents} cents",
                field="budget_lines",
            )

    def _require_initiator(self, actor_id: str, action: str) -> None:
        if not self.is_initiator(actor_id):
            raise NotAllowed(f"only the initiators can {action} this initiative")

    def _require_independent_reviewer(self, official_id: str, action: str) -> None:
        """Nobody decides their own case: an official who (co-)initiates the initiative does not review it."""
        if self.is_initiator(official_id):
            raise NotAllowed(
                f"an official cannot {action} an initiative they initiate or co-initiate: nobody decides their own case"
            )

    def _require_status(self, action: str, status: Status) -> None:
        if self.status is not status:
            raise IllegalTransition(action, self.status)

    @staticmethod
    def _require_text(text: str, field_name: str) -> None:
        if not text or not text.strip():
            raise InvalidInput(f"{field_name} is required", field=field_name)

    def _move(self, to: Status, actor_id: str, now: datetime, note: str | None = None) -> None:
        self.transitions.append(Transition(self.status, to, actor_id, now, note))
        self.status = to

    def _facts(self) -> dict[str, object]:
        return {
            "initiative_id": self.id,
            "area_code": self.area_code,
            "title": self.title,
            "initiators": self.initiators,
        }

    def _record(self, event: Event) -> None:
        self.events.append(event)
