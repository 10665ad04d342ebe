"""The rules of the vouchers domain, without a database: every decision the domain objects make, the ledger
entries they return and the events they record, and every refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from vouchers.domain.awards import Award, AwardStatus, tally
from vouchers.domain.initiatives import Ending, Initiative, InitiativeStatus
from vouchers.domain.ledger import Account, Entry, InsufficientFunds, Kind, Unbalanced
from vouchers.domain.pledges import Pledge, PledgeStatus, Wallet, award, give_back, pledge_take
from vouchers.domain.rounds import WALLETS_PER_EVENT, Mechanism, Round, RoundStatus
from vouchers.domain.spending import AmountMismatch, Claim, ClaimStatus, PayoutStatus
from vouchers.domain.steering import MAX_MEMBERS, Member, SteeringGroup, sees_ballots

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed

pytestmark = pytest.mark.unit

NOW = datetime(2026, 5, 1, 12, tzinfo=UTC)
WIJK, BUURT = "WK036300", "BU03630001"


def a_round(mechanism: Mechanism = Mechanism.PLEDGE, **changes) -> Round:
    values = dict(
        area_code=WIJK,
        name="Buurtbudget",
        mechanism=mechanism,
        total_budget_cents=100_000,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=30),
        voucher_amount_cents=2_000,
        allow_wallet_claims=True,
        committee_quorum=2,
    )
    round_, _ = Round.open(**(values | changes))
    round_.events.clear()
    return round_


def an_initiative(approved: int = 5_000, area: str = BUURT, **changes) -> Initiative:
    return Initiative(uuid.uuid4(), area, "Geveltuinen", ["i-1", "i-2"], approved, **changes)


def awarded(round_: Round, amount: int = 5_000) -> Initiative:
    initiative = an_initiative(amount)
    initiative.award_by_committee(round_, uuid.uuid4(), amount)
    initiative.events.clear()
    return initiative


def transfer(entry: Entry) -> tuple[Account, Account, int]:
    (source, out), (target, cents) = entry.lines
    assert out == -cents
    return source, target, cents


# -- the ledger's entries ----------------------------------------------------------------------


def test_an_entry_balances_and_moves_whole_positive_cents():
    with pytest.raises(Unbalanced):
        Entry("x", "1", ((Account.pool(), -100), (Account.returned(), 99)))
    with pytest.raises(Unbalanced):
        Entry.transfer("x", "1", Account.pool(), Account.returned(), 0)
    with pytest.raises(Unbalanced):
        Entry("x", "1", ())


def test_insufficient_funds_is_a_conflict_of_its_own_kind():
    refusal = InsufficientFunds("the wallet holds 0 cents")
    assert isinstance(refusal, Conflict)
    assert (refusal.kind, refusal.current_status) == ("insufficient-funds", "insufficient_funds")


# -- rounds ------------------------------------------------------------------------------------


def test_opening_a_round_moves_its_whole_budget_from_the_municipality_to_its_pool():
    round_, funding = Round.open(
        area_code=WIJK,
        name="Buurtbudget",
        mechanism=Mechanism.PLEDGE,
        total_budget_cents=100_000,
        opens_at=NOW,
        closes_at=NOW + timedelta(days=1),
        voucher_amount_cents=2_000,
        allow_wallet_claims=True,
        committee_quorum=3,
    )
    assert transfer(funding) == (Account.municipality(), Account.pool(), 100_000)
    assert (funding.kind, funding.reference) == ("round_opened", str(round_.id))
    assert round_.committee_quorum is None, "a pledge round has no quorum"
    [opened] = round_.events
    assert isinstance(opened, events.RoundOpened) and opened.total_budget_cents == 100_000


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"total_budget_cents": 0}, "total_budget_cents"),
        ({"closes_at": NOW - timedelta(days=1)}, "closes_at"),
        ({"voucher_amount_cents": None}, "voucher_amount_cents"),
        ({"voucher_amount_cents": 100_001}, "voucher_amount_cents"),
        ({"mechanism": Mechanism.COMMITTEE, "committee_quorum": 0}, "committee_quorum"),
    ],
)
def test_a_round_with_impossible_terms_is_refused(changes, field):
    with pytest.raises(InvalidInput) as refused:
        a_round(**changes)
    assert refused.value.field == field


def test_a_committee_round_has_no_vouchers_and_takes_no_wallet_claims():
    round_ = a_round(Mechanism.COMMITTEE)
    assert (round_.voucher_amount_cents, round_.allow_wallet_claims, round_.committee_quorum) == (None, False, 2)


def test_nothing_moves_in_a_round_before_it_opens_or_after_it_closes():
    round_ = a_round()
    round_.require_open(NOW, "pledge")
    with pytest.raises(Conflict) as early:
        round_.require_open(round_.opens_at - timedelta(seconds=1), "pledge")
    assert early.value.current_status == "not_yet_open"
    with pytest.raises(Conflict) as late:
        round_.require_open(round_.closes_at, "pledge")
    assert late.value.current_status == "closed"
    round_.status = RoundStatus.CLOSED
    with pytest.raises(Conflict):
        round_.require_open(NOW, "pledge")


def test_wallets_go_to_each_resident_once_with_valid_ids_while_the_round_issues_them():
    round_ = a_round()
    assert round_.wallets_for(["r-1", "r-2", "r-1"], NOW) == ["r-1", "r-2"]
    assert round_.wallets_for(["r-1"], round_.opens_at - timedelta(days=1)) == ["r-1"], "before it opens, too"
    with pytest.raises(InvalidInput):
        round_.wallets_for([], NOW)
    with pytest.raises(InvalidInput):
        round_.wallets_for(["r,1"], NOW)
    with pytest.raises(Conflict):
        round_.wallets_for(["r-1"], round_.closes_at)
    with pytest.raises(Conflict):
        a_round(Mechanism.COMMITTEE).wallets_for(["r-1"], NOW)


def test_issued_wallets_are_told_in_events_of_at_most_five_thousand_residents():
    round_ = a_round()
    round_.wallets_issued([f"r-{n}" for n in range(WALLETS_PER_EVENT + 1)])
    assert [len(e.resident_ids) for e in round_.events] == [WALLETS_PER_EVENT, 1]
    assert round_.events[1].issued_cents == 2_000


def test_every_wallets_issued_event_fits_in_one_kafka_record_whatever_the_ids_hold():
    round_ = a_round()
    longest = [f"{n:06d}" + "\U0001f3e1" * 94 for n in range(WALLETS_PER_EVENT)]  # 100 characters, most of 4 bytes
    round_.wallets_issued(longest)
    record = Envelope.wrap(round_.events[0], "urn:test")
    sizes = [len(Envelope.wrap(event, "urn:test").model_dump_json().encode()) for event in round_.events]
    assert len(round_.events) > 1 and max(sizes) < 1_000_000 and record.data["resident_ids"][0] == longest[0]
    assert [rid for event in round_.events for rid in event.resident_ids] == longest  # all of them, in order
    assert sum(event.issued_cents for event in round_.events) == 2_000 * WALLETS_PER_EVENT


def test_only_a_resident_of_the_area_claims_a_wallet_and_only_where_the_round_allows_it():
    round_ = a_round()
    round_.wallet_claimable(True, NOW)
    with pytest.raises(NotAllowed):
        round_.wallet_claimable(False, NOW)
    with pytest.raises(Conflict) as refused:
        a_round(allow_wallet_claims=False).wallet_claimable(True, NOW)
    assert refused.value.current_status == "no_claims"


def test_a_round_closes_once_and_tells_what_it_returned_and_awarded():
    round_ = a_round()
    assert round_.returns_to() == (Account.pool(), "pool")
    winner = uuid.uuid4()
    round_.close(returned_cents=90_000, awarded_cents=10_000, awarded_ids=[winner], unawarded_ids=[])
    returned, closed = round_.events
    assert isinstance(returned, events.FundsReturned) and (returned.to, returned.amount_cents) == (
        "municipality",
        90_000,
    )
    assert isinstance(closed, events.RoundClosed) and closed.summary.awarded_initiative_ids == [winner]
    assert round_.returns_to() == (Account.returned(), "municipality")
    with pytest.raises(Conflict):
        round_.close(0, 0, [], [])


# -- initiatives -------------------------------------------------------------------------------


def test_only_an_approved_initiative_of_the_rounds_area_is_open_for_pledges():
    round_ = a_round()
    an_initiative().require_pledgeable_in(round_)
    with pytest.raises(Conflict):
        an_initiative(area="BU03630201").require_pledgeable_in(round_)
    with pytest.raises(Conflict) as refused:
        an_initiative(status=InitiativeStatus.AWARDED).require_pledgeable_in(round_)
    assert refused.value.current_status == "awarded"


def test_an_initiative_is_awarded_by_pledges_exactly_when_they_reach_its_approved_amount():
    round_, initiative = a_round(), an_initiative(5_000)
    assert initiative.award_by_pledges(round_, 4_999) is None and initiative.status is InitiativeStatus.APPROVED
    entry = initiative.award_by_pledges(round_, 5_000)
    assert entry is not None and transfer(entry) == (
        Account.of_initiative(Kind.PLEDGED, initiative.id),
        Account.of_initiative(Kind.BUDGET, initiative.id),
        5_000,
    )
    assert (initiative.status, initiative.round_id, initiative.awarded_cents) == (
        InitiativeStatus.AWARDED,
        round_.id,
        5_000,
    )
    [told] = initiative.events
    assert isinstance(told, events.InitiativeAwarded) and told.mechanism == "pledge"


def test_a_committee_award_moves_the_amount_from_the_pool_and_happens_once():
    round_, initiative = a_round(Mechanism.COMMITTEE), an_initiative(5_000)
    entry = initiative.award_by_committee(round_, uuid.uuid4(), 4_000)
    assert transfer(entry) == (Account.pool(), Account.of_initiative(Kind.BUDGET, initiative.id), 4_000)
    with pytest.raises(Conflict):
        initiative.award_by_committee(round_, uuid.uuid4(), 1_000)


@pytest.mark.parametrize("how", list(Ending))
def test_an_ended_initiative_returns_what_is_left_of_its_award_to_the_pool(how):
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    entry = initiative.end(how, round_, 3_000)
    assert entry is not None and transfer(entry) == (
        Account.of_initiative(Kind.BUDGET, initiative.id),
        Account.pool(),
        3_000,
    )
    assert initiative.status is InitiativeStatus(how.value) and initiative.ended
    [told] = initiative.events
    assert isinstance(told, events.FundsReturned)
    assert (told.reason, told.to, told.amount_cents) == (f"initiative_{how.value}", "pool", 3_000)


def test_an_initiative_ended_after_its_round_closed_returns_its_budget_to_the_municipality():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    round_.close(0, 5_000, [initiative.id], [])
    entry = initiative.end(Ending.COMPLETED, round_, 1_000)
    assert entry is not None and transfer(entry)[1] == Account.returned()
    assert initiative.events[0].to == "municipality"


def test_ending_moves_nothing_when_nothing_is_left_and_only_withdrawal_ends_an_unawarded_initiative():
    round_ = a_round(Mechanism.COMMITTEE)
    spent = awarded(round_)
    assert spent.end(Ending.COMPLETED, round_, 0) is None and spent.status is InitiativeStatus.COMPLETED
    assert spent.events == []
    approved = an_initiative()
    assert approved.end(Ending.COMPLETED, None, 0) is None and approved.status is InitiativeStatus.APPROVED
    assert approved.end(Ending.WITHDRAWN, None, 0) is None and approved.status is InitiativeStatus.WITHDRAWN
    assert spent.end(Ending.CANCELLED, round_, 0) is None and spent.status is InitiativeStatus.COMPLETED


def test_a_budget_accounts_for_every_cent_of_the_award():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_, 10_000)
    budget = initiative.budget({Kind.BUDGET: 1_000, Kind.HELD: 2_000, Kind.PAYABLE: 3_000, Kind.PAID: 500})
    assert (budget.left_cents, budget.returned_cents) == (1_000, 3_500)


# -- pledges -----------------------------------------------------------------------------------


def test_a_pledge_takes_no_more_than_the_initiative_still_needs():
    assert pledge_take(2_000, 5_000, 4_000) == 1_000
    assert pledge_take(500, 5_000, 0) == 500
    with pytest.raises(InvalidInput):
        pledge_take(0, 5_000, 0)
    with pytest.raises(Conflict) as refused:
        pledge_take(100, 5_000, 5_000)
    assert refused.value.current_status == "awarded"


def test_a_pledge_moves_from_the_wallet_to_the_initiative_and_tells_both_balances():
    round_, initiative = a_round(), an_initiative(5_000)
    wallet = Wallet(round_.id, "r-1", 2_000)
    pledge, entry = Pledge.make(round_, initiative, wallet, 2_000, 4_000, NOW)
    assert (pledge.amount_cents, pledge.requested_cents, pledge.status) == (1_000, 2_000, PledgeStatus.ACTIVE)
    assert transfer(entry) == (Account.wallet("r-1"), Account.of_initiative(Kind.PLEDGED, initiative.id), 1_000)
    assert wallet.balance_cents == 1_000
    [made] = pledge.events
    assert (made.wallet_balance_cents, made.pledged_to_initiative_cents) == (1_000, 5_000)


def test_a_pledge_beyond_the_wallet_is_refused_and_the_wallet_keeps_its_vouchers():
    round_ = a_round()
    wallet = Wallet(round_.id, "r-1", 300)
    with pytest.raises(InsufficientFunds):
        Pledge.make(round_, an_initiative(), wallet, 500, 0, NOW)
    assert wallet.balance_cents == 300


def test_a_pledge_is_withdrawn_once_and_only_while_active():
    round_, initiative = a_round(), an_initiative(5_000)
    wallet = Wallet(round_.id, "r-1", 2_000)
    pledge, _ = Pledge.make(round_, initiative, wallet, 1_500, 0, NOW)
    entry = pledge.withdraw(round_, wallet, 1_500)
    assert transfer(entry) == (Account.of_initiative(Kind.PLEDGED, initiative.id), Account.wallet("r-1"), 1_500)
    assert (wallet.balance_cents, pledge.status) == (2_000, PledgeStatus.WITHDRAWN)
    told = pledge.events[-1]
    assert (told.reason, told.wallet_balance_cents, told.pledged_to_initiative_cents) == (
        "withdrawn_by_resident",
        2_000,
        0,
    )
    with pytest.raises(Conflict) as refused:
        pledge.withdraw(round_, wallet, 0)
    assert refused.value.current_status == "withdrawn"


def test_an_awarded_pledge_can_no_longer_be_withdrawn():
    round_, initiative = a_round(), an_initiative(1_000)
    wallet = Wallet(round_.id, "r-1", 2_000)
    pledge, _ = Pledge.make(round_, initiative, wallet, 1_000, 0, NOW)
    award([pledge])
    with pytest.raises(Conflict):
        pledge.withdraw(round_, wallet, 1_000)


def test_pledges_given_back_tell_each_wallet_what_it_holds_once_all_are_back():
    round_, initiative = a_round(), an_initiative(50_000)
    wallet = Wallet(round_.id, "r-1", 2_000)
    first, _ = Pledge.make(round_, initiative, wallet, 500, 0, NOW)
    second, _ = Pledge.make(round_, initiative, wallet, 700, 500, NOW)
    entries = give_back(round_, [first, second], "initiative_withdrawn", {"r-1": wallet.balance_cents})
    assert [transfer(e)[2] for e in entries] == [500, 700]
    assert {p.status for p in (first, second)} == {PledgeStatus.RETURNED}
    told = [first.events[-1], second.events[-1]]
    assert [(e.wallet_balance_cents, e.pledged_to_initiative_cents) for e in told] == [(2_000, 0), (2_000, 0)]


# -- committee awards --------------------------------------------------------------------------


def a_group(*members: str, chair: str | None = None, area: str = WIJK) -> SteeringGroup:
    group = SteeringGroup(area)
    group.replace([Member(m, m == chair) for m in members], "o-1", NOW)
    group.events.clear()
    return group


def test_a_steering_group_names_each_member_once_with_at_most_one_chair():
    group = SteeringGroup(WIJK)
    for members in (
        [Member("a"), Member("a")],
        [Member("a", True), Member("b", True)],
        [Member("")],
        [Member("x" * 101)],
        [Member(f"m-{n}") for n in range(MAX_MEMBERS + 1)],
    ):
        with pytest.raises(InvalidInput) as refused:
            group.replace(members, "o-1", NOW)
        assert refused.value.field == "members"
    assert group.members == [] and group.events == []


def test_a_steering_group_change_tells_who_the_members_are_who_chairs_and_who_joined_or_left():
    group = a_group("a", "b", chair="a")
    assert group.replace([Member("b", True), Member("c")], "o-1", NOW) is True
    [told] = group.events
    assert isinstance(told, events.SteeringGroupChanged) and told.subject() == WIJK
    assert (told.member_ids, told.chair_id, told.joined_member_ids, told.left_member_ids, told.changed_by) == (
        ["b", "c"],
        "b",
        ["c"],
        ["a"],
        "o-1",
    )
    assert (group.member_ids, group.chair_id) == (["b", "c"], "b")


def test_registering_the_same_steering_group_again_changes_and_tells_nothing():
    group = a_group("a", "b", chair="a")
    assert group.replace([Member("b"), Member("a", True)], "o-2", NOW) is False
    assert group.events == [] and group.changed_by == "o-1"
    assert group.replace([Member("a"), Member("b")], "o-2", NOW) is True, "the chair stepped down"
    assert group.events[0].chair_id is None


def proposed(group: SteeringGroup, quorum: int = 2, proposer: str = "a", initiative: Initiative | None = None):
    round_ = a_round(Mechanism.COMMITTEE, committee_quorum=quorum)
    initiative = initiative or an_initiative(5_000)
    award, entry = Award.propose(round_, initiative, group, proposer, True, 4_000, False, NOW)
    return round_, initiative, award, entry


def test_only_a_registered_member_signed_in_with_the_steering_group_role_proposes_or_votes():
    group = a_group("a", "b")
    round_, initiative = a_round(Mechanism.COMMITTEE), an_initiative()
    with pytest.raises(NotAllowed) as refused:
        Award.propose(round_, initiative, group, "z", True, 4_000, False, NOW)
    assert "not a registered member of the steering group of WK036300" in str(refused.value)
    with pytest.raises(NotAllowed) as refused:
        Award.propose(round_, initiative, group, "a", False, 4_000, False, NOW)
    assert "steering_group role" in str(refused.value)
    _, _, award, _ = proposed(group)
    for member, holds_role in (("z", True), ("b", False)):
        with pytest.raises(NotAllowed):
            award.cast(round_, initiative, group, member, holds_role, "for", NOW)
    assert list(award.ballots) == ["a"]


def test_nobody_proposes_or_votes_on_an_award_for_an_initiative_they_co_initiate():
    group = a_group("a", "i-2", "b")
    initiative = an_initiative()  # initiated by i-1 and i-2
    with pytest.raises(NotAllowed) as refused:
        proposed(group, proposer="i-2", initiative=initiative)
    assert "nobody votes on an award for their own initiative" in str(refused.value)
    round_, _, award, _ = proposed(group, initiative=initiative)
    with pytest.raises(NotAllowed):
        award.cast(round_, initiative, group, "i-2", True, "for", NOW)
    [told] = [e for e in award.events if isinstance(e, events.AwardProposed)]
    assert told.eligible_member_ids == ["a", "b"] and told.proposed_by == "a" and told.quorum == 2


def test_nobody_sees_who_voted_how_on_an_award_for_an_initiative_they_co_initiate_only_the_counts():
    group = a_group("a", "b", "c", "i-2")
    round_, initiative, award, _ = proposed(group, quorum=3)  # initiated by i-1 and i-2
    award.cast(round_, initiative, group, "b", True, "against", NOW)
    assert [sees_ballots(initiative, reader) for reader in ("i-1", "i-2", "a", "o-1")] == [False, False, True, True]
    assert award.counts(group.eligible_for(initiative)) == {"for": 1, "against": 1, "abstain": 0}
    assert award.counts(["a"]) == {"for": 1, "against": 0, "abstain": 0}, "only the votes that count"


def test_a_proposal_is_awarded_as_soon_as_a_quorum_of_eligible_members_votes_more_for_than_against():
    group = a_group("a", "b", "c")
    round_, initiative, award, entry = proposed(group, quorum=2)
    assert entry is None and award.status is AwardStatus.OPEN and award.awarded is None
    entry = award.cast(round_, initiative, group, "b", True, "abstain", NOW)
    assert entry is not None and award.status is AwardStatus.AWARDED and award.decided_at == NOW
    assert transfer(entry) == (Account.pool(), Account.of_initiative(Kind.BUDGET, initiative.id), 4_000)
    assert (initiative.status, initiative.awarded_cents) == (InitiativeStatus.AWARDED, 4_000)
    proposed_event, decided = award.events
    assert isinstance(proposed_event, events.AwardProposed) and isinstance(decided, events.AwardDecided)
    assert decided.awarded is True and decided.decision_id == award.id == proposed_event.decision_id
    assert [(v.member_id, v.vote) for v in decided.votes] == [("a", "for"), ("b", "abstain")]
    assert decided.proposed_by == "a" and decided.quorum == 2


def test_a_quorum_of_one_awards_with_the_proposers_own_vote():
    _, initiative, award, entry = proposed(a_group("a", "b"), quorum=1)
    assert entry is not None and award.awarded is True and initiative.status is InitiativeStatus.AWARDED


def test_a_tie_at_the_quorum_stays_open_until_more_votes_decide_it():
    group = a_group("a", "b", "c")
    round_, initiative, award, _ = proposed(group, quorum=2)
    assert award.cast(round_, initiative, group, "b", True, "against", NOW) is None
    assert award.status is AwardStatus.OPEN, "1 for, 1 against: not awarded yet, and c has not voted"
    assert award.cast(round_, initiative, group, "c", True, "for", NOW) is not None
    assert award.awarded is True


def test_a_proposal_is_not_awarded_once_every_eligible_member_voted_without_more_for_than_against():
    group = a_group("a", "b", "c")
    round_, initiative, award, _ = proposed(group, quorum=2)
    award.cast(round_, initiative, group, "b", True, "against", NOW)
    assert award.cast(round_, initiative, group, "c", True, "abstain", NOW) is None
    assert (award.status, award.awarded) == (AwardStatus.NOT_AWARDED, False)
    assert initiative.status is InitiativeStatus.APPROVED and initiative.events == []
    decided = award.events[-1]
    assert isinstance(decided, events.AwardDecided) and decided.awarded is False and len(decided.votes) == 3


def test_when_the_quorum_cannot_be_reached_the_last_eligible_vote_decides_not_awarded():
    group = a_group("a", "b")
    round_, initiative, award, _ = proposed(group, quorum=3)
    award.cast(round_, initiative, group, "b", True, "for", NOW)
    assert award.status is AwardStatus.NOT_AWARDED, "every eligible member voted: two votes never make three"


def test_a_member_changes_their_vote_while_the_proposal_is_open_and_a_decided_one_takes_no_more_votes():
    group = a_group("a", "b", "c")
    round_, initiative, award, _ = proposed(group, quorum=3)
    award.cast(round_, initiative, group, "b", True, "for", NOW)
    award.cast(round_, initiative, group, "a", True, "against", NOW + timedelta(minutes=1))
    assert [(b.member_id, b.vote) for b in award.ballots.values()] == [("b", "for"), ("a", "against")]
    award.cast(round_, initiative, group, "c", True, "against", NOW)
    assert award.status is AwardStatus.NOT_AWARDED
    with pytest.raises(Conflict) as refused:
        award.cast(round_, initiative, group, "c", True, "for", NOW)
    assert refused.value.current_status == "not_awarded"
    with pytest.raises(InvalidInput):
        proposed(group)[2].cast(round_, initiative, group, "b", True, "maybe", NOW)


def test_a_vote_of_a_member_who_became_an_initiator_or_left_the_group_no_longer_counts():
    group = a_group("a", "b", "c", "d")
    round_, initiative, award, _ = proposed(group, quorum=3)
    award.cast(round_, initiative, group, "b", True, "for", NOW)
    initiative.initiators_changed(["i-1", "i-2", "b"])  # b joined the initiative as a co-initiator
    group.replace([Member("a"), Member("b"), Member("c")], "o-1", NOW)  # d left
    assert award.cast(round_, initiative, group, "c", True, "for", NOW) is None
    assert award.status is AwardStatus.NOT_AWARDED, "a and c are all who are eligible now; two votes miss the quorum"
    assert [v.member_id for v in award.events[-1].votes] == ["a", "c"], "b's vote did not count"


def test_tallying_counts_only_the_votes_of_eligible_members():
    assert tally({"a": "for", "b": "against"}, ["a", "b", "c"], 2) is None
    assert tally({"a": "for", "b": "abstain"}, ["a", "b", "c"], 2) is True
    assert tally({"a": "for", "x": "for"}, ["a", "b"], 2) is None, "x is no eligible member"
    assert tally({"a": "against", "b": "for"}, ["a", "b"], 2) is False
    assert tally({"a": "for"}, ["a"], 2) is False


def test_an_award_proposal_is_never_above_the_approved_amount_nor_for_an_initiative_not_open_for_it():
    group = a_group("a", "b")
    round_, initiative = a_round(Mechanism.COMMITTEE), an_initiative(5_000)
    for amount in (0, 5_001):
        with pytest.raises(InvalidInput) as refused:
            Award.propose(round_, initiative, group, "a", True, amount, False, NOW)
        assert refused.value.field == "amount_cents"
    with pytest.raises(Conflict) as refused:
        Award.propose(round_, initiative, group, "a", True, 5_000, True, NOW)
    assert refused.value.current_status == "open"
    initiative.status = InitiativeStatus.WITHDRAWN
    with pytest.raises(Conflict):
        Award.propose(round_, initiative, group, "a", True, 5_000, False, NOW)


def test_a_proposal_takes_no_votes_once_it_lapsed_or_its_round_closed():
    group = a_group("a", "b", "c")
    round_, initiative, award, _ = proposed(group)
    round_.status = RoundStatus.CLOSED
    with pytest.raises(Conflict) as refused:
        award.cast(round_, initiative, group, "b", True, "for", NOW)
    assert refused.value.current_status == "closed"
    award.status = AwardStatus.LAPSED
    with pytest.raises(Conflict) as refused:
        award.cast(round_, initiative, group, "b", True, "for", NOW)
    assert refused.value.current_status == "lapsed"


def test_an_initiative_counts_a_co_initiator_once_they_joined():
    initiative = an_initiative()
    assert initiative.initiators_changed(["i-1", "i-2", "i-3"]) is True
    assert initiative.initiators == ["i-1", "i-2", "i-3"]
    assert initiative.initiators_changed(["i-1", "i-2", "i-3"]) is False, "told again: nothing changes"


# -- spending ----------------------------------------------------------------------------------


def a_claim(round_: Round, initiative: Initiative, amount: int = 3_000, left: int = 5_000) -> Claim:
    claim, _ = Claim.submit(round_, initiative, "i-1", "Tuincentrum", amount, "F-1", left, NOW)
    claim.events.clear()
    return claim


def test_only_an_initiator_claims_a_positive_amount_within_what_is_left_of_an_award():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    claim, hold = Claim.submit(round_, initiative, "i-2", "Tuincentrum", 3_000, "F-1", 5_000, NOW)
    assert transfer(hold) == (
        Account.of_initiative(Kind.BUDGET, initiative.id),
        Account.of_initiative(Kind.HELD, initiative.id),
        3_000,
    )
    assert claim.status is ClaimStatus.HELD and claim.events[0].left_cents == 2_000
    with pytest.raises(NotAllowed):
        Claim.submit(round_, initiative, "r-1", "Tuincentrum", 3_000, "F-1", 5_000, NOW)
    with pytest.raises(InvalidInput):
        Claim.submit(round_, initiative, "i-1", "Tuincentrum", 0, "F-1", 5_000, NOW)
    with pytest.raises(Conflict) as refused:
        Claim.submit(round_, initiative, "i-1", "Tuincentrum", 5_001, "F-1", 5_000, NOW)
    assert (refused.value.kind, refused.value.current_status) == ("insufficient-funds", "insufficient_funds")
    with pytest.raises(Conflict):
        Claim.submit(None, an_initiative(), "i-1", "Tuincentrum", 100, "F-1", 0, NOW)


def test_an_approved_claim_becomes_payable_with_a_payout_of_its_own_reference():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    claim = a_claim(round_, initiative)
    entry = claim.approve(round_, initiative, "o-1", None)
    assert transfer(entry) == (
        Account.of_initiative(Kind.HELD, initiative.id),
        Account.of_initiative(Kind.PAYABLE, initiative.id),
        3_000,
    )
    payout = claim.payout
    assert payout is not None and payout.reference.startswith("BK-") and payout.status is PayoutStatus.REQUESTED
    assert (claim.payout_id, claim.payout_reference) == (payout.id, payout.reference)
    assert [type(e) for e in claim.events + payout.events] == [events.ExpenseApproved, events.PayoutRequested]
    with pytest.raises(Conflict):
        claim.approve(round_, initiative, "o-1", None)


def test_a_declined_claim_needs_a_reason_and_releases_its_hold_to_the_budget():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    claim = a_claim(round_, initiative)
    with pytest.raises(InvalidInput):
        claim.decline(round_, initiative, "o-1", "  ", 2_000)
    assert claim.status is ClaimStatus.HELD
    entry = claim.decline(round_, initiative, "o-1", "te duur", 2_000)
    assert transfer(entry)[1] == Account.of_initiative(Kind.BUDGET, initiative.id)
    [declined] = claim.events
    assert declined.left_cents == 5_000


def test_a_claim_declined_after_its_initiative_ended_follows_the_budget_back_to_the_round():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    claim = a_claim(round_, initiative)
    initiative.end(Ending.CANCELLED, round_, 2_000)
    entry = claim.decline(round_, initiative, "o-1", "geen bon", 0)
    assert transfer(entry)[1] == Account.pool()
    returned, declined = claim.events
    assert (returned.reason, returned.to, returned.amount_cents) == ("initiative_cancelled", "pool", 3_000)
    assert declined.left_cents == 0


def test_nobody_decides_their_own_expense_claim():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)  # initiated by i-1 and i-2
    claim = a_claim(round_, initiative)  # claimed by i-1
    for decider in ("i-1", "i-2"):
        with pytest.raises(NotAllowed) as refused:
            claim.approve(round_, initiative, decider, None)
        assert "nobody decides" in str(refused.value)
        with pytest.raises(NotAllowed):
            claim.decline(round_, initiative, decider, "te duur", 2_000)
    initiative.initiators_changed(["i-2"])  # whoever claimed it stays its claimant
    with pytest.raises(NotAllowed):
        claim.approve(round_, initiative, "i-1", None)
    assert claim.status is ClaimStatus.HELD and claim.events == [] and claim.payout is None


def test_a_payout_settles_once_for_exactly_its_amount():
    round_ = a_round(Mechanism.COMMITTEE)
    initiative = awarded(round_)
    claim = a_claim(round_, initiative)
    claim.approve(round_, initiative, "o-1", None)
    payout = claim.payout
    assert payout is not None
    with pytest.raises(AmountMismatch) as refused:
        payout.settle(round_, initiative, "B-1", NOW, 2_999)
    assert refused.value.kind == "amount-mismatch" and "amount_cents" in str(refused.value)
    assert payout.status is PayoutStatus.REQUESTED
    entry = payout.settle(round_, initiative, "B-1", NOW, 3_000)
    assert entry is not None and transfer(entry) == (
        Account.of_initiative(Kind.PAYABLE, initiative.id),
        Account.of_initiative(Kind.PAID, initiative.id),
        3_000,
    )
    assert (payout.status, payout.bank_reference, payout.settled_at) == (PayoutStatus.SETTLED, "B-1", NOW)
    assert payout.settle(round_, initiative, "B-1", NOW, None) is None, "the same confirmation again moves nothing"
    with pytest.raises(Conflict) as other:
        payout.settle(round_, initiative, "B-2", NOW, None)
    assert other.value.current_status == "settled"
