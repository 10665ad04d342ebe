"""An Equal Shares round of 100,000 ballots over 100 initiatives, computed and booked at its close.

On a scratch database of the local stack's PostgreSQL, through the vouchers service's own functions (no HTTP, no
relay): 100 approved initiatives of wijk WK036300 (10 buurten of 10), an Equal Shares round of € 1,000,000 for the
wijk, and 100,000 residents' ballots, written in bulk (not timed). Then it times `service.rounds.close_round` — the
close that seals the ballots as numbered votes, runs the Method of Equal Shares (pabutools, Add1 completion, with
its analysis for the explanation), books each funded initiative as an award, stores the outcome and closes the
round — committed, and reports how long the computation alone took of it.

The ballots are deterministic (a seeded generator) and shaped like a wijk's: each resident lives in one of the 10
buurten and approves 1 to 5 of their buurt's 10 initiatives, the popular ones more often, and one in three also one
initiative of another buurt. Identical ballots are counted as one voter with a multiplicity (exactly the same
outcome), so the number of distinct ballots (`distinct_ballots`) is what the computation's time follows.

Yardsticks, measured in the same run just before the close: the same number of rows written into a plain table
with a primary key (`yardstick_db_seconds`, as the other benchmarks do) and a fixed pure-Python workload (sorting
100,000 fractions, `yardstick_cpu_seconds`): the close is CPU-bound, and on a shared machine its multiple of the
CPU yardstick compares across runs where seconds drift. Goal: the close within 30 s.

    .venv/bin/python bench/equal_shares.py
    .venv/bin/python bench/equal_shares.py --ballots 20000 --initiatives 50
    .venv/bin/python bench/equal_shares.py --shape uniform    # the worst case: ballots drawn uniformly from all

Progress goes to stderr; the last line on stdout is the run's figures as one JSON object. Exits 1 (`ok` false) when
the ledger check finds a problem, the awards do not match the outcome or the close took longer than the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from _stack import log, plain_table_seconds, report, scratch_database
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.domain import equal_shares as rule
from vouchers.domain.rounds import Mechanism
from vouchers.service import reactions, rounds

from buurtkracht_contracts.event import source_urn
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import create_pool

WIJK = "WK036300"
GOAL_SECONDS = 30.0
SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")
OFFICIAL = Principal("o-bench", frozenset({Role.OFFICIAL}), frozenset({WIJK}))


def ballots_of(
    initiatives: list[uuid.UUID], count: int, seed: int, shape: str = "wijk"
) -> list[tuple[str, list[uuid.UUID]]]:
    """`count` residents' ballots as the module docstring shapes them; `uniform`: each approves 1 to 5 initiatives
    drawn uniformly from all (the worst case: nearly every ballot differs)."""
    rng = random.Random(seed)
    if shape == "uniform":
        return [(f"r-bench-{n:06d}", sorted(rng.sample(initiatives, rng.randint(1, 5)))) for n in range(count)]
    buurten = [initiatives[i : i + 10] for i in range(0, len(initiatives), 10)]
    weights = [1 / (rank + 1) for rank in range(10)]
    cast = []
    for n in range(count):
        home = buurten[n % len(buurten)]
        approved = set(rng.choices(home, weights=weights[: len(home)], k=rng.randint(1, 5)))
        if rng.random() < 1 / 3:
            approved.add(rng.choice(initiatives))
        cast.append((f"r-bench-{n:06d}", sorted(approved)))
    return cast


def cpu_yardstick() -> float:
    """Seconds to sort 100,000 fractions (a fixed pure-Python workload of the kind the close does)."""
    rng = random.Random(7)
    values = [Fraction(rng.randrange(1, 10**6), rng.randrange(1, 10**3)) for _ in range(100_000)]
    started = time.perf_counter()
    values.sort()
    return time.perf_counter() - started


async def main(args: argparse.Namespace) -> int:
    async with scratch_database("bench_es") as database:
        await asyncio.to_thread(migrations.apply, database, SPEC.migrations)
        pool = await create_pool(database, min_size=1, max_size=2, command_timeout=600)
        try:
            return await run(args, pool)
        finally:
            await pool.close()


async def run(args: argparse.Namespace, pool) -> int:
    rng = random.Random(args.seed)
    initiatives = [uuid.UUID(int=rng.getrandbits(128)) for _ in range(args.initiatives)]
    async with VouchersUnitOfWork(pool, SOURCE) as uow:
        for n, initiative_id in enumerate(initiatives):
            buurt = f"BU036300{(n // 10) % 100:02d}"
            cost = rng.randrange(5_000, 60_000) * 100  # € 5,000 to € 60,000
            await reactions.initiative_approved(uow, initiative_id, buurt, f"Initiatief {n}", ["r-owner"], cost)
        now = datetime.now(UTC)
        round_ = await rounds.open_round(
            uow,
            OFFICIAL,
            area_code=WIJK,
            name="Gelijke delen (benchmark)",
            mechanism=Mechanism.EQUAL_SHARES,
            total_budget_cents=args.budget_cents,
            opens_at=now - timedelta(minutes=1),
            closes_at=now + timedelta(days=1),
            voucher_amount_cents=None,
            allow_wallet_claims=False,
            committee_quorum=None,
        )
        await uow.commit()
    cast = ballots_of(initiatives, args.ballots, args.seed, args.shape)
    distinct = len({tuple(ids) for _, ids in cast})
    loaded = time.perf_counter()
    async with VouchersUnitOfWork(pool, SOURCE) as uow:
        for i in range(0, len(cast), 20_000):
            await uow.ballots.add_all(round_.id, cast[i : i + 20_000])
        await uow.commit()
    log(
        f"{len(cast):,} ballots ({distinct:,} distinct) over {len(initiatives)} initiatives written in "
        f"{time.perf_counter() - loaded:.1f} s"
    )

    floor_db = await plain_table_seconds(pool, args.ballots)
    floor_cpu = await asyncio.to_thread(cpu_yardstick)
    log(
        f"yardsticks: {args.ballots:,} rows into a plain table {floor_db:.2f} s; sorting 100,000 fractions "
        f"{floor_cpu:.2f} s"
    )

    computing: list[float] = []
    compute = rule.compute

    def timed_compute(*arguments, **keywords):
        started = time.perf_counter()
        try:
            return compute(*arguments, **keywords)
        finally:
            computing.append(time.perf_counter() - started)

    rule.compute = timed_compute
    started = time.perf_counter()
    async with VouchersUnitOfWork(pool, SOURCE) as uow:
        await rounds.close_round(uow, OFFICIAL, round_.id, datetime.now(UTC))
        await uow.commit()
    took = time.perf_counter() - started
    rule.compute = compute

    async with pool.acquire() as conn:
        problems = await Ledger(conn).check(round_.id)
        awards = await conn.fetch(
            """SELECT e.reference, l.amount_cents FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id
               WHERE e.round_id = $1 AND e.kind = 'equal_shares_award' AND l.amount_cents > 0""",
            round_.id,
        )
        outcome = await conn.fetchrow(
            "SELECT voters, share_cents FROM equal_shares_outcomes WHERE round_id = $1", round_.id
        )
        funded = await conn.fetch(
            "SELECT initiative_id, cost_cents FROM equal_shares_results WHERE round_id = $1 AND funded", round_.id
        )
        awarded_events = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND event_type LIKE '%initiative-awarded%'",
            str(round_.id),
        )
    funded_cents = sum(r["cost_cents"] for r in funded)
    booked_cents = sum(r["amount_cents"] for r in awards)
    well = (
        not problems
        and len(awards) == len(funded) == awarded_events
        and booked_cents == funded_cents <= args.budget_cents
        and took <= GOAL_SECONDS
    )
    for problem in problems[:10]:
        log(f"ledger: {problem}")
    share = Fraction(outcome["share_cents"])
    summary = (
        f"equal shares: {args.ballots:,} ballots ({distinct:,} distinct) over {args.initiatives} initiatives closed in "
        f"{took:.1f} s (the computation {sum(computing):.1f} s of it): {len(funded)} funded for "
        f"€ {funded_cents / 100:,.2f} of € {args.budget_cents / 100:,.2f}, {outcome['voters']:,} voters with a share "
        f"of € {float(share) / 100:,.2f} each; {len(awards)} awards booked, ledger check {len(problems)} problems; "
        f"{took / floor_cpu:.1f} times the CPU yardstick (goal {GOAL_SECONDS:.0f} s: "
        + ("met" if took <= GOAL_SECONDS else "MISSED")
        + ")"
    )
    report(
        summary,
        {
            "ok": well,
            "ballots": args.ballots,
            "shape": args.shape,
            "distinct_ballots": distinct,
            "initiatives": args.initiatives,
            "budget_cents": args.budget_cents,
            "voters": outcome["voters"],
            "share_cents": float(share),
            "funded": len(funded),
            "funded_cents": funded_cents,
            "awards_booked": len(awards),
            "ledger_problems": len(problems),
            "close_seconds": took,
            "compute_seconds": sum(computing),
            "goal_seconds": GOAL_SECONDS,
            "yardstick_db_seconds": floor_db,
            "yardstick_cpu_seconds": floor_cpu,
            "seconds_per_cpu_yardstick": took / floor_cpu,
        },
    )
    return 0 if well else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ballots", type=int, default=100_000)
    parser.add_argument("--initiatives", type=int, default=100)
    parser.add_argument("--budget-cents", type=int, default=100_000_000)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument(
        "--shape", choices=("wijk", "uniform"), default="wijk", help="how ballots are drawn (see ballots_of)"
    )
    sys.exit(asyncio.run(main(parser.parse_args())))
