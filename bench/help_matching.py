"""Asking neighbours at city scale: 1,000 open help requests matched against 100,000 offers, and the asks sent.

On a scratch database of the local stack's PostgreSQL, through the initiatives service's own functions (no HTTP, no
relay): 1,000 initiatives gathering support in 200 buurten of 20 wijken (five per buurt, one in five of them for the
whole wijk), each with one open help request (1 or 2 tags of the eight, 1 to 5 people, 1 to 8 hours each), and
100,000 residents' offers (500 per buurt; 1 to 3 tags, 2 to 20 hours a month, half of them for the whole wijk, 1 to
4 asks a month), written in bulk (not timed). Then it times the asking pass (`service.help.ask_neighbours`, in
batches of `--batch` requests per transaction, as the periodic pass runs it): the open requests locked, the
offers that reach them read, every resident's asking history read, the plan made (`domain.help.plan`), and each ask
stored with its `NeighbourAsked` in the outbox, committed.

Checks afterwards: every request is asked of exactly as many as it misses or of everyone who fits when fewer do, no
resident beyond their limit, one `NeighbourAsked` in the outbox per ask. Yardstick, measured in the same run just
before the pass: the same number of rows as offers written into a plain table with a primary key
(`yardstick_db_seconds`), so a run on a busier machine can be compared. Goal: the pass within 10 s.

    .venv/bin/python bench/help_matching.py
    .venv/bin/python bench/help_matching.py --offers 20000 --requests 200

Progress goes to stderr; the last line on stdout is the run's figures as one JSON object. Exits 1 (`ok` false) when a
check fails or the pass took longer than the goal.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from _stack import log, plain_table_seconds, report, scratch_database
from initiatives.adapters.unit_of_work import InitiativesUnitOfWork
from initiatives.app import SPEC
from initiatives.domain.help import Rules
from initiatives.service import help

from buurtkracht_contracts.event import source_urn
from buurtkracht_kit import migrations
from buurtkracht_kit.db import create_pool

GOAL_SECONDS = 10.0
SOURCE = source_urn("00000000000000000000", "buurtkracht-initiatives")
RULES = Rules()
WIJKEN, BUURTEN_PER_WIJK = 20, 10


def buurten() -> list[str]:
    return [f"BU0363{w:02d}{b:02d}" for w in range(WIJKEN) for b in range(BUURTEN_PER_WIJK)]


def wijk_of(buurt: str) -> str:
    return "WK" + buurt[2:8]


async def load(pool, args: argparse.Namespace, now: datetime) -> None:
    rng = random.Random(args.seed)
    places = buurten()
    initiatives, requests = [], []
    for n in range(args.requests):
        buurt = places[n % len(places)]
        area = wijk_of(buurt) if n % 5 == 4 else buurt
        initiative_id = uuid.UUID(int=rng.getrandbits(128))
        initiatives.append((initiative_id, f"r-owner-{n:04d}", area, f"Initiatief {n}"))
        requests.append(
            (
                uuid.UUID(int=rng.getrandbits(128)),
                initiative_id,
                area,
                sorted(rng.sample(RULES.tags, rng.randint(1, 2))),
                rng.randint(1, 8),
                rng.randint(1, 5),
                now - timedelta(minutes=args.requests - n),
            )
        )
    offers = []
    for n in range(args.offers):
        buurt = places[n % len(places)]
        reach = "wijk" if rng.random() < 0.5 else "buurt"
        offers.append(
            (
                f"r-{n:06d}",
                buurt,
                reach,
                wijk_of(buurt) if reach == "wijk" else buurt,
                sorted(rng.sample(RULES.tags, rng.randint(1, 3))),
                rng.randint(2, 20),
                rng.randint(1, 4),
            )
        )
    async with pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO initiatives (id, owner_id, title, summary, description, area_code, category, budget_lines,
                                        requested_amount_cents, volunteers_wanted, status, created_at)
               VALUES ($1, $2, $4, 'samenvatting', 'beschrijving', $3, 'social', '[]', 10000, 5, 'gathering_support',
                       now())""",
            initiatives,
        )
        await conn.executemany(
            """INSERT INTO help_requests (id, initiative_id, area_code, tags, description, hours_per_person,
                                          people_needed, requested_by, created_at)
               VALUES ($1, $2, $3, $4, 'Hulp gezocht', $5, $6, 'r-owner', $7)""",
            requests,
        )
        await conn.copy_records_to_table(
            "offers",
            records=[(*offer, "", now) for offer in offers],
            columns=[
                "resident_id",
                "home_buurt",
                "reach",
                "reach_area",
                "tags",
                "hours_per_month",
                "max_asks_per_month",
                "introduction",
                "updated_at",
            ],
        )
        await conn.execute("ANALYZE")


async def main(args: argparse.Namespace) -> int:
    async with scratch_database("bench_help") as database:
        await asyncio.to_thread(migrations.apply, database, SPEC.migrations)
        pool = await create_pool(database, min_size=1, max_size=2, command_timeout=600)
        try:
            return await run(args, pool)
        finally:
            await pool.close()


async def run(args: argparse.Namespace, pool) -> int:
    now = datetime.now(UTC)
    loaded = time.perf_counter()
    await load(pool, args, now)
    took_loading = time.perf_counter() - loaded
    log(f"{args.requests:,} open help requests and {args.offers:,} offers written in {took_loading:.1f} s")
    floor_db = await plain_table_seconds(pool, args.offers)
    log(f"yardstick: {args.offers:,} rows into a plain table {floor_db:.2f} s")

    started = time.perf_counter()
    asked, passes, after = 0, 0, None
    while True:
        async with InitiativesUnitOfWork(pool, SOURCE) as uow:
            done = await help.ask_neighbours(uow, RULES, now, args.batch, after)
            await uow.commit()
        assert done is not None, "another asking pass held the turn"
        asked += done.asked
        passes += 1
        if done.following is None:
            break
        after = done.following
    took = time.perf_counter() - started

    async with pool.acquire() as conn:
        asks = await conn.fetchval("SELECT count(*) FROM asks")
        told = await conn.fetchval("SELECT count(*) FROM outbox WHERE event_type LIKE '%neighbour-asked%'")
        beyond_limit = await conn.fetchval(
            """SELECT count(*) FROM (SELECT a.resident_id, count(*) AS asked, o.max_asks_per_month FROM asks a
               JOIN offers o USING (resident_id) GROUP BY a.resident_id, o.max_asks_per_month) AS per_resident
               WHERE asked > max_asks_per_month"""
        )
        short = await conn.fetchval(
            """SELECT count(*) FROM help_requests r
               WHERE (SELECT count(*) FROM asks a WHERE a.help_request_id = r.id) < r.people_needed
                 AND EXISTS (SELECT 1 FROM offers o
                             WHERE o.tags && r.tags AND o.hours_per_month >= r.hours_per_person
                               AND (o.reach_area = r.area_code OR o.reach_area = 'WK' || substr(r.area_code, 3, 6))
                               AND NOT EXISTS (SELECT 1 FROM asks x
                                               WHERE x.help_request_id = r.id AND x.resident_id = o.resident_id)
                               AND (SELECT count(*) FROM asks y WHERE y.resident_id = o.resident_id)
                                   < o.max_asks_per_month)"""
        )
        needed = await conn.fetchval("SELECT sum(people_needed) FROM help_requests")
        residents = await conn.fetchval("SELECT count(DISTINCT resident_id) FROM asks")
    well = asks == asked == told and beyond_limit == 0 and short == 0 and took <= GOAL_SECONDS
    summary = (
        f"help matching: {args.requests:,} open requests against {args.offers:,} offers: {asked:,} asks sent "
        f"(of {needed:,} people needed) to {residents:,} residents in {took:.2f} s ({passes} transactions of up to "
        f"{args.batch} requests), {told:,} NeighbourAsked in the outbox; {beyond_limit} beyond their limit, {short} "
        f"requests asked of fewer than they miss while someone fitting was left; {took / floor_db:.1f} times the "
        f"database yardstick (goal {GOAL_SECONDS:.0f} s: " + ("met" if took <= GOAL_SECONDS else "MISSED") + ")"
    )
    report(
        summary,
        {
            "ok": well,
            "requests": args.requests,
            "offers": args.offers,
            "people_needed": needed,
            "asks_sent": asked,
            "residents_asked": residents,
            "events_in_outbox": told,
            "beyond_limit": beyond_limit,
            "requests_short_while_someone_fitted": short,
            "transactions": passes,
            "pass_seconds": took,
            "goal_seconds": GOAL_SECONDS,
            "yardstick_db_seconds": floor_db,
            "seconds_per_db_yardstick": took / floor_db,
        },
    )
    return 0 if well else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1_000)
    parser.add_argument("--offers", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=17)
    sys.exit(asyncio.run(main(parser.parse_args())))
