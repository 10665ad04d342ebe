"""Property test of the initiative lifecycle: random sequences of commands by various actors on one Initiative
aggregate (pure domain: no database, no Kafka), checked against a small reference model of the rules.

The reference holds the transition table of `initiatives.domain.model` (and DOMAIN.md) and, for each command,
the refusals in the order the rules name them. Every command must be refused with exactly the DomainError
the reference names and then change nothing at all, or be accepted and record exactly the events and history
entries the reference names. After every step:
- the status, the initiators and the open invitations are those of the reference;
- the support count is the number of distinct supporters, and no initiator is a supporter;
- an initiative gathering support has less support than its threshold (reaching it sends it to review);
- an approved amount is positive and at most the requested amount;
- a final status stays final;
- nobody reviews their own initiative: no review event names an official among its initiators;
- every event names the owner first, and the history is one unbroken chain of transitions.
"""

from __future__ import annotations

import copy
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from initiatives.domain.model import (
    AlreadyDone,
    BudgetLine,
    Category,
    DomainError,
    IllegalTransition,
    Initiative,
    InvalidInput,
    NotAllowed,
    NotInvited,
    Rules,
    Spending,
    Status,
    Transition,
)

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts.event import Event
from tests.properties import run_machine

pytestmark = [pytest.mark.unit, pytest.mark.properties]

S = Status
START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
SUPPORT_PERIOD = timedelta(days=42)
MAX_REQUESTED = 500_000
ROUND = uuid.UUID(int=7)

OWNER = "r-owner"
RESIDENTS = ["r-ann", "r-bob", "r-cem", "r-dua"]
OFFICIALS = ["o-eva", "o-fer"]  # an official can also be a resident who is invited to co-initiate
PEOPLE = [OWNER, *RESIDENTS, *OFFICIALS]

FINAL = frozenset({S.REJECTED, S.WITHDRAWN, S.EXPIRED, S.COMPLETED, S.CANCELLED})
EDITABLE = frozenset({S.DRAFT, S.CHANGES_REQUESTED})
OPEN_FOR_VOLUNTEERS = frozenset({S.GATHERING_SUPPORT, S.IN_REVIEW, S.APPROVED, S.FUNDED, S.IN_PROGRESS})

# The lifecycle: command -> {status it is allowed from: status after}. Submitting goes to review instead when
# the support already counts enough; support reaching the threshold moves gathering_support to in_review.
TRANSITIONS: dict[str, dict[Status, Status]] = {
    "submit": {S.DRAFT: S.GATHERING_SUPPORT, S.CHANGES_REQUESTED: S.GATHERING_SUPPORT},
    "approve": {S.IN_REVIEW: S.APPROVED},
    "reject": {S.IN_REVIEW: S.REJECTED},
    "request_changes": {S.IN_REVIEW: S.CHANGES_REQUESTED},
    "withdraw": {s: S.WITHDRAWN for s in (S.DRAFT, S.CHANGES_REQUESTED, S.GATHERING_SUPPORT, S.IN_REVIEW, S.APPROVED)},
    "expire_support_period": {S.GATHERING_SUPPORT: S.EXPIRED},
    "fund": {S.APPROVED: S.FUNDED},
    "expire_unawarded": {S.APPROVED: S.EXPIRED},
    "start": {S.FUNDED: S.IN_PROGRESS},
    "cancel": {S.FUNDED: S.CANCELLED, S.IN_PROGRESS: S.CANCELLED},
    "report": {S.IN_PROGRESS: S.COMPLETED},
}
REVIEW_EVENTS = (events.InitiativeApproved, events.InitiativeRejected, events.ChangesRequested)
NOT_FINAL = frozenset(Status) - FINAL

# The machine's commands: each with the statuses the rules accept it from (who may do it is up to the rules),
# and how much more likely it is chosen there. Commands that end the initiative weigh less, so that examples
# spend their steps on the way rather than after the end.
COMMANDS: dict[str, tuple[frozenset[Status], int]] = {
    "submit": (frozenset(TRANSITIONS["submit"]), 4),
    "support": (frozenset({S.GATHERING_SUPPORT}), 4),
    "withdraw_support": (frozenset({S.GATHERING_SUPPORT}), 3),
    "volunteer": (OPEN_FOR_VOLUNTEERS, 1),
    "review": (frozenset({S.IN_REVIEW}), 4),
    "withdraw": (frozenset(TRANSITIONS["withdraw"]), 0),
    "time_passes": (frozenset({S.GATHERING_SUPPORT}), 1),
    "the_round_decides": (frozenset({S.APPROVED}), 3),
    "start": (frozenset(TRANSITIONS["start"]), 4),
    "cancel": (frozenset(TRANSITIONS["cancel"]), 1),
    "report": (frozenset(TRANSITIONS["report"]), 3),
    "edit": (EDITABLE, 4),
    "invite_co_initiator": (NOT_FINAL, 2),
    "accept_co_initiator_invitation": (NOT_FINAL, 3),
}


@dataclass(frozen=True)
class Accepted:
    """What an accepted command records: these events, in this order, and `moves` history entries."""

    events: list[type[Event]]
    moves: int = 0


Outcome = Accepted | type[DomainError]


def blank(text: str) -> bool:
    return not text.strip()


@dataclass
class Reference:
    """The rules, small: each command returns the refusal the rules name first, or what it records (and then
    updates the reference). The budget is a map from description to amount."""

    threshold: int
    budget: dict[str, int]
    status: Status = S.DRAFT
    initiators: list[str] = field(default_factory=lambda: [OWNER])
    invited: list[str] = field(default_factory=list)
    supporters: set[str] = field(default_factory=set)
    volunteers: set[str] = field(default_factory=set)
    deadline: datetime | None = None
    approved: int | None = None

    @property
    def requested(self) -> int:
        return sum(self.budget.values())

    def _move(self, command: str, to: Status | None = None) -> None:
        """The transition of `command` from the current status (the caller checked the table allows it)."""
        self.status = to or TRANSITIONS[command][self.status]

    def submit(self, actor: str, now: datetime) -> Outcome:
        if actor not in self.initiators:
            return NotAllowed
        if self.status not in TRANSITIONS["submit"]:
            return IllegalTransition
        enough = len(self.supporters) >= self.threshold
        self._move("submit", S.IN_REVIEW if enough else None)
        self.deadline = now + SUPPORT_PERIOD
        return Accepted([events.InitiativeSubmitted], moves=1)

    def support(self, resident: str, lives_in_area: bool, now: datetime) -> Outcome:
        if self.status is not S.GATHERING_SUPPORT or (self.deadline is not None and now > self.deadline):
            return IllegalTransition
        if resident in self.initiators or not lives_in_area:
            return NotAllowed
        if resident in self.supporters:
            return AlreadyDone
        self.supporters.add(resident)
        if len(self.supporters) >= self.threshold:
            self.status = S.IN_REVIEW
            return Accepted([events.InitiativeSupported, events.SupportThresholdReached], moves=1)
        return Accepted([events.InitiativeSupported])

    def withdraw_support(self, resident: str) -> Outcome:
        if resident not in self.supporters:
            return DomainError
        if self.status is not S.GATHERING_SUPPORT:
            return IllegalTransition
        self.supporters.remove(resident)
        return Accepted([events.InitiativeSupportWithdrawn])

    def volunteer(self, resident: str) -> Outcome:
        if self.status not in OPEN_FOR_VOLUNTEERS:
            return IllegalTransition
        if resident in self.initiators:
            return NotAllowed
        if resident in self.volunteers:
            return AlreadyDone
        self.volunteers.add(resident)
        return Accepted([events.VolunteerJoined])

    def review(self, decision: str, official: str, amount: int, text: str) -> Outcome:
        if official in self.initiators:
            return NotAllowed
        if self.status is not S.IN_REVIEW:
            return IllegalTransition
        if (decision == "approve" and not 0 < amount <= self.requested) or (decision != "approve" and blank(text)):
            return InvalidInput
        self._move(decision)
        if decision == "approve":
            self.approved = amount
        recorded = {
            "approve": events.InitiativeApproved,
            "reject": events.InitiativeRejected,
            "request_changes": events.ChangesRequested,
        }
        return Accepted([recorded[decision]], moves=1)

    def by_initiator(self, command: str, actor: str, recorded: type[Event], text: str = "text") -> Outcome:
        """withdraw, start, cancel: initiators only, from the statuses of the table, with a text (cancel)."""
        if actor not in self.initiators:
            return NotAllowed
        if self.status not in TRANSITIONS[command]:
            return IllegalTransition
        if blank(text):
            return InvalidInput
        self._move(command)
        return Accepted([recorded], moves=1)

    def report(self, actor: str, what_was_done: str, spending: list[Spending]) -> Outcome:
        if actor not in self.initiators:
            return NotAllowed
        if self.status is not S.IN_PROGRESS:
            return IllegalTransition
        if (
            blank(what_was_done)
            or sorted(s.description for s in spending) != sorted(self.budget)
            or any(s.spent_cents < 0 for s in spending)
        ):
            return InvalidInput
        self._move("report")
        return Accepted([events.InitiativeCompleted], moves=1)

    def by_system(self, command: str, recorded: type[Event], early: bool = False) -> Outcome:
        """fund, expire_unawarded, expire_support_period: no actor; the support period may not have ended yet."""
        if self.status not in TRANSITIONS[command]:
            return IllegalTransition
        if early:
            return DomainError
        self._move(command)
        return Accepted([recorded], moves=1)

    def edit(self, actor: str, changes: dict[str, object]) -> Outcome:
        if actor not in self.initiators:
            return NotAllowed
        if self.status not in EDITABLE:
            return IllegalTransition
        if set(changes) - {"title", "budget_lines"}:
            return InvalidInput
        if "budget_lines" in changes:
            lines: list[BudgetLine] = changes["budget_lines"]  # type: ignore[assignment]
            descriptions = [line.description for line in lines]
            if (
                not lines
                or len(set(descriptions)) != len(descriptions)
                or any(line.amount_cents <= 0 for line in lines)
                or sum(line.amount_cents for line in lines) > MAX_REQUESTED
            ):
                return InvalidInput
            self.budget = {line.description: line.amount_cents for line in lines}
        return Accepted([])

    def invite(self, actor: str, resident: str) -> Outcome:
        if actor != OWNER:
            return NotAllowed
        if self.status in FINAL:
            return IllegalTransition
        if resident in self.initiators or resident in self.invited:
            return AlreadyDone
        self.invited.append(resident)
        return Accepted([])

    def accept(self, actor: str, resident: str) -> Outcome:
        if actor != resident:
            return NotAllowed
        if resident in self.initiators:
            return AlreadyDone
        if resident not in self.invited:
            return NotInvited
        if self.status in FINAL:
            return IllegalTransition
        recorded: list[type[Event]] = [events.CoInitiatorJoined]
        if resident in self.supporters:
            self.supporters.remove(resident)
            recorded.insert(0, events.InitiativeSupportWithdrawn)
        self.invited.remove(resident)
        self.initiators.append(resident)
        return Accepted(recorded)


def snapshot(initiative: Initiative) -> dict[str, object]:
    return copy.deepcopy(vars(initiative))


TEXTS = st.sampled_from(["not in this budget", "add a maintenance plan", "planted forty gardens", "", "   "])


class InitiativeLifecycle(RuleBasedStateMachine):
    """One initiative, commands by the owner, neighbours, invitees and officials; the clock moves on too."""

    def __init__(self) -> None:
        super().__init__()
        self.now = START
        self.initiative: Initiative | None = None
        self.reference: Reference | None = None
        self.published: list[Event] = []
        self.history: list[Transition] = []
        self.ended_as: Status | None = None
        self.rules = Rules()

    # -- running a command ---------------------------------------------------------------------

    def attempt(self, expected: Outcome, command) -> None:
        """Run `command(initiative)`: refused with exactly `expected` and nothing changed, or accepted with the
        events and history entries `expected` names. The recorded events and history are then taken away, as
        the unit of work and the repository do."""
        initiative = self.initiative
        before = snapshot(initiative)
        status_before = initiative.status
        try:
            command(initiative)
        except DomainError as refusal:
            assert isinstance(expected, type), f"refused with {refusal!r}, but the rules accept it"
            assert type(refusal) is expected, f"refused with {refusal!r}; the rules name {expected.__name__}"
            assert snapshot(initiative) == before, "a refused command changed the initiative"
            return
        assert isinstance(expected, Accepted), f"accepted, but the rules refuse it with {expected.__name__}"
        assert [type(event) for event in initiative.events] == expected.events
        assert len(initiative.transitions) == expected.moves
        if expected.moves:
            assert initiative.transitions[0].from_status is status_before
            assert initiative.transitions[-1].to_status is initiative.status
        for event in initiative.events:
            assert event.initiative_id == initiative.id and event.initiators[0] == OWNER
        if initiative.events:
            assert initiative.events[-1].initiators == self.reference.initiators
        self.published += initiative.events
        self.history += initiative.transitions
        initiative.events.clear()
        initiative.transitions.clear()

    def someone(self, data, *, likely: list[str] | None = None) -> str:
        """A person, more often one of `likely` (the initiators, when not named)."""
        likely = self.reference.initiators if likely is None else likely
        return data.draw(st.sampled_from(likely * 6 + PEOPLE), label="actor")

    # -- the commands --------------------------------------------------------------------------

    def do_submit(self, actor: str) -> None:
        self.attempt(self.reference.submit(actor, self.now), lambda i: i.submit(actor, self.rules, self.now))

    def do_support(self, resident: str, lives_in_area: bool) -> None:
        already = resident in self.reference.supporters
        self.attempt(
            self.reference.support(resident, lives_in_area, self.now),
            lambda i: i.support(resident, lives_in_area, already, self.now),
        )

    def do_review(self, decision: str, official: str, amount: int = 0, text: str = "") -> None:
        calls = {
            "approve": lambda i: i.approve(official, amount, self.now),
            "reject": lambda i: i.reject(official, text, self.now),
            "request_changes": lambda i: i.request_changes(official, text, self.now),
        }
        self.attempt(self.reference.review(decision, official, amount, text), calls[decision])

    def do_fund(self) -> None:
        awarded = self.reference.approved or 1
        self.attempt(
            self.reference.by_system("fund", events.InitiativeFunded),
            lambda i: i.fund(ROUND, awarded, self.now),
        )

    def do_invite(self, actor: str, resident: str) -> None:
        self.attempt(self.reference.invite(actor, resident), lambda i: i.invite_co_initiator(actor, resident))

    def do_start(self, actor: str) -> None:
        self.attempt(
            self.reference.by_initiator("start", actor, events.InitiativeStarted),
            lambda i: i.start(actor, self.now),
        )

    # -- how the example begins: a draft, or further along its lifecycle -------------------------

    @initialize(
        threshold=st.sampled_from([0, 1, 2, 3]),
        reached=st.sampled_from(
            [S.IN_PROGRESS, S.FUNDED, S.APPROVED, S.CHANGES_REQUESTED, S.IN_REVIEW, S.GATHERING_SUPPORT, S.DRAFT]
        ),
        invited=st.lists(st.sampled_from(RESIDENTS[1:] + OFFICIALS), max_size=2, unique=True),
    )
    def begin(self, threshold: int, reached: Status, invited: list[str]) -> None:
        """A draft with some residents (or officials) invited to co-initiate it, taken along its lifecycle to
        `reached` by accepted commands; an initiative gathering support has one supporter short of the threshold."""
        self.rules = Rules(
            support_threshold=threshold, support_period=SUPPORT_PERIOD, max_requested_amount_cents=MAX_REQUESTED
        )
        budget = {"plants": 60_000, "tools": 15_000}
        self.initiative = Initiative.draft(
            owner_id=OWNER,
            title="Geveltuinen in de Pijp",
            summary="Groen langs de gevels",
            description="Veertig geveltuinen, samen aangelegd en onderhouden.",
            area_code="BU03630001",
            category=Category.GREEN,
            budget_lines=[BudgetLine(description, amount) for description, amount in budget.items()],
            volunteers_wanted=5,
            rules=self.rules,
            now=self.now,
        )
        self.history += self.initiative.transitions
        self.initiative.transitions.clear()
        self.reference = Reference(threshold=threshold, budget=budget)
        path = [S.DRAFT, S.GATHERING_SUPPORT, S.IN_REVIEW, S.APPROVED, S.FUNDED, S.IN_PROGRESS]
        steps = path[: path.index(S.IN_REVIEW if reached is S.CHANGES_REQUESTED else reached) + 1]
        for resident in invited:
            self.do_invite(OWNER, resident)
        if S.GATHERING_SUPPORT in steps:
            self.do_submit(OWNER)
            enough = S.IN_REVIEW in steps
            for resident in RESIDENTS[: threshold if enough else max(threshold - 1, 0)]:  # or one short of it
                self.do_support(resident, True)
        if reached is S.CHANGES_REQUESTED:
            self.do_review("request_changes", OFFICIALS[0], text="add a maintenance plan")
        if S.APPROVED in steps:
            self.do_review("approve", OFFICIALS[0], self.reference.requested)
        if S.FUNDED in steps:
            self.do_fund()
        if S.IN_PROGRESS in steps:
            self.do_start(OWNER)
        assert self.initiative.status is (reached if reached is not S.GATHERING_SUPPORT or threshold else S.IN_REVIEW)

    # -- the commands the example chooses from -------------------------------------------------

    @rule(data=st.data())
    def act(self, data) -> None:
        """One command, by someone: more likely when the rules allow it from the current status, so examples
        travel the whole lifecycle, and still often from a status that refuses it."""
        status = self.reference.status
        likely = [
            name for name, (allowed_from, weight) in COMMANDS.items() if status in allowed_from for _ in range(weight)
        ]
        name = data.draw(st.sampled_from(likely + list(COMMANDS)), label="command")
        getattr(self, name)(data)

    def submit(self, data) -> None:
        self.do_submit(self.someone(data))

    def support(self, data) -> None:
        lives_in_area = data.draw(st.sampled_from([True, True, True, False]), label="lives in the area")
        self.do_support(self.someone(data, likely=RESIDENTS + self.reference.invited), lives_in_area)

    def withdraw_support(self, data) -> None:
        resident = self.someone(data, likely=sorted(self.reference.supporters))
        supports = resident in self.reference.supporters
        self.attempt(
            self.reference.withdraw_support(resident), lambda i: i.withdraw_support(resident, supports, self.now)
        )

    def volunteer(self, data) -> None:
        resident = self.someone(data, likely=RESIDENTS)
        already = resident in self.reference.volunteers
        self.attempt(self.reference.volunteer(resident), lambda i: i.join_as_volunteer(resident, already))

    def review(self, data) -> None:
        decision = data.draw(
            st.sampled_from(["approve", "approve", "request_changes", "request_changes", "reject"]), label="decision"
        )
        official = self.someone(data, likely=OFFICIALS + self.reference.initiators)
        requested = self.reference.requested
        amount = data.draw(st.sampled_from([requested, requested // 2, 1, 0, -1, requested + 1]), label="amount")
        self.do_review(decision, official, amount, data.draw(TEXTS, label="reason or comment"))

    def withdraw(self, data) -> None:
        actor = self.someone(data)
        self.attempt(
            self.reference.by_initiator("withdraw", actor, events.InitiativeWithdrawn),
            lambda i: i.withdraw(actor, self.now),
        )

    def time_passes(self, data) -> None:
        """The clock moves on, and the periodic expiry tries the initiative (also before its deadline)."""
        self.now += timedelta(days=data.draw(st.sampled_from([1, 5, 20, 43]), label="days"))
        early = self.reference.deadline is None or self.now <= self.reference.deadline
        self.attempt(
            self.reference.by_system("expire_support_period", events.InitiativeExpired, early=early),
            lambda i: i.expire_support_period(self.now),
        )

    def the_round_decides(self, data) -> None:
        """The vouchers service awards the initiative, or its round closes without an award."""
        if data.draw(st.booleans(), label="awarded"):
            self.do_fund()
        else:
            self.attempt(
                self.reference.by_system("expire_unawarded", events.InitiativeExpired),
                lambda i: i.expire_unawarded(ROUND, self.now),
            )

    def start(self, data) -> None:
        self.do_start(self.someone(data))

    def cancel(self, data) -> None:
        actor, reason = self.someone(data), data.draw(TEXTS, label="reason")
        self.attempt(
            self.reference.by_initiator("cancel", actor, events.InitiativeCancelled, reason),
            lambda i: i.cancel(actor, reason, self.now),
        )

    def report(self, data) -> None:
        actor, what_was_done = self.someone(data), data.draw(TEXTS, label="what was done")
        how = data.draw(st.sampled_from(["every line", "every line", "a line missing", "negative"]), label="spending")
        spending = [Spending(description, amount - 1_000) for description, amount in self.reference.budget.items()]
        if how == "a line missing":
            spending = spending[1:]
        elif how == "negative":
            spending[0] = Spending(spending[0].description, -1)
        self.attempt(
            self.reference.report(actor, what_was_done, spending),
            lambda i: i.report(actor, what_was_done, spending, self.now),
        )

    def edit(self, data) -> None:
        actor = self.someone(data)
        change = data.draw(
            st.sampled_from(
                [
                    "title",
                    "smaller budget",
                    "title",
                    "smaller budget",
                    "budget above the maximum",
                    "twice the same line",
                    "owner",
                ]
            ),
            label="change",
        )
        changes: dict[str, object] = {
            "title": {"title": "Geveltuinen voor de hele buurt"},
            "smaller budget": {"budget_lines": [BudgetLine("plants", 40_000), BudgetLine("soil", 5_000)]},
            "budget above the maximum": {"budget_lines": [BudgetLine("a fountain", MAX_REQUESTED + 1)]},
            "twice the same line": {"budget_lines": [BudgetLine("plants", 1_000), BudgetLine("plants", 2_000)]},
            "owner": {"owner_id": actor},
        }[change]
        self.attempt(self.reference.edit(actor, changes), lambda i: i.edit(actor, self.rules, **changes))

    def invite_co_initiator(self, data) -> None:
        actor = self.someone(data, likely=[OWNER])
        self.do_invite(actor, data.draw(st.sampled_from(PEOPLE), label="invitee"))

    def accept_co_initiator_invitation(self, data) -> None:
        resident = self.someone(data, likely=self.reference.invited)
        actor = data.draw(st.sampled_from([resident] * 6 + PEOPLE), label="accepted by")
        supports = resident in self.reference.supporters
        self.attempt(
            self.reference.accept(actor, resident),
            lambda i: i.accept_co_initiator_invitation(actor, resident, supports),
        )

    # -- after every step ----------------------------------------------------------------------

    @invariant()
    def is_what_the_rules_say(self) -> None:
        if self.initiative is None:
            return
        initiative, reference = self.initiative, self.reference
        assert initiative.status is reference.status
        assert initiative.initiators == reference.initiators
        assert initiative.invited_co_initiators == reference.invited
        assert initiative.requested_amount_cents == reference.requested

    @invariant()
    def support_counts_the_distinct_supporters_who_are_not_initiators(self) -> None:
        if self.initiative is None:
            return
        assert self.initiative.support_count == len(self.reference.supporters)
        assert not set(self.initiative.initiators) & self.reference.supporters, "an initiator counts as a supporter"
        if self.initiative.status is S.GATHERING_SUPPORT:
            assert self.initiative.support_count < self.rules.support_threshold, "enough support, still gathering"

    @invariant()
    def an_approved_amount_is_positive_and_at_most_the_requested(self) -> None:
        if self.initiative is None or self.initiative.approved_amount_cents is None:
            return
        assert 0 < self.initiative.approved_amount_cents <= self.initiative.requested_amount_cents

    @invariant()
    def a_final_status_stays_final(self) -> None:
        if self.initiative is None:
            return
        if self.ended_as is not None:
            assert self.initiative.status is self.ended_as, f"left {self.ended_as.value}"
        elif self.initiative.status in FINAL:
            self.ended_as = self.initiative.status

    @invariant()
    def nobody_reviews_their_own_initiative(self) -> None:
        for event in self.published:
            if isinstance(event, REVIEW_EVENTS):
                assert event.official_id not in event.initiators, f"{event.official_id} reviewed their own case"
            if isinstance(event, events.InitiativeSupported | events.InitiativeSupportWithdrawn):
                assert event.supporter_id not in event.initiators

    @invariant()
    def the_history_is_one_chain(self) -> None:
        for earlier, later in zip(self.history, self.history[1:], strict=False):
            assert later.from_status is earlier.to_status


def test_the_initiative_lifecycle_follows_its_rules_under_any_sequence_of_commands():
    run_machine(InitiativeLifecycle, max_examples=50, steps=40)
