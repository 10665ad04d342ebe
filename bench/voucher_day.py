"""Voucher day: residents pledge concurrently through the vouchers service's HTTP API.

Starts the vouchers service as its own process (uvicorn, a free port) on a scratch database, opens a pledge
round for WK036300 as an official, makes the approved initiatives known to the service directly in its
database (`reactions.initiative_approved` in a unit of work, as the Kafka handler would call it, without the
trip through `initiatives.events`), issues a wallet to every resident through the wallet-issuances endpoint,
then has every resident pledge once, `--concurrency` requests in flight, each with its own bearer token
(minted before the clock starts) and Idempotency-Key.

Most initiatives are approved for more than their pledges add up to; `--awarded-share` of them for less,
so they are awarded during the run: the pledge that completes an award is capped, later ones are
refused with 409. Then it measures how long after the last HTTP answer the outbox is empty and every
event of the round (PledgeMade, InitiativeAwarded, ...) is on `vouchers.events`, checks the ledger, runs
pgbench's simple-update script (`-N`) on a scratch pgbench database of the same PostgreSQL for comparison
(the service idle meanwhile), and stops the service with SIGTERM. The CPU each party used while pledging is
measured too: the machine is shared, and what others run ("others") takes cores from the benchmark.
Needs the local stack (`make stack-up`, `make topics`).

    .venv/bin/python bench/voucher_day.py                      # 5,000 pledges, 50 initiatives
    .venv/bin/python bench/voucher_day.py --pledges 20000 --concurrency 48 --pgbench-seconds 0

The default size takes about two minutes on a 2-core machine, where one service process answers some 80
pledges/s (about 10 ms of its CPU per pledge); its outbox relay keeps up, a round's events going to Kafka
as whole record batches.

Progress, diagnostics and at the end a summary go to stderr; the last line on stdout is the run's figures as one
JSON object. Exits 1 (`ok` false in the figures) when an HTTP error, a missing event or a ledger problem was found.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
from _stack import (
    KeyCounter,
    ServiceProcess,
    WaitSampler,
    cpu_cores,
    cpu_seconds,
    cpu_share,
    end_offsets,
    key_pair,
    log,
    mint_many,
    percentile,
    pgbench,
    report,
    scratch_database,
    signing_key,
    token,
    wait_outbox_empty,
)
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.service import reactions

from buurtkracht_contracts.topics import VOUCHERS_EVENTS
from buurtkracht_kit import migrations
from buurtkracht_kit.db import create_pool

WIJK = "WK036300"
BUURTEN = [f"BU036300{n:02d}" for n in range(1, 10)]
AMOUNTS = (500, 1_000, 1_500, 2_000)
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"


def plan(args: argparse.Namespace) -> tuple[list[tuple[str, str, int, int]], list[int]]:
    """Who pledges what to which initiative, and each initiative's approved amount (seeded, reproducible)."""
    rng = random.Random(args.seed)
    pledges = [
        (f"bench-r-{i:07d}", rng.choice(BUURTEN), rng.randrange(args.initiatives), rng.choice(AMOUNTS))
        for i in range(args.pledges)
    ]
    demand = [0] * args.initiatives
    for _, _, initiative, amount in pledges:
        demand[initiative] += amount
    awarded = set(rng.sample(range(args.initiatives), round(args.initiatives * args.awarded_share)))
    approved = [
        max(1, int(demand[i] * (rng.uniform(0.70, 0.95) if i in awarded else rng.uniform(1.2, 3.0))))
        for i in range(args.initiatives)
    ]
    return pledges, approved


async def main(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    """The exit status, the summary and the figures."""
    pledges, approved = plan(args)
    private_pem, public_pem = key_pair()
    official = {"Authorization": "Bearer " + token(signing_key(private_pem), "o-bench", ["official"], [WIJK])}
    started = time.perf_counter()
    residents = mint_many(private_pem, [(rid, buurt) for rid, buurt, _, _ in pledges], ["resident"])
    log(f"{len(residents)} resident tokens minted in {time.perf_counter() - started:.1f} s")

    async with scratch_database("bench_voucher_day") as database_url:
        await asyncio.to_thread(migrations.apply, database_url, SPEC.migrations)
        pool = await create_pool(database_url, 1, 3)
        service = ServiceProcess(
            database_url,
            public_pem,
            pool_max_size=args.pool_size,
            launch=args.launch,
            extra_env=dict(pair.split("=", 1) for pair in args.service_env)
            | ({"BENCH_PROFILE": args.profile} if args.profile else {}),
        )
        try:
            ready = await service.start()
            log(f"service {service.service_name} ready on {service.base_url} in {ready:.1f} s (pid {service.pid})")
            async with httpx.AsyncClient(
                base_url=service.base_url,
                timeout=httpx.Timeout(120.0),
                limits=httpx.Limits(
                    max_connections=args.concurrency,
                    max_keepalive_connections=args.concurrency,
                    # uvicorn closes a connection idle for 5 s (its timeout_keep_alive), httpx keeps one for 5 s
                    # (keepalive_expiry): a request sent on a connection just as the server closes it fails with
                    # ReadError. Dropping idle connections first avoids that race; --keepalive-expiry 5 shows it.
                    keepalive_expiry=args.keepalive_expiry,
                ),
            ) as client:
                code, summary, figures = await voucher_day(
                    args, client, pool, service, database_url, pledges, approved, residents, official
                )
        finally:
            exit_code, stopping = await service.stop()
            log(f"service stopped by SIGTERM: exit code {exit_code} after {stopping:.1f} s")
            if not service.clean_exit(exit_code):
                log("service log:\n" + service.log_tail())
                code = 1
            service.cleanup()
            await pool.close()
    return code, summary, figures | {"ok": code == 0}


async def voucher_day(
    args, client, pool, service, database_url, pledges, approved, residents, official
) -> tuple[int, str, dict[str, object]]:
    before = await end_offsets(VOUCHERS_EVENTS)
    now = datetime.now(UTC)
    answer = await client.post(
        "/api/v1/rounds",
        headers=official | {"Idempotency-Key": str(uuid.uuid4())},
        json={
            "area_code": WIJK,
            "name": "Voucher day (benchmark)",
            "total_budget_cents": args.voucher_cents * len(pledges),
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "mechanism": "pledge",
            "voucher_amount_cents": args.voucher_cents,
        },
    )
    answer.raise_for_status()
    round_id = answer.json()["id"]

    initiative_ids = [uuid.uuid4() for _ in approved]
    async with VouchersUnitOfWork(pool, INITIATIVES_SOURCE) as uow:  # what the InitiativeApproved handler does
        for number, (initiative_id, cents) in enumerate(zip(initiative_ids, approved, strict=True)):
            await reactions.initiative_approved(
                uow,
                initiative_id,
                BUURTEN[number % len(BUURTEN)],
                f"Initiative {number}",
                [f"bench-i-{number}"],
                cents,
            )
        await uow.commit()

    async with KeyCounter(VOUCHERS_EVENTS, before, round_id) as kafka:
        started = time.perf_counter()
        answer = await client.post(
            f"/api/v1/rounds/{round_id}/wallet-issuances",
            headers=official,
            json={"resident_ids": [rid for rid, _, _, _ in pledges]},
        )
        issuing = time.perf_counter() - started
        answer.raise_for_status()
        assert answer.json()["issued"] == len(pledges), answer.text
        setup_events = 1 + math.ceil(len(pledges) / 5_000)  # RoundOpened, WalletsIssued per 5,000 residents
        if await kafka.wait_for(setup_events, args.drain_timeout) is None:
            log(f"only {kafka.count} of {setup_events} set-up events reached Kafka")
            return (
                1,
                f"voucher day: no pledges made, only {kafka.count} of {setup_events} set-up events reached Kafka",
                {
                    "pledges": 0,
                    "wallets": len(pledges),
                    "wallet_issuance_seconds": issuing,
                    "setup_events": setup_events,
                    "setup_events_on_kafka": kafka.count,
                },
            )
        log(f"round {round_id}: {len(approved)} initiatives, {len(pledges)} wallets issued in {issuing:.2f} s")

        # -- the pledges ------------------------------------------------------------------
        latencies: list[float] = []
        statuses: dict[int, int] = {}
        capped = 0
        errors: list[str] = []
        queue = iter(range(len(pledges)))

        retried: list[str] = []  # transport errors, each followed by a retry with the same Idempotency-Key
        replayed = 0

        async def resident_pledges() -> None:
            """A resident's client: on a transport error it sends the same request again, with the same key."""
            nonlocal capped, replayed
            for i in queue:
                _, _, initiative, amount = pledges[i]
                headers = {"Authorization": f"Bearer {residents[i]}", "Idempotency-Key": str(uuid.uuid4())}
                sent = time.perf_counter()
                for attempt in range(3):
                    try:
                        reply = await client.post(
                            f"/api/v1/rounds/{round_id}/pledges",
                            headers=headers,
                            json={"initiative_id": str(initiative_ids[initiative]), "amount_cents": amount},
                        )
                        break
                    except httpx.TransportError as error:
                        retried.append(
                            f"{type(error).__name__} {error!r} {time.perf_counter() - started:.1f} s into the run, "
                            f"{time.perf_counter() - sent:.2f} s after sending (attempt {attempt + 1})"
                        )
                else:
                    statuses[0] = statuses.get(0, 0) + 1
                    errors.append(f"no answer after 3 attempts: {retried[-1]}")
                    continue
                latencies.append(time.perf_counter() - sent)
                statuses[reply.status_code] = statuses.get(reply.status_code, 0) + 1
                replayed += reply.headers.get("Idempotent-Replayed") == "true"
                if reply.status_code == 201:
                    capped += reply.json()["amount_cents"] < amount
                elif reply.status_code != 409:
                    errors.append(f"{reply.status_code}: {reply.text[:300]}")

        database = database_url.rpartition("/")[2]
        cpu_before = cpu_seconds(service.pid, database)
        async with WaitSampler(pool, database) as waits:
            started = time.perf_counter()
            await asyncio.gather(*(resident_pledges() for _ in range(args.concurrency)))
            last_answer = time.perf_counter()
        pledging = last_answer - started
        cpu_after = cpu_seconds(service.pid, database)
        cpu = cpu_share(cpu_before, cpu_after, pledging)
        per_pledge = {name: (cpu_after[name] - cpu_before[name]) / len(pledges) * 1000 for name in cpu_before}
        on_kafka_at_last_answer = kafka.count

        # -- the events -------------------------------------------------------------------
        accepted = statuses.get(201, 0)
        awarded = await pool.fetchval("SELECT count(*) FROM initiatives WHERE status = 'awarded'")
        expected = setup_events + accepted + awarded
        outbox_empty = await wait_outbox_empty(pool, args.drain_timeout)
        all_on_kafka = await kafka.wait_for(expected, args.drain_timeout)
        await asyncio.sleep(1.0)  # anything beyond what was expected would show up now
        on_kafka = kafka.count

    # -- the books --------------------------------------------------------------------------
    async with pool.acquire() as conn:
        problems = await Ledger(conn).check()
        booked = await conn.fetchval("SELECT count(*) FROM pledges")
        overfunded = await conn.fetchval(
            """SELECT count(*) FROM initiatives i WHERE (SELECT coalesce(sum(amount_cents), 0) FROM pledges p
               WHERE p.initiative_id = i.id) > i.approved_amount_cents"""
        )
    for problem in problems[:10]:
        log(f"ledger: {problem}")
    for error in errors[:5]:
        log(f"HTTP error: {error}")
    for transport_error in retried[:5]:
        log(f"retried with the same Idempotency-Key after: {transport_error}")

    # -- PostgreSQL on its own ----------------------------------------------------------------
    tps = None
    if args.pgbench_seconds:
        log(f"pgbench -N -c {args.pgbench_clients} -j 2 -T {args.pgbench_seconds} (scale {args.pgbench_scale})")
        result = await pgbench(args.pgbench_scale, args.pgbench_clients, 2, args.pgbench_seconds)
        tps = result.tps

    latencies.sort()
    rate = len(pledges) / pledging
    http_errors = sum(n for status, n in statuses.items() if status not in (201, 409))
    drained = (max(outbox_empty, all_on_kafka) - last_answer) if outbox_empty and all_on_kafka else None
    summary = (
        f"voucher day: {len(pledges)} pledges in {pledging:.1f} s = {rate:,.0f} pledges/s "
        f"(concurrency {args.concurrency}, pool {args.pool_size}); latency ms p50 "
        f"{percentile(latencies, 0.50) * 1000:.0f} p95 {percentile(latencies, 0.95) * 1000:.0f} "
        f"p99 {percentile(latencies, 0.99) * 1000:.0f} max {latencies[-1] * 1000:.0f}; "
        f"accepted {accepted - capped} capped {capped} refused {statuses.get(409, 0)} HTTP errors {http_errors} "
        f"(transport errors retried {len(retried)}, answers replayed {replayed}); "
        f"{awarded} of {len(approved)} initiatives awarded; events on Kafka "
        + (f"{drained:.1f} s after the last answer" if drained is not None else "NOT all within the timeout")
        + f" ({on_kafka_at_last_answer - setup_events} of {expected - setup_events} there at the last answer, "
        f"{on_kafka - setup_events} at the end); "
        + (f"pgbench -N {tps:,.0f} tps, pledges/s / tps = {rate / tps:.3f}; " if tps else "")
        + f"CPU ms/pledge service {per_pledge['service']:.1f} postgres {per_pledge['postgres']:.1f} "
        f"client {per_pledge['bench']:.1f}; ledger problems {len(problems)}"
    )
    log(f"CPU cores used while pledging: {cpu}")
    log(f"database backends active while pledging, on average: {waits.summary()}")
    log(f"Kafka records of the round by type: {json.dumps(kafka.types)}; other records read {kafka.other_records}")
    failed = http_errors or problems or overfunded or booked != accepted or on_kafka != expected or drained is None
    if failed:
        log(
            f"FAILED: http_errors={http_errors} problems={len(problems)} overfunded={overfunded} "
            f"booked={booked}/{accepted} on_kafka={on_kafka}/{expected}"
        )
    if failed or retried:
        log("service log (warnings and errors):\n" + service.log_tail())
    cores = cpu_cores(cpu_before, cpu_after, pledging)
    figures = {
        "pledges": len(pledges),
        "seconds": pledging,
        "pledges_per_s": rate,
        "concurrency": args.concurrency,
        "pool_size": args.pool_size,
        "p50_ms": percentile(latencies, 0.50) * 1000,
        "p95_ms": percentile(latencies, 0.95) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": latencies[-1] * 1000,
        "accepted": accepted - capped,
        "capped": capped,
        "refused": statuses.get(409, 0),
        "http_errors": http_errors,
        "transport_errors_retried": len(retried),
        "answers_replayed": replayed,
        "initiatives": len(approved),
        "initiatives_awarded": awarded,
        "events_expected": expected - setup_events,
        "events_on_kafka_at_last_answer": on_kafka_at_last_answer - setup_events,
        "events_on_kafka": on_kafka - setup_events,
        "events_drained_seconds": drained,  # after the last answer; null when not all arrived within the timeout
        "kafka_records_by_type": kafka.types,
        "kafka_other_records": kafka.other_records,
        "wallets": len(pledges),
        "wallet_issuance_seconds": issuing,
        "cpu_cores": cores,
        "generator_cpu_cores": cores["bench"],  # the pledging clients run in this process
        "cpu_ms_per_pledge": per_pledge,
        "db_active_backends": waits.averages(),
        "ledger_problems": len(problems),
        "overfunded_initiatives": overfunded,
        "pledges_booked": booked,
    }
    if tps:
        figures |= {"pgbench_tps": tps, "ratio": rate / tps}
    return (1 if failed else 0), summary, figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pledges", type=int, default=5_000, help="residents, each with a wallet and one pledge")
    parser.add_argument("--initiatives", type=int, default=50)
    parser.add_argument(
        "--awarded-share",
        type=float,
        default=0.2,
        help="share of initiatives approved for less than their pledges (awarded during the run)",
    )
    parser.add_argument("--voucher-cents", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=32, help="pledge requests in flight")
    parser.add_argument("--pool-size", type=int, default=20, help="the service's BK_DB_POOL_MAX_SIZE")
    parser.add_argument(
        "--keepalive-expiry", type=float, default=2.0, help="seconds the client keeps an idle connection (httpx: 5)"
    )
    parser.add_argument(
        "--launch",
        choices=["isolated", "module"],
        default="isolated",
        help="isolated: bench/_stack.py serve-vouchers (the service without its Kafka consumer); "
        "module: `python -m vouchers` verbatim (joins the shared consumer group `vouchers`)",
    )
    parser.add_argument("--drain-timeout", type=float, default=600.0)
    parser.add_argument("--pgbench-seconds", type=int, default=30, help="0 skips pgbench")
    parser.add_argument("--pgbench-clients", type=int, default=16)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the service (--launch isolated only): FILE.pstats = cProfile of the main "
        "thread's CPU time; any other name = wall-clock stack samples, collapsed",
    )
    parser.add_argument(
        "--service-env",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="an extra environment variable for the service process (repeatable), e.g. BK_RELAY_BATCH_SIZE=500",
    )
    code, summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(code)
