"""The Method of Equal Shares as the vouchers service applies it, the ballot rules and the Pabulib format: pure,
no database."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import pytest
from vouchers.domain import ballots, pabulib
from vouchers.domain.ballots import Ballot
from vouchers.domain.equal_shares import Candidate, Reason, compute
from vouchers.domain.initiatives import Initiative, InitiativeStatus
from vouchers.domain.rounds import Mechanism, Round, RoundStatus

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed

pytestmark = pytest.mark.unit

WIJK, BUURT = "WK036300", "BU03630001"
NOW = datetime(2026, 6, 1, 12, tzinfo=UTC)
WARSAW = Path(__file__).parent / "data" / "poland_warszawa_2017_plac-wojska-polskiego.pb"


def ids(*names: str) -> dict[str, uuid.UUID]:
    return {name: uuid.UUID(int=n) for n, name in enumerate(names, 1)}


def test_equal_shares_gives_a_minority_its_proportional_share_where_the_most_votes_would_not():
    named = ids("a1", "a2", "a3", "b1", "b2")
    candidates = [Candidate(i, name, 3_000) for name, i in named.items()]
    ballots_cast = [[named["a1"], named["a2"], named["a3"]]] * 6 + [[named["b1"], named["b2"]]] * 4
    outcome = compute(10_000, candidates, ballots_cast)
    # the six afford two of theirs with their 6 x 10 euro, the four one of theirs with 4 x 10 euro
    assert [(r.title, r.position) for r in outcome.funded] == [("a1", 1), ("a2", 2), ("b1", 3)]
    assert outcome.voters == 10 and outcome.share_cents == Fraction(1_000) and outcome.funded_cents == 9_000
    a3, b2 = (next(r for r in outcome.results if r.title == name) for name in ("a3", "b2"))
    assert (a3.reason, a3.supporters, a3.supporters_money_cents) == (Reason.SUPPORTERS_SHORT, 6, 0)
    assert [(s.initiative_id, s.cents) for s in a3.spent_on] == [(named["a1"], 3_000), (named["a2"], 3_000)]
    assert (b2.supporters_money_cents, [(s.initiative_id, s.cents) for s in b2.spent_on]) == (
        1_000,
        [(named["b1"], 3_000)],
    )


def test_the_outcome_does_not_depend_on_the_order_of_the_ballots_and_never_spends_more_than_the_budget():
    named = ids("p", "q", "r", "s")
    candidates = [Candidate(named["p"], "p", 4_000), Candidate(named["q"], "q", 2_500)]
    candidates += [Candidate(named["r"], "r", 1_500), Candidate(named["s"], "s", 6_000)]
    ballots_cast = [[named["p"], named["q"]], [named["q"]], [named["r"], named["s"]], [named["s"]], [named["p"]]]
    outcomes = {compute(9_000, candidates, list(order)) for order in itertools.permutations(ballots_cast)}
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert outcome.funded_cents <= 9_000


def test_ties_go_to_the_lower_cost_then_the_more_approvals_then_the_lower_initiative_id():
    cheap, dear = uuid.UUID(int=2), uuid.UUID(int=1)
    outcome = compute(5_000, [Candidate(dear, "dear", 5_000), Candidate(cheap, "cheap", 4_000)], [[cheap, dear]] * 2)
    assert [r.title for r in outcome.funded] == ["cheap"]
    first, second = uuid.UUID(int=1), uuid.UUID(int=2)
    outcome = compute(5_000, [Candidate(second, "second", 5_000), Candidate(first, "first", 5_000)], [[first, second]])
    assert [r.title for r in outcome.funded] == ["first"]


def test_without_ballots_nothing_is_funded_and_what_costs_more_than_the_budget_says_so():
    big, small, unloved = uuid.UUID(int=1), uuid.UUID(int=2), uuid.UUID(int=3)
    candidates = [Candidate(big, "big", 20_000), Candidate(small, "small", 4_000), Candidate(unloved, "unloved", 100)]
    empty = compute(5_000, candidates, [])
    assert empty.voters == 0 and empty.funded == []
    assert {r.reason for r in empty.results} == {Reason.NO_SUPPORTERS}
    outcome = compute(5_000, candidates, [[big], [small], [], [uuid.uuid4()]])  # empty and unknown approvals: no vote
    assert outcome.voters == 2 and [r.title for r in outcome.funded] == ["small"]
    reasons = {r.title: r.reason for r in outcome.results}
    assert reasons == {"small": None, "big": Reason.OVER_BUDGET, "unloved": Reason.NO_SUPPORTERS}


def test_identical_ballots_count_once_each():
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    outcome = compute(10_000, [Candidate(a, "a", 6_000), Candidate(b, "b", 6_000)], [[a]] * 3 + [[b]] * 2)
    assert [(r.title, r.supporters) for r in outcome.results] == [("a", 3), ("b", 2)]
    assert [r.title for r in outcome.funded] == ["a"]


def test_a_published_pabulib_instance_computes_to_its_published_winners_and_survives_writing_and_reading():
    instance = pabulib.read(WARSAW.read_text(encoding="utf-8"))
    outcome = compute(instance.budget, instance.candidates, instance.ballots, 1)
    assert instance.published_winners == ["1623", "2567", "427", "915"]
    assert sorted(instance.project_ids[r.initiative_id] for r in outcome.funded) == instance.published_winners
    assert outcome.voters == 27
    votes = [pabulib.Vote(n, tuple(ballot)) for n, ballot in enumerate(instance.ballots, 1)]
    written = pabulib.write(
        round_id=uuid.UUID(int=7),
        name="Plac; Wojska\nPolskiego",
        area_code=WIJK,
        opens_at="2016-06-14",
        closes_at="2016-06-24",
        outcome=outcome,
        votes=votes,
    )
    assert "rule;equalshares/add1\n" in written
    assert "description;Buurtkracht Equal Shares round Plac  Wojska Polskiego\n" in written  # no separator, no break
    again = pabulib.read(written)
    again_outcome = compute(again.budget, again.candidates, again.ballots, 1)
    assert sorted(r.cost_cents for r in again_outcome.funded) == sorted(r.cost_cents for r in outcome.funded)
    assert again.published_winners is not None and len(again.published_winners) == 4


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("not a pabulib file", "file"),
        (WARSAW.read_text(encoding="utf-8").replace("vote_type;approval", "vote_type;ordinal"), "vote_type"),
        (WARSAW.read_text(encoding="utf-8").replace("budget;51195", "budget;-5"), "budget"),
        (WARSAW.read_text(encoding="utf-8").replace("427;15995", "427;159.95"), "cost"),
        (WARSAW.read_text(encoding="utf-8").replace("5642;33;F;internet;427", "5642;33;F;internet;999"), "file"),
    ],
)
def test_a_pabulib_file_that_cannot_be_computed_is_refused_naming_what(text, field):
    with pytest.raises(InvalidInput) as refused:
        pabulib.read(text)
    assert refused.value.field == field


# -- ballots -------------------------------------------------------------------------------------------------------


def equal_shares_round(**changes) -> Round:
    round_ = Round(
        id=uuid.UUID(int=99),
        area_code=WIJK,
        name="Gelijke delen",
        mechanism=Mechanism.EQUAL_SHARES,
        total_budget_cents=100_000,
        voucher_amount_cents=None,
        allow_wallet_claims=False,
        committee_quorum=None,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=1),
    )
    for name, value in changes.items():
        setattr(round_, name, value)
    return round_


def initiative(n: int, area: str = BUURT, status: InitiativeStatus = InitiativeStatus.APPROVED) -> Initiative:
    return Initiative(uuid.UUID(int=n), area, f"initiative {n}", ["r-owner"], 10_000, status)


def test_an_equal_shares_round_opens_without_vouchers_or_quorum():
    round_, funding = Round.open(
        area_code=WIJK,
        name="Gelijke delen",
        mechanism=Mechanism.EQUAL_SHARES,
        total_budget_cents=50_000,
        opens_at=NOW,
        closes_at=NOW + timedelta(days=7),
        voucher_amount_cents=2_000,
        allow_wallet_claims=True,
        committee_quorum=3,
    )
    assert (round_.voucher_amount_cents, round_.allow_wallet_claims, round_.committee_quorum) == (None, False, None)
    assert funding.lines[1][1] == 50_000
    (opened,) = round_.events
    assert isinstance(opened, events.RoundOpened) and opened.mechanism == "equal_shares"


def test_a_resident_of_the_area_casts_a_ballot_and_the_same_ballot_again_changes_nothing():
    round_ = equal_shares_round()
    known = {i.id: i for i in (initiative(1), initiative(2))}
    ballot = ballots.cast(round_, "r-1", True, [uuid.UUID(int=1), uuid.UUID(int=2)], known, None, NOW)
    assert ballot == Ballot(round_.id, "r-1", (uuid.UUID(int=1), uuid.UUID(int=2)), NOW)
    (cast,) = round_.events
    assert isinstance(cast, events.BallotCast) and cast.resident_id == "r-1" and len(cast.initiative_ids) == 2
    round_.events.clear()
    assert ballots.cast(round_, "r-1", True, [uuid.UUID(int=2), uuid.UUID(int=1)], known, ballot, NOW) is None
    assert round_.events == []
    emptied = ballots.cast(round_, "r-1", True, [], known, ballot, NOW)
    assert emptied is not None and emptied.initiative_ids == () and len(round_.events) == 1


@pytest.mark.parametrize(
    ("round_changes", "lives_in_area", "approved", "refusal"),
    [
        ({}, False, [1], NotAllowed),
        ({"status": RoundStatus.CLOSED}, True, [1], Conflict),
        ({"closes_at": NOW}, True, [1], Conflict),
        ({"opens_at": NOW + timedelta(hours=1)}, True, [1], Conflict),
        ({"mechanism": Mechanism.PLEDGE}, True, [1], Conflict),
        ({}, True, [1, 1], InvalidInput),
        ({}, True, [404], InvalidInput),
        ({}, True, [3], InvalidInput),  # another wijk's
        ({}, True, [4], InvalidInput),  # awarded already
    ],
)
def test_a_ballot_is_refused_and_records_nothing(round_changes, lives_in_area, approved, refusal):
    round_ = equal_shares_round(**round_changes)
    known = {
        i.id: i for i in (initiative(1), initiative(3, "BU03630701"), initiative(4, BUURT, InitiativeStatus.AWARDED))
    }
    with pytest.raises(refusal) as refused:
        ballots.cast(round_, "r-1", lives_in_area, [uuid.UUID(int=n) for n in approved], known, None, NOW)
    if refusal is InvalidInput:
        assert refused.value.field == "initiative_ids"
    assert round_.events == []


def test_the_equal_shares_award_moves_the_approved_amount_from_the_pool_once_per_round_and_initiative():
    round_ = equal_shares_round()
    funded = initiative(1)
    entry = funded.award_by_equal_shares(round_)
    assert (entry.kind, entry.reference) == ("equal_shares_award", f"{round_.id}:{funded.id}")
    assert funded.status is InitiativeStatus.AWARDED and funded.awarded_cents == 10_000
    (awarded,) = funded.events
    assert isinstance(awarded, events.InitiativeAwarded) and awarded.mechanism == "equal_shares"
    with pytest.raises(Conflict):
        funded.award_by_equal_shares(round_)
