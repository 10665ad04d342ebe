"""The public read model, pure: what each event leaves of an initiative and a round, and that none of it names a
person."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from portal.domain.model import (
    PledgeProgress,
    PublicInitiative,
    PublicRound,
    RoundShare,
    RoundTotals,
    Status,
)
from portal.entrypoints.events import HANDLERS, INITIATIVE_EVENTS

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts import vouchers as round_events
from buurtkracht_contracts.registry import models_on
from buurtkracht_contracts.topics import INITIATIVES_EVENTS

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
OWNER, SUPPORTER, OFFICIAL, PLEDGER = "r-owner-1", "r-supporter-1", "o-official-1", "r-pledger-1"
AREA = "BU03630101"
IID, ROUND = uuid.uuid4(), uuid.uuid4()


def facts(**changes) -> dict:
    return {"initiative_id": IID, "area_code": AREA, "title": "Geveltuinen", "initiators": [OWNER]} | changes


def submitted() -> events.InitiativeSubmitted:
    return events.InitiativeSubmitted(
        **facts(),
        category="green",
        summary="Groen langs de gevels",
        requested_amount_cents=75_000,
        status="gathering_support",
        support_threshold=2,
        support_deadline=NOW + timedelta(days=42),
        budget_lines=[
            events.PlannedBudgetLine(description="Planten", amount_cents=50_000),
            events.PlannedBudgetLine(description="Aarde", amount_cents=25_000),
        ],
    )


def completed() -> events.InitiativeCompleted:
    return events.InitiativeCompleted(
        **facts(),
        reported_by=OWNER,
        what_was_done="Veertig geveltuinen aangelegd",
        spent_amount_cents=68_000,
        spending=[
            events.BudgetLineSpending(description="Planten", budgeted_cents=50_000, spent_cents=48_000),
            events.BudgetLineSpending(description="Aarde", budgeted_cents=25_000, spent_cents=20_000),
        ],
    )


def life() -> list[events.InitiativeEvent]:
    """An initiative from submission to completion, as the initiatives service tells it."""
    return [
        submitted(),
        events.InitiativeSupported(**facts(), supporter_id=SUPPORTER, support_count=1),
        events.InitiativeSupported(**facts(), supporter_id="r-other", support_count=2),
        events.SupportThresholdReached(**facts(), support_count=2),
        events.InitiativeApproved(
            **facts(), official_id=OFFICIAL, requested_amount_cents=75_000, approved_amount_cents=70_000
        ),
        events.InitiativeFunded(**facts(), round_id=ROUND, awarded_amount_cents=70_000),
        events.InitiativeStarted(**facts(), started_by=OWNER),
        completed(),
    ]


def replay(history: list[events.InitiativeEvent]) -> PublicInitiative:
    initiative = PublicInitiative.first_seen(history[0])
    for event in history:
        initiative.apply(event)
    return initiative


def test_an_initiative_is_followed_from_submission_to_its_report():
    history = life()
    seen = []
    initiative = PublicInitiative.first_seen(history[0])
    for event in history:
        initiative.apply(event)
        seen.append(initiative.status)
    assert seen == [
        Status.GATHERING_SUPPORT,
        Status.GATHERING_SUPPORT,
        Status.GATHERING_SUPPORT,
        Status.IN_REVIEW,
        Status.APPROVED,
        Status.FUNDED,
        Status.IN_PROGRESS,
        Status.COMPLETED,
    ]
    assert initiative.support_count == 2
    assert (initiative.approved_amount_cents, initiative.awarded_amount_cents, initiative.round_id) == (
        70_000,
        70_000,
        ROUND,
    )
    assert [(line.description, line.amount_cents) for line in initiative.budget_lines] == [
        ("Planten", 50_000),
        ("Aarde", 25_000),
    ]
    report = initiative.public_report()
    assert report is not None
    assert report.what_was_done == "Veertig geveltuinen aangelegd"
    assert report.spent_amount_cents == 68_000
    assert [(s.description, s.budgeted_cents, s.spent_cents) for s in report.spending] == [
        ("Planten", 50_000, 48_000),
        ("Aarde", 25_000, 20_000),
    ]


def test_the_report_is_not_public_before_the_initiative_is_completed():
    initiative = replay(life())
    initiative.status = Status.IN_PROGRESS
    assert initiative.public_report() is None


@pytest.mark.parametrize(
    ("event", "status"),
    [
        (events.InitiativeRejected(**facts(), official_id=OFFICIAL, reason="Buiten het budget"), Status.REJECTED),
        (
            events.ChangesRequested(**facts(), official_id=OFFICIAL, comment="Splits de begroting"),
            Status.CHANGES_REQUESTED,
        ),
        (events.InitiativeWithdrawn(**facts(), withdrawn_by=OWNER, previous_status="approved"), Status.WITHDRAWN),
        (
            events.InitiativeExpired(**facts(), reason="support_deadline_missed", previous_status="gathering_support"),
            Status.EXPIRED,
        ),
        (
            events.InitiativeCancelled(
                **facts(), cancelled_by=OWNER, reason="Geen vrijwilligers", previous_status="funded"
            ),
            Status.CANCELLED,
        ),
    ],
)
def test_each_ending_and_turn_shows_as_the_status_it_leaves(event, status):
    initiative = replay([submitted()])
    initiative.apply(event)
    assert initiative.status is status


def test_an_initiative_first_seen_midway_is_known_by_what_that_event_tells():
    initiative = replay(
        [events.InitiativeApproved(**facts(), official_id=OFFICIAL, requested_amount_cents=9, approved_amount_cents=8)]
    )
    assert (initiative.id, initiative.area_code, initiative.title, initiative.status) == (
        IID,
        AREA,
        "Geveltuinen",
        Status.APPROVED,
    )
    assert initiative.approved_amount_cents == 8
    assert initiative.budget_lines == ()


def test_a_resubmission_keeps_the_support_counted_and_takes_the_new_budget():
    initiative = replay(
        [
            submitted(),
            events.InitiativeSupported(**facts(), supporter_id=SUPPORTER, support_count=1),
            events.ChangesRequested(**facts(), official_id=OFFICIAL, comment="Minder aarde"),
            submitted().model_copy(
                update={"budget_lines": [events.PlannedBudgetLine(description="Planten", amount_cents=60_000)]}
            ),
        ]
    )
    assert initiative.status is Status.GATHERING_SUPPORT
    assert initiative.support_count == 1
    assert [line.description for line in initiative.budget_lines] == ["Planten"]


def test_a_submission_recorded_before_budget_lines_were_told_leaves_them_to_the_report():
    initiative = replay([submitted().model_copy(update={"budget_lines": []})])
    assert initiative.budget_lines == ()
    initiative.apply(completed())
    assert [(line.description, line.amount_cents) for line in initiative.budget_lines] == [
        ("Planten", 50_000),
        ("Aarde", 25_000),
    ]


def test_support_withdrawn_sets_the_count_the_event_tells():
    initiative = replay(life()[:3])
    initiative.apply(
        events.InitiativeSupportWithdrawn(**facts(), supporter_id=SUPPORTER, support_count=1, reason="became_initiator")
    )
    assert initiative.support_count == 1


@pytest.mark.parametrize(
    ("pledged", "goal", "percent"),
    [(0, 70_000, 0), (35_000, 70_000, 50), (69_999, 70_000, 99), (80_000, 70_000, 100), (5_000, None, None)],
)
def test_pledge_progress_is_whole_percent_of_the_approved_amount_at_most_all_of_it(pledged, goal, percent):
    assert PledgeProgress(pledged, goal).percent == percent


def pledge(kind, initiative_id, pledged_to_initiative, **extra):
    return kind(
        round_id=ROUND,
        area_code="WK036301",
        pledge_id=uuid.uuid4(),
        initiative_id=initiative_id,
        resident_id=PLEDGER,
        amount_cents=1_000,
        wallet_balance_cents=1_000,
        pledged_to_initiative_cents=pledged_to_initiative,
        **extra,
    )


def test_round_totals_add_up_what_each_initiative_has_in_the_round():
    opened = round_events.RoundOpened(
        round_id=ROUND,
        area_code="WK036301",
        name="Buurtbudget 2027",
        mechanism="pledge",
        total_budget_cents=100_000,
        voucher_amount_cents=2_000,
        opens_at=NOW,
        closes_at=NOW + timedelta(days=30),
    )
    other = uuid.uuid4()
    first, second = RoundShare(ROUND, IID), RoundShare(ROUND, other)
    first.apply(pledge(round_events.PledgeMade, IID, 2_000, requested_amount_cents=1_000))
    first.apply(pledge(round_events.PledgeMade, IID, 3_000, requested_amount_cents=1_000))
    first.apply(pledge(round_events.PledgeWithdrawn, IID, 2_000, reason="withdrawn_by_resident"))
    second.apply(
        round_events.InitiativeAwarded(
            round_id=ROUND, area_code="WK036301", initiative_id=other, mechanism="pledge", awarded_amount_cents=40_000
        )
    )
    totals = RoundTotals(PublicRound.opened(opened), (first, second, RoundShare(ROUND, uuid.uuid4())))
    assert (totals.pledged_cents, totals.awarded_cents, totals.unawarded_cents, totals.initiative_count) == (
        2_000,
        40_000,
        60_000,
        2,
    )
    assert totals.round.is_open


def test_a_closed_round_keeps_its_summary_and_is_no_longer_open():
    public_round = PublicRound(ROUND, "WK036301", "Buurtbudget", "committee", 100_000, None, NOW, NOW)
    public_round.close(
        round_events.RoundClosed(
            round_id=ROUND,
            area_code="WK036301",
            name="Buurtbudget",
            mechanism="committee",
            summary=round_events.RoundSummary(
                total_budget_cents=100_000,
                awarded_cents=70_000,
                returned_to_pool_cents=30_000,
                awarded_initiative_ids=[IID],
                unawarded_initiative_ids=[],
            ),
        )
    )
    assert (public_round.is_open, public_round.awarded_cents_at_close, public_round.returned_to_pool_cents) == (
        False,
        70_000,
        30_000,
    )


def test_no_person_is_kept_whatever_the_events_name():
    """Every id of a person the events carry is left out of the read model: it holds counts and sums only."""
    initiative = replay(life())
    share = RoundShare(ROUND, IID)
    share.apply(pledge(round_events.PledgeMade, IID, 1_000, requested_amount_cents=1_000))
    kept = repr(dataclasses.asdict(initiative)) + repr(dataclasses.asdict(share))
    for person in (OWNER, SUPPORTER, "r-other", OFFICIAL, PLEDGER):
        assert person not in kept


def test_every_public_change_of_an_initiative_is_handled():
    """Only events that tell who volunteered or joined, or who was asked for help and what they answered, are left
    out: they change nothing the public sees. (An area registered is no change of an initiative; it has a handler of
    its own.)"""
    left_out = set(models_on(INITIATIVES_EVENTS)) - set(INITIATIVE_EVENTS) - {events.AreaRegistered}
    assert left_out == {
        events.VolunteerJoined,
        events.CoInitiatorJoined,
        events.HelpRequested,
        events.NeighbourAsked,
        events.HelpAccepted,
        events.HelpDeclined,
        events.HelpRequestFilled,
    }
    assert set(INITIATIVE_EVENTS) | {events.AreaRegistered} <= set(HANDLERS)
