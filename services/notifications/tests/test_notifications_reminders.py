"""Who is due for a reminder, at a given `now` (pure: no database, no clock), and every reminder in both languages."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from notifications.domain import reminders
from notifications.domain.messages import LANGUAGES, catalogue, render, template_fields
from notifications.domain.pages import PAGE_OF_KIND
from notifications.domain.recipients import KINDS, LINKS
from notifications.domain.reminders import ClaimKnown, Due, InitiativeKnown, Kind, Policy, RoundKnown
from notifications.service.reminders import policies
from notifications.settings import NotificationsSettings

from buurtkracht_contracts import initiatives as i

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAY = timedelta(days=1)
ON = Policy(enabled=True, days=3)
OFF = Policy(enabled=False, days=3)


def a_round(mechanism: str = "pledge", closes_in: timedelta = 2 * DAY, **changes) -> RoundKnown:
    values = dict(
        round_id=uuid.uuid4(),
        name="Buurtbudget",
        area_code="WK036300",
        mechanism=mechanism,
        opens_at=NOW - 20 * DAY,
        closes_at=NOW + closes_in,
        closed=False,
    )
    return RoundKnown(**(values | changes))


def an_initiative(status: str, since: timedelta = 0 * DAY, **changes) -> InitiativeKnown:
    values = dict(
        initiative_id=uuid.uuid4(),
        title="Geveltuinen",
        area_code="BU03630001",
        status=status,
        status_since=NOW - since,
        support_threshold=25,
        support_deadline=NOW + 5 * DAY,
        support_count=20,
    )
    return InitiativeKnown(**(values | changes))


def a_claim(claimed: timedelta) -> ClaimKnown:
    return ClaimKnown(uuid.uuid4(), uuid.uuid4(), "WK036300", "Tuincentrum", 12_500, NOW - claimed)


def test_a_pledge_round_closing_within_the_days_reminds_for_its_close_and_says_how_many_days_are_left():
    closing = a_round(closes_in=2 * DAY + timedelta(hours=1))
    [due] = reminders.rounds_closing([closing], NOW, ON)
    assert (due.kind, due.subject, due.moment) == (Kind.ROUND_CLOSING, str(closing.round_id), closing.closes_at)
    assert due.params["days_left"] == 3 and due.params["round_name"] == "Buurtbudget"


@pytest.mark.parametrize(
    "round_, why",
    [
        (a_round(closes_in=3 * DAY + timedelta(seconds=1)), "not yet within the days"),
        (a_round(closes_in=-timedelta(seconds=1)), "its close passed: too late to remind"),
        (a_round(closes_in=DAY, closed=True), "closed already"),
        (a_round(closes_in=DAY, opens_at=NOW + timedelta(hours=1)), "not open yet"),
        (a_round("committee", closes_in=DAY), "a committee round has no wallets"),
        (a_round("equal_shares", closes_in=DAY), "an Equal Shares round has ballots, not wallets"),
    ],
)
def test_no_round_closing_reminder(round_, why):
    assert reminders.rounds_closing([round_], NOW, ON) == [], why


def test_a_round_closing_exactly_the_days_from_now_is_due():
    assert len(reminders.rounds_closing([a_round(closes_in=3 * DAY)], NOW, ON)) == 1


def test_a_kind_switched_off_reminds_nobody():
    assert reminders.rounds_closing([a_round()], NOW, OFF) == []
    assert reminders.ballots_closing([a_round("equal_shares")], NOW, OFF) == []
    assert reminders.support_ending([an_initiative("gathering_support")], NOW, OFF) == []
    assert reminders.reviews_waiting([an_initiative("in_review", 30 * DAY)], NOW, OFF) == []
    assert reminders.claims_waiting([a_claim(30 * DAY)], NOW, OFF, {}) == []
    assert reminders.reports_due([an_initiative("in_progress", 300 * DAY)], NOW, OFF) == []


def test_only_an_open_equal_shares_round_closing_soon_asks_for_ballots():
    ballot = a_round("equal_shares", closes_in=DAY)
    rounds = [ballot, a_round("pledge", closes_in=DAY), a_round("equal_shares", closes_in=5 * DAY)]
    [due] = reminders.ballots_closing(rounds, NOW, ON)
    assert (due.kind, due.subject, due.moment, due.params["area_code"]) == (
        Kind.BALLOT_OPEN,
        str(ballot.round_id),
        ballot.closes_at,
        "WK036300",
    )


def test_support_ending_says_how_many_supporters_are_still_needed_and_reminds_for_the_deadline():
    gathering = an_initiative("gathering_support", since=10 * DAY, support_count=21)
    [due] = reminders.support_ending([gathering], NOW, Policy(True, 7))
    assert due.moment == gathering.support_deadline and due.params["supporters_needed"] == 4
    assert due.params["support_count"] == 21 and due.params["days_left"] == 5


@pytest.mark.parametrize(
    "initiative, why",
    [
        (an_initiative("gathering_support", support_count=25), "it has enough support"),
        (an_initiative("in_review"), "it is in review, no longer gathering support"),
        (an_initiative("gathering_support", support_deadline=NOW + 8 * DAY), "the deadline is not yet within 7 days"),
        (an_initiative("gathering_support", support_deadline=NOW - DAY), "the deadline passed"),
        (an_initiative("gathering_support", support_deadline=None), "no deadline"),
    ],
)
def test_no_support_ending_reminder(initiative, why):
    assert reminders.support_ending([initiative], NOW, Policy(True, 7)) == [], why


def test_an_initiative_waiting_in_review_the_days_reminds_for_the_start_of_its_wait():
    waiting = an_initiative("in_review", since=14 * DAY)
    [due] = reminders.reviews_waiting(
        [waiting, an_initiative("in_review", since=14 * DAY - timedelta(minutes=1))], NOW, Policy(True, 14)
    )
    assert (due.kind, due.subject, due.moment) == (Kind.REVIEW_WAITING, str(waiting.initiative_id), NOW - 14 * DAY)
    assert due.params["days_waited"] == 14
    decided = [an_initiative(status, since=40 * DAY) for status in ("approved", "rejected", "changes_requested")]
    assert reminders.reviews_waiting(decided, NOW, Policy(True, 14)) == []


def test_a_claim_waiting_the_days_reminds_with_its_initiative_title_and_a_younger_one_not():
    old, young = a_claim(7 * DAY), a_claim(6 * DAY)
    [due] = reminders.claims_waiting([old, young], NOW, Policy(True, 7), {old.initiative_id: "Bankjes"})
    assert (due.kind, due.subject, due.moment) == (Kind.CLAIM_WAITING, str(old.claim_id), old.claimed_at)
    assert due.params["initiative_title"] == "Bankjes" and due.params["amount_cents"] == 12_500


def test_a_report_is_due_once_an_initiative_has_been_in_progress_the_days():
    started = an_initiative("in_progress", since=90 * DAY)
    [due] = reminders.reports_due([started, an_initiative("in_progress", since=89 * DAY)], NOW, Policy(True, 90))
    assert (due.kind, due.moment) == (Kind.REPORT_DUE, started.status_since)
    assert reminders.reports_due([an_initiative("completed", since=200 * DAY)], NOW, Policy(True, 90)) == []


def test_days_left_count_a_part_of_a_day_as_a_day():
    assert reminders.days_left(NOW + timedelta(hours=1), NOW) == 1
    assert reminders.days_left(NOW + 2 * DAY, NOW) == 2
    assert reminders.days_left(NOW + 2 * DAY + timedelta(seconds=1), NOW) == 3


def test_the_status_of_an_initiative_follows_its_events():
    facts = dict(initiative_id=uuid.uuid4(), area_code="BU03630001", title="Geveltuinen", initiators=["r-1"])
    submitted = i.InitiativeSubmitted(
        **facts,
        category="green",
        summary="Groen",
        requested_amount_cents=1,
        status="in_review",
        support_threshold=0,
        support_deadline=None,
    )
    assert reminders.status_after(submitted) == "in_review"
    assert reminders.status_after(i.SupportThresholdReached(**facts, support_count=3)) == "in_review"
    assert reminders.status_after(i.InitiativeStarted(**facts, started_by="r-1")) == "in_progress"
    assert reminders.status_after(i.InitiativeSupported(**facts, supporter_id="r-2", support_count=1)) is None


def test_every_kind_is_configured_by_its_settings():
    settings = NotificationsSettings(
        database_url="postgresql://unused", reminder_claim_waiting_enabled=False, reminder_report_due_days=30
    )
    configured = policies(settings)
    assert set(configured) == set(Kind)
    assert configured[Kind.CLAIM_WAITING] == Policy(False, 7)
    assert configured[Kind.REPORT_DUE] == Policy(True, 30)


def test_every_reminder_is_a_kind_residents_can_mute_and_opens_a_page():
    assert set(reminders.KINDS) <= set(KINDS)
    assert set(reminders.KINDS) <= set(PAGE_OF_KIND)


EVERY_DUE = [
    *reminders.rounds_closing([a_round(closes_in=DAY)], NOW, ON),
    *reminders.ballots_closing([a_round("equal_shares", closes_in=DAY)], NOW, ON),
    *reminders.support_ending([an_initiative("gathering_support")], NOW, Policy(True, 7)),
    *reminders.reviews_waiting([an_initiative("in_review", since=20 * DAY)], NOW, Policy(True, 14)),
    *reminders.claims_waiting([a_claim(10 * DAY)], NOW, Policy(True, 7), {}),
    *reminders.reports_due([an_initiative("in_progress", since=100 * DAY)], NOW, Policy(True, 90)),
]


def test_every_kind_of_reminder_is_covered():
    assert {due.kind for due in EVERY_DUE} == set(Kind)


def stored(due: Due) -> dict:
    """What a stored reminder message keeps: its values (and a wallet's balance) that its templates use."""
    values = due.params | ({"wallet_balance_cents": 750} if due.kind is Kind.ROUND_CLOSING else {})
    return {name: value for name, value in values.items() if name in template_fields(due.kind) | LINKS}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("due", EVERY_DUE, ids=[due.kind.value for due in EVERY_DUE])
def test_every_reminder_renders_in_both_languages(due, language):
    assert due.kind in catalogue(language)
    message = render(due.kind, language, stored(due), "https://buurtkracht.example", area_names={"WK036300": "Oost"})
    assert message.subject.strip() and "\n" not in message.subject
    assert "None" not in message.text and "{{" not in message.text
    assert "https://buurtkracht.example/" in message.text


@pytest.mark.parametrize(
    "kind, language, subject",
    [
        (Kind.ROUND_CLOSING, "nl", "Nog 1 dag: je hebt nog € 7,50 aan vouchers in 'Buurtbudget'"),
        (Kind.ROUND_CLOSING, "en", "1 day left: you still have €7.50 in vouchers in 'Buurtbudget'"),
        (Kind.BALLOT_OPEN, "nl", "Nog 1 dag om te stemmen in 'Buurtbudget'"),
        (Kind.BALLOT_OPEN, "en", "1 day left to vote in 'Buurtbudget'"),
        (Kind.SUPPORT_ENDING, "nl", "Nog 5 dagen steun verzamelen voor 'Geveltuinen'"),
        (Kind.SUPPORT_ENDING, "en", "5 days left to gather support for 'Geveltuinen'"),
        (Kind.REVIEW_WAITING, "nl", "'Geveltuinen' wacht al 20 dagen op beoordeling (Oost)"),
        (Kind.REVIEW_WAITING, "en", "'Geveltuinen' has waited 20 days for review (Oost)"),
        (Kind.CLAIM_WAITING, "nl", "Declaratie wacht al 10 dagen: € 125,00 van Tuincentrum"),
        (Kind.CLAIM_WAITING, "en", "Expense claim waiting 10 days: €125.00 from Tuincentrum"),
        (Kind.REPORT_DUE, "nl", "Vertel hoe het ging met 'Geveltuinen'"),
        (Kind.REPORT_DUE, "en", "Tell how 'Geveltuinen' went"),
    ],
)
def test_reminders_say_what_is_due_in_each_language(kind, language, subject):
    [due] = [due for due in EVERY_DUE if due.kind is kind]
    values = stored(due) | {"area_code": "WK036300"}
    message = render(kind, language, values, "https://buurtkracht.example", area_names={"WK036300": "Oost"})
    assert message.subject == subject


def test_the_support_reminder_tells_how_many_supporters_are_still_needed():
    [due] = [due for due in EVERY_DUE if due.kind is Kind.SUPPORT_ENDING]
    assert "er zijn nog 5 nodig" in render(due.kind, "nl", stored(due), "https://b.example").text
    assert "needs 5 more" in render(due.kind, "en", stored(due), "https://b.example").text
