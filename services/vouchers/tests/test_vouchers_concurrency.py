"""The ledger under real concurrency: many connections to the real PostgreSQL at once, each command in its own
unit of work, all started together. Whatever the interleaving, no wallet is overdrawn, no initiative is
awarded more than approved, every accepted pledge is booked exactly once, and closing a round while residents
pledge and withdraw leaves the books balanced with no pledge still active in it.

At the end, two races, pinned: each test holds one command's transaction open until the other waits for its
lock, so the interleaving is certain, not a matter of timing."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections import Counter
from datetime import UTC, datetime

import asyncpg
import pytest
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.domain.ledger import InsufficientFunds, Kind
from vouchers.domain.rounds import Mechanism
from vouchers.domain.steering import Member
from vouchers.service import awards, reactions, rounds, steering, wallets
from vouchers.service.pledges import PledgeResult, pledge, withdraw_pledge

from buurtkracht_contracts.event import source_urn
from buurtkracht_contracts.refusals import Conflict, DomainError
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import create_pool

pytestmark = pytest.mark.integration

SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")
POOL_SIZE = 30
WIJK, BUURT = "WK036300", "BU03630001"
OFFICIAL = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({WIJK}))


def resident(subject: str) -> Principal:
    return Principal(subject, frozenset({Role.RESIDENT}), frozenset({BUURT}))


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, SPEC.migrations)
    pool = await create_pool(scratch_database, min_size=POOL_SIZE, max_size=POOL_SIZE)
    try:
        yield pool
    finally:
        await pool.close()


async def simultaneously(pool, calls) -> list:
    """Run every `call(uow)` in a unit of work of its own; they start together, as soon as the pool's connections
    are all taken (the rest follow as connections come free). Returns each result or the exception it raised."""
    ready, go = 0, asyncio.Event()
    target = min(len(calls), POOL_SIZE)

    async def one(call):
        nonlocal ready
        async with VouchersUnitOfWork(pool, SOURCE, acquire_timeout=60) as uow:
            ready += 1
            if ready >= target:
                go.set()
            await go.wait()
            result = await call(uow)
            await uow.commit()
            return result

    return await asyncio.gather(*(one(call) for call in calls), return_exceptions=True)


@pytest.fixture
def pledge_round(once, open_round):
    """`await pledge_round(total, voucher, residents)`: an open pledge round of the wijk, and a wallet of `voucher`
    cents for each of `residents`; its id."""

    async def run(total: int, voucher: int, residents: list[str]) -> uuid.UUID:
        round_id = (await open_round(Mechanism.PLEDGE, WIJK, total=total, voucher=voucher)).id
        issued = await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, residents, datetime.now(UTC)))
        assert issued.issued == len(residents)
        return round_id

    return run


async def approved_initiative(once, amount: int) -> uuid.UUID:
    initiative_id = uuid.uuid4()
    await once(
        lambda uow: reactions.initiative_approved(uow, initiative_id, BUURT, "Geveltuinen", ["i-1"], amount),
    )
    return initiative_id


def pledging(subject: str, round_id: uuid.UUID, initiative_id: uuid.UUID, cents: int):
    return lambda uow: pledge(uow, resident(subject), round_id, initiative_id, cents, datetime.now(UTC))


async def balances(pool, round_id: uuid.UUID) -> dict[tuple[Kind, str], int]:
    async with pool.acquire() as conn:
        return {(b.kind, b.owner): b.balance_cents for b in await Ledger(conn).balances(round_id)}


async def problems(pool, round_id: uuid.UUID) -> list[str]:
    async with pool.acquire() as conn:
        return await Ledger(conn).check(round_id)


def split(outcomes: list) -> tuple[list, list[DomainError]]:
    """Accepted results and refusals; anything else (a deadlock, a serialization failure, a bug) fails the test."""
    unexpected = [o for o in outcomes if isinstance(o, BaseException) and not isinstance(o, DomainError)]
    assert not unexpected, f"commands failed otherwise than by a refusal: {unexpected[:3]!r}"
    return [o for o in outcomes if not isinstance(o, BaseException)], [
        o for o in outcomes if isinstance(o, DomainError)
    ]


async def test_simultaneous_pledges_from_one_wallet_never_overdraw_it(pool, once, pledge_round):
    round_id = await pledge_round(100_000, 2_000, ["r-1"])
    initiatives = [await approved_initiative(once, 50_000) for _ in range(5)]

    outcomes = await simultaneously(pool, [pledging("r-1", round_id, initiatives[i % 5], 300) for i in range(50)])

    accepted, refused = split(outcomes)
    assert len(accepted) == 2_000 // 300 == 6
    assert len(refused) == 44 and all(type(r) is InsufficientFunds for r in refused)
    assert sorted(a.wallet_balance_cents for a in accepted) == [200, 500, 800, 1_100, 1_400, 1_700], (
        "each accepted pledge saw the balance the one before it left: no update was lost"
    )
    money = await balances(pool, round_id)
    assert money[Kind.WALLET, "r-1"] == 200
    assert sum(c for (kind, _), c in money.items() if kind is Kind.PLEDGED) == 1_800
    async with pool.acquire() as conn:
        booked = await conn.fetch(
            "SELECT reference, count(*) AS times FROM journal_entries WHERE round_id = $1 AND kind = 'pledge' "
            "GROUP BY reference",
            round_id,
        )
        stored = await conn.fetch("SELECT id, amount_cents, status FROM pledges WHERE round_id = $1", round_id)
    assert {r["reference"]: r["times"] for r in booked} == {str(a.pledge.id): 1 for a in accepted}
    assert {r["id"]: (r["amount_cents"], r["status"]) for r in stored} == {
        a.pledge.id: (300, "active") for a in accepted
    }
    assert await problems(pool, round_id) == []


async def test_simultaneous_pledges_to_one_initiative_never_award_more_than_approved(pool, once, pledge_round):
    residents = [f"r-{n}" for n in range(60)]
    round_id = await pledge_round(100_000, 1_000, residents)
    initiative_id = await approved_initiative(once, 25_500)

    outcomes = await simultaneously(pool, [pledging(r, round_id, initiative_id, 1_000) for r in residents])

    accepted, refused = split(outcomes)
    assert len(accepted) == 26 and len(refused) == 34
    assert all(type(r) is Conflict and r.current_status == "awarded" for r in refused)
    assert Counter(a.pledge.amount_cents for a in accepted) == {1_000: 25, 500: 1}, "exactly one pledge was capped"
    [last] = [a for a in accepted if a.awarded]
    assert (last.pledge.amount_cents, last.pledge.requested_cents) == (500, 1_000)
    money = await balances(pool, round_id)
    assert money[Kind.BUDGET, str(initiative_id)] == 25_500
    assert money[Kind.PLEDGED, str(initiative_id)] == 0
    assert sum(c for (kind, _), c in money.items() if kind is Kind.WALLET) == 60_000 - 25_500
    assert money[Kind.WALLET, last.pledge.resident_id] == 500
    async with pool.acquire() as conn:
        initiative = await conn.fetchrow("SELECT status, awarded_cents FROM initiatives WHERE id = $1", initiative_id)
        stored = await conn.fetch(
            "SELECT amount_cents, status FROM pledges WHERE round_id = $1 AND initiative_id = $2",
            round_id,
            initiative_id,
        )
        awards = await conn.fetchval(
            "SELECT count(*) FROM journal_entries WHERE round_id = $1 AND kind = 'pledge_award'", round_id
        )
    assert (initiative["status"], initiative["awarded_cents"]) == ("awarded", 25_500)
    assert {r["status"] for r in stored} == {"awarded"} and len(stored) == 26
    assert sum(r["amount_cents"] for r in stored) == 25_500, "the pledged and awarded total is exactly the approved"
    assert awards == 1
    assert await problems(pool, round_id) == []


async def staggered(once, calls, spread: float) -> list:
    """Each `call(uow)` in a unit of work of its own, the i-th starting i × `spread` seconds after the first: a
    stream of commands that overlap, with gaps in which a waiting close can take the round."""

    async def one(i, call):
        await asyncio.sleep(i * spread)
        return await once(call)

    return await asyncio.gather(*(one(i, call) for i, call in enumerate(calls)), return_exceptions=True)


async def behind_the_close(pool, once, round_id, calls, close) -> list:
    """Half the calls start together with the close; the other half once the close holds the round (or has closed
    it), so they queue behind it. Returns the outcomes of the calls, then of the close."""
    first, second = calls[: len(calls) // 2], calls[len(calls) // 2 :]
    started = asyncio.gather(*(once(call) for call in [*first, close]), return_exceptions=True)
    task = asyncio.ensure_future(started)
    while not task.done():
        async with pool.acquire() as conn:
            try:
                if (
                    await conn.fetchval("SELECT status FROM rounds WHERE id = $1 FOR SHARE NOWAIT", round_id)
                    == "closed"
                ):
                    break
            except asyncpg.LockNotAvailableError:
                break  # the close has the round
        await asyncio.sleep(0.001)
    later = await asyncio.gather(*(once(call) for call in second), return_exceptions=True)
    outcomes = await task
    return [*outcomes[:-1], *later, outcomes[-1]]


@pytest.mark.parametrize("timing", ["all at once", "a stream", "half behind the close"])
async def test_closing_a_round_amid_pledges_and_withdrawals_leaves_no_pledge_active_and_the_books_balanced(
    pool, once, pledge_round, timing
):
    residents = [f"r-{n}" for n in range(40)]
    round_id = await pledge_round(200_000, 2_000, residents)
    # nine initiatives that need far more than is pledged, and one whose award races the rest
    initiatives = [await approved_initiative(once, amount) for amount in [100_000] * 9 + [3_000]]
    earlier = [
        (await once(pledging(r, round_id, initiatives[n % 10], 700))).pledge for n, r in enumerate(residents[:20])
    ]

    def withdrawing(pledge):
        return lambda uow: withdraw_pledge(uow, resident(pledge.resident_id), round_id, pledge.id, datetime.now(UTC))

    calls = [withdrawing(p) for p in earlier]
    calls += [pledging(r, round_id, initiatives[n % 10], 900) for n, r in enumerate(residents)]
    random.Random(timing).shuffle(calls)

    def close(uow):
        return rounds.close_round(uow, OFFICIAL, round_id, datetime.now(UTC))

    if timing == "half behind the close":
        outcomes = await behind_the_close(pool, once, round_id, calls, close)
    else:
        calls.insert(len(calls) // 2, close)
        outcomes = await (simultaneously(pool, calls) if timing == "all at once" else staggered(once, calls, 0.005))

    accepted, refused = split(outcomes)
    assert [a for a in accepted if isinstance(a, dict)] != [], "the round was closed"
    assert all(type(r) is Conflict and r.current_status in ("closed", "awarded") for r in refused), refused
    if timing == "half behind the close":
        assert all(isinstance(o, Conflict) and o.current_status == "closed" for o in outcomes[len(calls) // 2 : -1]), (
            "commands queued behind the close find the round closed"
        )
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM rounds WHERE id = $1", round_id)
        pledges = await conn.fetch("SELECT id, status FROM pledges WHERE round_id = $1", round_id)
        entries = await conn.fetch(
            "SELECT kind, reference FROM journal_entries WHERE round_id = $1 "
            "AND kind IN ('pledge', 'pledge_withdrawn', 'pledge_returned')",
            round_id,
        )
    assert status == "closed"
    assert not [p for p in pledges if p["status"] == "active"], "no pledge is left active in the closed round"
    made = {a.pledge.id for a in accepted if isinstance(a, PledgeResult)}
    assert made <= {p["id"] for p in pledges}
    booked = Counter((e["kind"], e["reference"]) for e in entries)
    assert max(booked.values()) == 1, "no command was booked twice"
    ways_back = {"withdrawn": {"pledge_withdrawn"}, "returned": {"pledge_returned"}, "awarded": set()}
    for p in pledges:  # each pledge booked once, and its money's way back once, matching its status
        assert booked["pledge", str(p["id"])] == 1
        back = {kind for kind in ("pledge_withdrawn", "pledge_returned") if (kind, str(p["id"])) in booked}
        assert back == ways_back[p["status"]], p
    money = await balances(pool, round_id)
    assert not {a: c for a, c in money.items() if c and a[0] in (Kind.POOL, Kind.WALLET, Kind.PLEDGED)}
    assert await problems(pool, round_id) == []


# -- races, pinned: each test holds one command's transaction open, lets the other queue behind its lock,
# -- then commits; the outcome must be the one a serial order would give.


async def waiting_on_a_lock(pool, count: int = 1) -> None:
    """Until `count` transactions of this database wait for a lock."""
    async with pool.acquire() as conn:
        for _ in range(1_000):
            if (
                await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                >= count
            ):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{count} transaction(s) never waited for a lock")


MEMBERS = [f"sg-{n}" for n in range(1, 7)]


def member(subject: str) -> Principal:
    return Principal(subject, frozenset({Role.STEERING_GROUP}), frozenset({WIJK}))


async def steering_group(once) -> None:
    """The steering group of the wijk: six members, the first chairs it (registered again: nothing changes)."""
    group = [Member(m, m == MEMBERS[0]) for m in MEMBERS]
    await once(lambda uow: steering.register_steering_group(uow, OFFICIAL, WIJK, group, datetime.now(UTC)))


@pytest.fixture
def open_committee_round(once, open_round):
    """`await open_committee_round(quorum)`: an open committee round of the wijk, whose steering group is `MEMBERS`;
    its id."""

    async def run(quorum: int = 1) -> uuid.UUID:
        await steering_group(once)
        return (await open_round(Mechanism.COMMITTEE, WIJK, quorum=quorum)).id

    return run


async def test_simultaneous_proposals_for_one_initiative_leave_one_open(pool, once, open_committee_round):
    round_id = await open_committee_round(quorum=3)
    initiative_id = await approved_initiative(once, 10_000)
    outcomes = await simultaneously(
        pool,
        [
            lambda uow, m=m: awards.propose_award(uow, member(m), round_id, initiative_id, 10_000, datetime.now(UTC))
            for m in MEMBERS
        ],
    )
    accepted, refused = split(outcomes)
    assert len(accepted) == 1 and accepted[0].award.status == "open"
    assert all(type(r) is Conflict and r.current_status == "open" for r in refused) and len(refused) == 5
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM award_proposals WHERE initiative_id = $1", initiative_id) == 1


async def test_simultaneous_votes_decide_a_proposal_once_and_award_it_once(pool, once, open_committee_round):
    round_id = await open_committee_round(quorum=3)
    initiative_id = await approved_initiative(once, 10_000)
    proposal = await once(
        lambda uow: awards.propose_award(uow, member("sg-1"), round_id, initiative_id, 10_000, datetime.now(UTC))
    )
    award_id = proposal.award.id
    outcomes = await simultaneously(
        pool,
        [
            lambda uow, m=m: awards.cast_vote(uow, member(m), round_id, award_id, "for", datetime.now(UTC))
            for m in MEMBERS[1:]
        ],
    )
    accepted, refused = split(outcomes)
    assert len(accepted) == 2, "the second vote besides the proposer's makes the quorum of three and decides it"
    assert [a.award.status for a in accepted].count("awarded") == 1
    assert all(type(r) is Conflict and r.current_status == "awarded" for r in refused) and len(refused) == 3
    async with pool.acquire() as conn:
        entries = await conn.fetchval(
            "SELECT count(*) FROM journal_entries WHERE kind = 'committee_award' AND reference = $1", str(award_id)
        )
        votes = await conn.fetchval("SELECT count(*) FROM award_votes WHERE award_id = $1", award_id)
    assert (entries, votes) == (1, 3)
    assert (await balances(pool, round_id))[Kind.BUDGET, str(initiative_id)] == 10_000
    assert await problems(pool, round_id) == []


async def test_deciding_votes_in_two_rounds_award_an_initiative_once(pool, once, open_committee_round):
    first, second = await open_committee_round(quorum=2), await open_committee_round(quorum=2)
    initiative_id = await approved_initiative(once, 10_000)
    proposals = [
        await once(
            lambda uow, r=r: awards.propose_award(uow, member("sg-1"), r, initiative_id, 10_000, datetime.now(UTC)),
        )
        for r in (first, second)
    ]
    outcomes = await simultaneously(
        pool,
        [
            lambda uow, p=p: awards.cast_vote(
                uow, member("sg-2"), p.award.round_id, p.award.id, "for", datetime.now(UTC)
            )
            for p in proposals
        ],
    )
    accepted, refused = split(outcomes)
    assert len(accepted) == 1 and accepted[0].award.status == "awarded"
    [late] = refused
    assert type(late) is Conflict and late.current_status == "lapsed", "the other proposal lapsed with the award"
    budgets = [(await balances(pool, r)).get((Kind.BUDGET, str(initiative_id)), 0) for r in (first, second)]
    assert sorted(budgets) == [0, 10_000]
    assert await problems(pool, first) == [] and await problems(pool, second) == []


async def test_closing_a_round_never_expires_an_initiative_another_round_awards_meanwhile(
    pool, once, open_committee_round
):
    closing_round, awarding_round = await open_committee_round(), await open_committee_round()
    initiative_id = await approved_initiative(once, 10_000)
    async with VouchersUnitOfWork(pool, SOURCE) as award:
        await awards.propose_award(award, member("sg-1"), awarding_round, initiative_id, 10_000, datetime.now(UTC))
        closing = asyncio.ensure_future(
            once(lambda uow: rounds.close_round(uow, OFFICIAL, closing_round, datetime.now(UTC)))
        )
        await asyncio.sleep(0.3)  # the close runs while the award is uncommitted (it leaves the initiative alone:
        await award.commit()  # another open round covers it)
    await closing
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM initiatives WHERE id = $1", initiative_id)
    assert (await balances(pool, awarding_round))[Kind.BUDGET, str(initiative_id)] == 10_000
    assert status == "awarded", "the awarded initiative can spend its budget"


async def test_withdrawing_an_initiative_returns_a_pledge_made_meanwhile(pool, once, pledge_round):
    round_id = await pledge_round(100_000, 2_000, ["r-1"])
    initiative_id = await approved_initiative(once, 10_000)
    async with VouchersUnitOfWork(pool, SOURCE) as pledge:
        made = await pledging("r-1", round_id, initiative_id, 1_500)(pledge)
        withdrawing = asyncio.ensure_future(once(lambda uow: reactions.initiative_withdrawn(uow, initiative_id)))
        await waiting_on_a_lock(pool)
        await pledge.commit()
    await withdrawing
    async with pool.acquire() as conn:
        status = await conn.fetchval("SELECT status FROM pledges WHERE id = $1", made.pledge.id)
    assert await problems(pool, round_id) == []
    assert status == "returned", "a withdrawn initiative keeps no active pledge"
    assert (await balances(pool, round_id))[Kind.WALLET, "r-1"] == 2_000


async def test_a_waiting_close_is_not_overtaken_by_pledges_that_come_after_it(pool, once, pledge_round):
    """With row locks a steady stream of pledges could keep a close waiting for ever (shared locks let each
    other in); the round's lock queues a pledge that comes after the close behind it."""
    round_id = await pledge_round(100_000, 2_000, ["r-1", "r-2"])
    first_initiative = await approved_initiative(once, 50_000)
    second_initiative = await approved_initiative(once, 50_000)
    async with VouchersUnitOfWork(pool, SOURCE) as first:
        await pledging("r-1", round_id, first_initiative, 500)(first)  # holds the round, shared
        closing = asyncio.ensure_future(
            once(lambda uow: rounds.close_round(uow, OFFICIAL, round_id, datetime.now(UTC)))
        )
        await waiting_on_a_lock(pool)  # the close waits for the pledge in flight
        later = asyncio.ensure_future(once(pledging("r-2", round_id, second_initiative, 500)))
        await waiting_on_a_lock(pool, 2)  # the later pledge (other wallet, other initiative) waits behind the close
        assert not later.done()
        await first.commit()
    summary = await closing
    assert summary
    refused = await asyncio.gather(later, return_exceptions=True)
    assert isinstance(refused[0], Conflict) and refused[0].current_status == "closed", refused
    assert await problems(pool, round_id) == []
