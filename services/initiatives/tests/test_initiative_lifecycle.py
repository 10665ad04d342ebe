"""The initiative's lifecycle as a table: every action from every status is allowed or refused, and a
refused action changes nothing."""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from initiatives.domain.model import (
    AlreadyDone,
    BudgetLine,
    Category,
    IllegalTransition,
    Initiative,
    InvalidInput,
    NotAllowed,
    NotInvited,
    Rules,
    Spending,
    Status,
)

from buurtkracht_contracts import initiatives as events

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RULES = Rules(support_threshold=3, support_period=timedelta(days=42), max_requested_amount_cents=500_000)
OWNER, NEIGHBOUR, OFFICIAL = "r-owner", "r-neighbour", "o-official"
ROUND = uuid.uuid4()


def initiative_in(status: Status) -> Initiative:
    initiative = Initiative.draft(
        owner_id=OWNER,
        title="Geveltuinen in de Pijp",
        summary="Groen langs de gevels",
        description="...",
        area_code="BU03630001",
        category=Category.GREEN,
        budget_lines=[BudgetLine("plants", 60_000), BudgetLine("tools", 15_000)],
        volunteers_wanted=5,
        rules=RULES,
        now=NOW - timedelta(days=60),
    )
    initiative.transitions.clear()
    initiative.status = status
    initiative.support_threshold = RULES.support_threshold
    initiative.support_deadline = NOW + timedelta(days=1)
    initiative.support_count = 1
    if status in {Status.APPROVED, Status.FUNDED, Status.IN_PROGRESS}:
        initiative.approved_amount_cents = 70_000
    return initiative


ACTIONS = {
    "submit": lambda i: i.submit(OWNER, RULES, NOW),
    "support": lambda i: i.support(NEIGHBOUR, True, False, NOW),
    "withdraw_support": lambda i: i.withdraw_support(NEIGHBOUR, True, NOW),
    "volunteer": lambda i: i.join_as_volunteer(NEIGHBOUR, False),
    "approve": lambda i: i.approve(OFFICIAL, 70_000, NOW),
    "reject": lambda i: i.reject(OFFICIAL, "not in this budget", NOW),
    "request_changes": lambda i: i.request_changes(OFFICIAL, "add a maintenance plan", NOW),
    "withdraw": lambda i: i.withdraw(OWNER, NOW),
    "expire_support_period": lambda i: i.expire_support_period(NOW + timedelta(days=2)),
    "fund": lambda i: i.fund(ROUND, 70_000, NOW),
    "expire_unawarded": lambda i: i.expire_unawarded(ROUND, NOW),
    "start": lambda i: i.start(OWNER, NOW),
    "cancel": lambda i: i.cancel(OWNER, "the square is being rebuilt", NOW),
    "report": lambda i: i.report(
        OWNER, "planted 40 facade gardens", [Spending("plants", 58_000), Spending("tools", 15_000)], NOW
    ),
    "edit": lambda i: i.edit(OWNER, RULES, title="Geveltuinen voor de hele buurt"),
}

S = Status
# action -> {status it is allowed from: (status after, event types recorded)}
ALLOWED = {
    "submit": {
        S.DRAFT: (S.GATHERING_SUPPORT, [events.InitiativeSubmitted]),
        S.CHANGES_REQUESTED: (S.GATHERING_SUPPORT, [events.InitiativeSubmitted]),
    },
    "support": {S.GATHERING_SUPPORT: (S.GATHERING_SUPPORT, [events.InitiativeSupported])},
    "withdraw_support": {S.GATHERING_SUPPORT: (S.GATHERING_SUPPORT, [events.InitiativeSupportWithdrawn])},
    "volunteer": {
        s: (s, [events.VolunteerJoined])
        for s in (S.GATHERING_SUPPORT, S.IN_REVIEW, S.APPROVED, S.FUNDED, S.IN_PROGRESS)
    },
    "approve": {S.IN_REVIEW: (S.APPROVED, [events.InitiativeApproved])},
    "reject": {S.IN_REVIEW: (S.REJECTED, [events.InitiativeRejected])},
    "request_changes": {S.IN_REVIEW: (S.CHANGES_REQUESTED, [events.ChangesRequested])},
    "withdraw": {
        s: (S.WITHDRAWN, [events.InitiativeWithdrawn])
        for s in (S.DRAFT, S.CHANGES_REQUESTED, S.GATHERING_SUPPORT, S.IN_REVIEW, S.APPROVED)
    },
    "expire_support_period": {S.GATHERING_SUPPORT: (S.EXPIRED, [events.InitiativeExpired])},
    "fund": {S.APPROVED: (S.FUNDED, [events.InitiativeFunded])},
    "expire_unawarded": {S.APPROVED: (S.EXPIRED, [events.InitiativeExpired])},
    "start": {S.FUNDED: (S.IN_PROGRESS, [events.InitiativeStarted])},
    "cancel": {
        S.FUNDED: (S.CANCELLED, [events.InitiativeCancelled]),
        S.IN_PROGRESS: (S.CANCELLED, [events.InitiativeCancelled]),
    },
    "report": {S.IN_PROGRESS: (S.COMPLETED, [events.InitiativeCompleted])},
    "edit": {S.DRAFT: (S.DRAFT, []), S.CHANGES_REQUESTED: (S.CHANGES_REQUESTED, [])},
}

TABLE = [(action, status) for action in ACTIONS for status in Status]


def state(initiative: Initiative) -> dict:
    return {k: copy.deepcopy(v) for k, v in vars(initiative).items()}


@pytest.mark.parametrize("action, status", TABLE, ids=[f"{a}-from-{s.value}" for a, s in TABLE])
def test_every_action_from_every_status(action, status):
    initiative = initiative_in(status)
    before = state(initiative)
    allowed = ALLOWED[action].get(status)
    if allowed is None:
        with pytest.raises(IllegalTransition) as refused:
            ACTIONS[action](initiative)
        assert refused.value.status is status and status.value in str(refused.value)
        assert state(initiative) == before, "a refused action changed the initiative"
        return
    after, recorded = allowed
    ACTIONS[action](initiative)
    assert initiative.status is after
    assert [type(event) for event in initiative.events] == recorded
    assert len(initiative.transitions) == (0 if after is status else 1)
    for event in initiative.events:
        assert event.initiative_id == initiative.id and event.initiators == [OWNER]


def test_submit_goes_straight_to_review_when_no_support_is_needed():
    initiative = initiative_in(Status.DRAFT)
    initiative.submit(OWNER, Rules(support_threshold=0), NOW)
    assert initiative.status is Status.IN_REVIEW
    assert initiative.events[0].status == "in_review"


def test_reaching_the_threshold_moves_the_initiative_to_review():
    initiative = initiative_in(Status.GATHERING_SUPPORT)
    for resident in ("r-1", "r-2"):
        initiative.support(resident, True, False, NOW)
    assert initiative.status is Status.IN_REVIEW and initiative.support_count == 3
    assert len(initiative.events) == 3
    assert [type(e) for e in initiative.events][-2:] == [events.InitiativeSupported, events.SupportThresholdReached]


@pytest.mark.parametrize(
    "attempt, refusal",
    [
        (lambda i: i.support(OWNER, True, False, NOW), NotAllowed),
        (lambda i: i.support(NEIGHBOUR, False, False, NOW), NotAllowed),
        (lambda i: i.support(NEIGHBOUR, True, True, NOW), AlreadyDone),
        (lambda i: i.support(NEIGHBOUR, True, False, NOW + timedelta(days=2)), IllegalTransition),
        (lambda i: i.join_as_volunteer(OWNER, False), NotAllowed),
        (lambda i: i.join_as_volunteer(NEIGHBOUR, True), AlreadyDone),
        (lambda i: i.withdraw(NEIGHBOUR, NOW), NotAllowed),
        (lambda i: i.expire_support_period(NOW), Exception),
    ],
    ids=[
        "initiator supports",
        "outsider supports",
        "supports twice",
        "after the deadline",
        "initiator volunteers",
        "volunteers twice",
        "non-initiator withdraws",
        "expire before the deadline",
    ],
)
def test_refused_support_and_volunteering_change_nothing(attempt, refusal):
    initiative = initiative_in(Status.GATHERING_SUPPORT)
    before = state(initiative)
    with pytest.raises(refusal):
        attempt(initiative)
    assert state(initiative) == before


@pytest.mark.parametrize("amount", [0, -1, 75_001])
def test_approved_amount_is_positive_and_at_most_requested(amount):
    initiative = initiative_in(Status.IN_REVIEW)
    with pytest.raises(InvalidInput) as refused:
        initiative.approve(OFFICIAL, amount, NOW)
    assert refused.value.field == "approved_amount_cents" and initiative.status is Status.IN_REVIEW


@pytest.mark.parametrize("action", ["reject", "request_changes"])
def test_reject_needs_a_reason_and_request_changes_a_comment(action):
    initiative = initiative_in(Status.IN_REVIEW)
    with pytest.raises(InvalidInput):
        getattr(initiative, action)(OFFICIAL, "  ", NOW)
    assert initiative.status is Status.IN_REVIEW and not initiative.events


def test_a_budget_above_the_maximum_is_refused_and_the_edit_undone():
    initiative = initiative_in(Status.DRAFT)
    with pytest.raises(InvalidInput) as refused:
        initiative.edit(OWNER, RULES, title="Bigger", budget_lines=[BudgetLine("a fountain", 600_000)])
    assert refused.value.field == "budget_lines"
    assert initiative.title == "Geveltuinen in de Pijp" and initiative.requested_amount_cents == 75_000


def test_the_report_accounts_for_every_budget_line_once():
    initiative = initiative_in(Status.IN_PROGRESS)
    with pytest.raises(InvalidInput):
        initiative.report(OWNER, "done", [Spending("plants", 10)], NOW)
    initiative.report(OWNER, "done", [Spending("tools", 14_000), Spending("plants", 61_000)], NOW)
    [completed] = initiative.events
    assert completed.spent_amount_cents == 75_000
    assert {(s.description, s.budgeted_cents, s.spent_cents) for s in completed.spending} == {
        ("plants", 60_000, 61_000),
        ("tools", 15_000, 14_000),
    }


FRIEND = "r-friend"
FINAL = {S.REJECTED, S.WITHDRAWN, S.EXPIRED, S.COMPLETED, S.CANCELLED}


def test_co_initiators_are_invited_by_the_owner_and_appear_in_events_once_they_accept():
    initiative = initiative_in(Status.DRAFT)
    with pytest.raises(NotAllowed):
        initiative.invite_co_initiator(NEIGHBOUR, FRIEND)
    initiative.invite_co_initiator(OWNER, FRIEND)
    initiative.accept_co_initiator_invitation(FRIEND, FRIEND, supports=False)
    initiative.submit(FRIEND, RULES, NOW)
    assert [type(e) for e in initiative.events] == [events.CoInitiatorJoined, events.InitiativeSubmitted]
    assert [e.initiators for e in initiative.events] == [[OWNER, FRIEND], [OWNER, FRIEND]]
    assert initiative.events[0].resident_id == FRIEND


def test_an_invited_resident_is_not_an_initiator_until_they_accept():
    initiative = initiative_in(Status.DRAFT)
    initiative.invite_co_initiator(OWNER, FRIEND)
    assert initiative.initiators == [OWNER] and initiative.invited_co_initiators == [FRIEND]
    assert not initiative.is_initiator(FRIEND) and not initiative.events
    before = state(initiative)
    with pytest.raises(NotAllowed):
        initiative.submit(FRIEND, RULES, NOW)
    with pytest.raises(NotAllowed):
        initiative.edit(FRIEND, RULES, title="Mine now")
    assert state(initiative) == before
    with pytest.raises(AlreadyDone) as twice:
        initiative.invite_co_initiator(OWNER, FRIEND)
    assert twice.value.field == "resident_id"


@pytest.mark.parametrize(
    "attempt, refusal",
    [
        (lambda i: i.accept_co_initiator_invitation(OWNER, FRIEND, False), NotAllowed),
        (lambda i: i.accept_co_initiator_invitation(NEIGHBOUR, FRIEND, False), NotAllowed),
        (lambda i: i.accept_co_initiator_invitation(NEIGHBOUR, NEIGHBOUR, False), NotInvited),
        (lambda i: i.accept_co_initiator_invitation(OWNER, OWNER, False), AlreadyDone),
    ],
    ids=["the owner accepts for the invitee", "a neighbour accepts for the invitee", "not invited", "the owner"],
)
def test_only_the_invited_resident_accepts_their_own_invitation(attempt, refusal):
    initiative = initiative_in(Status.GATHERING_SUPPORT)
    initiative.invite_co_initiator(OWNER, FRIEND)
    before = state(initiative)
    with pytest.raises(refusal):
        attempt(initiative)
    assert state(initiative) == before


@pytest.mark.parametrize("status", list(Status), ids=[s.value for s in Status])
def test_co_initiators_are_invited_and_join_in_every_status_but_a_final_one(status):
    initiative = initiative_in(status)
    if status in FINAL:
        with pytest.raises(IllegalTransition):
            initiative.invite_co_initiator(OWNER, FRIEND)
        initiative.invited_co_initiators.append(FRIEND)  # invited before the initiative ended
        before = state(initiative)
        with pytest.raises(IllegalTransition) as refused:
            initiative.accept_co_initiator_invitation(FRIEND, FRIEND, False)
        assert refused.value.status is status and state(initiative) == before
        return
    initiative.invite_co_initiator(OWNER, FRIEND)
    initiative.accept_co_initiator_invitation(FRIEND, FRIEND, False)
    assert initiative.status is status and initiative.initiators == [OWNER, FRIEND]
    assert initiative.invited_co_initiators == [] and not initiative.transitions
    [joined] = initiative.events
    assert isinstance(joined, events.CoInitiatorJoined) and joined.initiators == [OWNER, FRIEND]


def test_a_supporter_who_becomes_a_co_initiator_no_longer_counts_as_a_supporter():
    initiative = initiative_in(Status.GATHERING_SUPPORT)
    initiative.support(FRIEND, True, False, NOW)
    initiative.events.clear()
    initiative.invite_co_initiator(OWNER, FRIEND)
    initiative.accept_co_initiator_invitation(FRIEND, FRIEND, supports=True)
    assert initiative.support_count == 1 and initiative.status is Status.GATHERING_SUPPORT
    withdrawn, joined = initiative.events
    assert isinstance(withdrawn, events.InitiativeSupportWithdrawn) and withdrawn.reason == "became_initiator"
    assert (withdrawn.supporter_id, withdrawn.support_count, withdrawn.initiators) == (FRIEND, 1, [OWNER])
    assert isinstance(joined, events.CoInitiatorJoined) and joined.initiators == [OWNER, FRIEND]


def test_support_of_a_new_co_initiator_no_longer_counts_towards_the_threshold_on_resubmission():
    initiative = initiative_in(Status.CHANGES_REQUESTED)
    initiative.support_count = RULES.support_threshold  # FRIEND among the supporters
    initiative.invite_co_initiator(OWNER, FRIEND)
    initiative.accept_co_initiator_invitation(FRIEND, FRIEND, supports=True)
    initiative.submit(OWNER, RULES, NOW)
    assert initiative.support_count == RULES.support_threshold - 1
    assert initiative.status is Status.GATHERING_SUPPORT, "the support of an initiator counted"


def test_withdrawn_support_says_the_supporter_took_it_back():
    initiative = initiative_in(Status.GATHERING_SUPPORT)
    initiative.withdraw_support(NEIGHBOUR, True, NOW)
    [withdrawn] = initiative.events
    assert withdrawn.reason == "withdrawn_by_supporter" and withdrawn.support_count == 0


REVIEWS = {
    "approve": lambda i, official: i.approve(official, 70_000, NOW),
    "reject": lambda i, official: i.reject(official, "not in this budget", NOW),
    "request_changes": lambda i, official: i.request_changes(official, "add a maintenance plan", NOW),
}


@pytest.mark.parametrize("decision", REVIEWS)
def test_an_official_cannot_review_an_initiative_they_co_initiate(decision):
    initiative = initiative_in(Status.IN_REVIEW)
    initiative.invite_co_initiator(OWNER, OFFICIAL)
    initiative.accept_co_initiator_invitation(OFFICIAL, OFFICIAL, False)
    initiative.events.clear()
    before = state(initiative)
    with pytest.raises(NotAllowed) as refused:
        REVIEWS[decision](initiative, OFFICIAL)
    assert "initiate or co-initiate" in str(refused.value)
    assert state(initiative) == before


@pytest.mark.parametrize("decision", REVIEWS)
def test_an_official_cannot_review_an_initiative_they_initiate(decision):
    initiative = initiative_in(Status.IN_REVIEW)
    before = state(initiative)
    with pytest.raises(NotAllowed) as refused:
        REVIEWS[decision](initiative, OWNER)
    assert "nobody decides their own case" in str(refused.value)
    assert state(initiative) == before


def test_submitting_tells_the_budget_line_by_line_so_a_read_side_can_show_it():
    initiative = initiative_in(Status.DRAFT)
    initiative.submit(OWNER, RULES, NOW)
    (submitted,) = initiative.events
    assert [(line.description, line.amount_cents) for line in submitted.budget_lines] == [
        (line.description, line.amount_cents) for line in initiative.budget_lines
    ]
    assert sum(line.amount_cents for line in submitted.budget_lines) == submitted.requested_amount_cents
