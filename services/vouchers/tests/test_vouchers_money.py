"""Where the money goes in the corners: what closing a round tells the residents whose pledges it returns, and
an award whose initiative ends before it could be spent. Commands through the service layer on a scratch
PostgreSQL (no relay runs, so the outbox holds every event the commands recorded); the ledger's own check
finds nothing after each."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from vouchers.adapters.ledger import Ledger
from vouchers.app import SPEC
from vouchers.domain.ledger import Kind
from vouchers.domain.rounds import Mechanism
from vouchers.domain.steering import Member
from vouchers.service import awards, pledges, reactions, rounds, spending, steering, wallets

from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import create_pool

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"
OFFICIAL = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({WIJK}))
MEMBER = Principal("sg-1", frozenset({Role.STEERING_GROUP}), frozenset({WIJK}))
INITIATOR = Principal("i-1", frozenset({Role.RESIDENT}), frozenset({BUURT}))


def resident(subject: str) -> Principal:
    return Principal(subject, frozenset({Role.RESIDENT}), frozenset({BUURT}))


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, SPEC.migrations)
    pool = await create_pool(scratch_database, min_size=2, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def approved(once, amount: int) -> uuid.UUID:
    initiative_id = uuid.uuid4()
    await once(lambda uow: reactions.initiative_approved(uow, initiative_id, BUURT, "Speeltuin", ["i-1"], amount))
    return initiative_id


async def steering_group(once, *members: str) -> None:
    await once(
        lambda uow: steering.register_steering_group(
            uow, OFFICIAL, WIJK, [Member(m, i == 0) for i, m in enumerate(members)], datetime.now(UTC)
        ),
    )


async def awarded_by_committee(once, open_round, amount: int) -> tuple[uuid.UUID, uuid.UUID]:
    """Awarded by a round whose quorum is one: the proposal of its one member decides it."""
    await steering_group(once, "sg-1")
    round_id = (await open_round(Mechanism.COMMITTEE, WIJK)).id
    initiative_id = await approved(once, amount)
    decided = await once(
        lambda uow: awards.propose_award(uow, MEMBER, round_id, initiative_id, amount, datetime.now(UTC))
    )
    assert decided.award.awarded is True
    return round_id, initiative_id


async def claim(once, initiative_id: uuid.UUID, cents: int, invoice: str):
    claimed, _ = await once(
        lambda uow: spending.claim_expense(
            uow, INITIATOR, initiative_id, "Houthandel", cents, invoice, datetime.now(UTC)
        ),
    )
    return claimed


async def events_of(pool, round_id: uuid.UUID, event_type: str) -> list[dict]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type = $2 ORDER BY id",
            str(round_id),
            f"nl.buurtkracht.vouchers.{event_type}.v1",
        )
    return [row["payload"] for row in rows]


async def money(pool, round_id: uuid.UUID) -> tuple[dict[Kind, int], list[str]]:
    async with pool.acquire() as conn:
        ledger = Ledger(conn)
        return await ledger.totals(round_id), await ledger.check(round_id)


# -- closing a round tells what is true once it closed --------------------------------------------


async def test_closing_a_round_tells_each_resident_whose_pledge_it_returns_the_wallet_expired_with_it(
    pool, once, open_round
):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    first, second = await approved(once, 50_000), await approved(once, 50_000)
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1", "r-2"], datetime.now(UTC)))
    for initiative_id, cents in ((first, 500), (second, 700)):
        await once(
            lambda uow, i=initiative_id, c=cents: pledges.pledge(
                uow, resident("r-1"), round_id, i, c, datetime.now(UTC)
            ),
        )

    await once(lambda uow: rounds.close_round(uow, OFFICIAL, round_id, datetime.now(UTC)))

    returned = await events_of(pool, round_id, "pledge-withdrawn")
    assert [(e["reason"], e["amount_cents"]) for e in returned] == [("round_closed", 500), ("round_closed", 700)]
    assert [(e["wallet_balance_cents"], e["pledged_to_initiative_cents"]) for e in returned] == [(0, 0), (0, 0)], (
        "once the round closed, the wallet holds nothing: its vouchers expired to the pool"
    )
    totals, problems = await money(pool, round_id)
    assert totals[Kind.WALLET] == 0 and totals[Kind.RETURNED] == 100_000
    assert problems == []


async def test_an_initiative_withdrawn_before_its_award_tells_each_wallet_what_it_holds_with_all_pledges_back(
    pool, once, open_round
):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    initiative_id = await approved(once, 50_000)
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1"], datetime.now(UTC)))
    for cents in (500, 700):
        await once(
            lambda uow, c=cents: pledges.pledge(uow, resident("r-1"), round_id, initiative_id, c, datetime.now(UTC)),
        )

    assert await once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id)) == 1_200

    returned = await events_of(pool, round_id, "pledge-withdrawn")
    assert [(e["wallet_balance_cents"], e["pledged_to_initiative_cents"]) for e in returned] == [(2_000, 0)] * 2
    totals, problems = await money(pool, round_id)
    assert totals[Kind.WALLET] == 2_000 and problems == []


# -- an award crossed by the end of its initiative -------------------------------------------------


async def test_an_award_crossed_by_its_initiatives_withdrawal_goes_back_to_the_pool_and_takes_no_more_claims(
    pool, once, open_round
):
    round_id, initiative_id = await awarded_by_committee(once, open_round, 10_000)
    held = await claim(once, initiative_id, 3_000, "H-1")

    returned = await once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id))

    assert returned == 7_000
    totals, problems = await money(pool, round_id)
    assert (totals[Kind.POOL], totals[Kind.BUDGET], totals[Kind.HELD]) == (97_000, 0, 3_000)
    assert problems == []
    [back] = await events_of(pool, round_id, "funds-returned")
    assert (back["initiative_id"], back["amount_cents"], back["reason"], back["to"]) == (
        str(initiative_id),
        7_000,
        "initiative_withdrawn",
        "pool",
    )
    with pytest.raises(Conflict) as refused:
        await claim(once, initiative_id, 100, "H-2")
    assert refused.value.current_status == "withdrawn"
    assert await once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id)) == 0, "delivered again"

    await once(lambda uow: spending.decide_expense(uow, OFFICIAL, held.id, False, "geen bon", datetime.now(UTC)))
    totals, problems = await money(pool, round_id)
    assert (totals[Kind.POOL], totals[Kind.HELD]) == (100_000, 0), "the declined hold followed the budget back"
    assert problems == []
    assert [(e["amount_cents"], e["reason"], e["to"]) for e in await events_of(pool, round_id, "funds-returned")][
        1:
    ] == [(3_000, "initiative_withdrawn", "pool")]


async def test_an_award_whose_initiative_is_withdrawn_after_its_round_closed_goes_back_to_the_municipality(
    pool, once, open_round
):
    round_id, initiative_id = await awarded_by_committee(once, open_round, 10_000)
    await once(lambda uow: rounds.close_round(uow, OFFICIAL, round_id, datetime.now(UTC)))

    assert await once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id)) == 10_000

    totals, problems = await money(pool, round_id)
    assert (totals[Kind.BUDGET], totals[Kind.RETURNED]) == (0, 100_000) and problems == []
    assert (await events_of(pool, round_id, "funds-returned"))[-1]["to"] == "municipality"


async def test_a_held_claim_of_a_withdrawn_initiative_can_still_be_approved_and_paid(pool, once, open_round):
    round_id, initiative_id = await awarded_by_committee(once, open_round, 10_000)
    held = await claim(once, initiative_id, 4_000, "H-1")
    await once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id))

    _, payout = await once(lambda uow: spending.decide_expense(uow, OFFICIAL, held.id, True, None, datetime.now(UTC)))
    finance = Principal("finance", frozenset({Role.INTEGRATION}), frozenset())
    await once(lambda uow: spending.confirm_payout(uow, finance, payout.id, "B-1", datetime.now(UTC), 4_000))

    totals, problems = await money(pool, round_id)
    assert (totals[Kind.POOL], totals[Kind.PAID], totals[Kind.BUDGET]) == (96_000, 4_000, 0) and problems == []


async def test_the_ledger_check_flags_budget_left_with_an_initiative_that_ended(pool, once, open_round):
    round_id, initiative_id = await awarded_by_committee(once, open_round, 10_000)
    async with pool.acquire() as conn:
        await conn.execute("UPDATE initiatives SET status = 'withdrawn' WHERE id = $1", initiative_id)
        problems = await Ledger(conn).check(round_id)
        everywhere = await Ledger(conn).check()
        await conn.execute("UPDATE initiatives SET status = 'awarded' WHERE id = $1", initiative_id)
    assert len(problems) == 1, "the stranded budget is flagged"
    [problem] = problems
    assert str(initiative_id) in problem and "withdrawn" in problem and "10000" in problem
    assert problem in everywhere
    assert (await money(pool, round_id))[1] == []


# -- an open award proposal lapses when nothing can award it any more -----------------------------------------


async def test_an_open_award_proposal_lapses_when_its_initiative_is_awarded_by_pledges_or_withdrawn(
    pool, once, open_round
):
    await steering_group(once, "sg-1", "sg-2", "sg-3")
    now = datetime.now(UTC)
    committee = await open_round(Mechanism.COMMITTEE, WIJK, quorum=3, name="Regiegroep")
    pledge_round = (await open_round(Mechanism.PLEDGE, WIJK)).id
    pledged_to, withdrawn = await approved(once, 2_000), await approved(once, 5_000)
    proposals = [
        await once(lambda uow, i=i: awards.propose_award(uow, MEMBER, committee.id, i, 1_000, now))
        for i in (pledged_to, withdrawn)
    ]
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, pledge_round, ["r-1"], now))
    made = await once(lambda uow: pledges.pledge(uow, resident("r-1"), pledge_round, pledged_to, 2_000, now))
    assert made.awarded is True
    await once(lambda uow: reactions.initiative_withdrawn(uow, withdrawn))

    async with pool.acquire() as conn:
        statuses = [
            await conn.fetchval("SELECT status FROM award_proposals WHERE id = $1", p.award.id) for p in proposals
        ]
    assert statuses == ["lapsed", "lapsed"]
    member2 = Principal("sg-2", frozenset({Role.STEERING_GROUP}), frozenset({WIJK}))
    for proposal in proposals:
        with pytest.raises(Conflict) as refused:
            await once(lambda uow, p=proposal: awards.cast_vote(uow, member2, committee.id, p.award.id, "for", now))
        assert refused.value.current_status == "lapsed"
    totals, problems = await money(pool, committee.id)
    assert totals == {Kind.MUNICIPALITY: -100_000, Kind.POOL: 100_000} and problems == []
