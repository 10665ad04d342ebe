"""The rules of the vouchers domain, without a database: every decision the domain objects make, the ledger
entries they return and the events they record, and every refusal."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from vouchers.domain.awards import Award, decide_committee_award
from vouchers.domain.initiatives import Ending, Initiative, InitiativeStatus
from vouchers.domain.ledger import Account, Entry, InsufficientFunds, Kind, Unbalanced
from vouchers.domain.pledges import Pledge, PledgeStatus, Wallet, award, give_back, pledge_take
from vouchers.domain.rounds import WALLETS_PER_EVENT, Mechanism, Round, RoundStatus
from vouchers.domain.spending import AmountMismatch, Claim, ClaimStatus, PayoutStatus

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


def test_a_committee_decision_needs_a_quorum_of_distinct_members_among_whom_the_recorder():
    assert decide_committee_award([("a", "for"), ("b", "abstain")], 2, "a").awarded is True
    assert decide_committee_award([("a", "for"), ("b", "against")], 2, "a").awarded is False
    with pytest.raises(InvalidInput):
        decide_committee_award([("a", "for"), ("a", "for")], 1, "a")
    with pytest.raises(NotAllowed):
        decide_committee_award([("a", "for")], 1, "b")
    with pytest.raises(Conflict) as refused:
        decide_committee_award([("a", "for")], 2, "a")
    assert refused.value.current_status == "no_quorum"


def test_an_award_decision_is_recorded_with_the_votes_and_never_above_the_approved_amount():
    round_, initiative = a_round(Mechanism.COMMITTEE), an_initiative(5_000)
    with pytest.raises(InvalidInput):
        Award.decide(round_, initiative, 5_001, [("a", "for"), ("b", "for")], "a")
    decision = Award.decide(round_, initiative, 5_000, [("a", "for"), ("b", "against"), ("c", "for")], "a")
    assert (decision.awarded, decision.quorum) == (True, 2)
    [told] = decision.events
    assert isinstance(told, events.AwardDecided) and [v.member_id for v in told.votes] == ["a", "b", "c"]
    initiative.status = InitiativeStatus.WITHDRAWN
    with pytest.raises(Conflict):
        Award.decide(round_, initiative, 5_000, [("a", "for"), ("b", "for")], "a")


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
