"""Bulk wallet issuance: one request issues a wallet to each of a million residents.

Starts the vouchers service as its own process on a scratch database, opens a pledge round for WK036300
with budget for every wallet, then times `POST /api/v1/rounds/{id}/wallet-issuances` with all resident ids
in one body (JSON `{"resident_ids": [...]}`, or a `text/csv` upload with `--format csv`; `both` does JSON on
one round and CSV on a second), and separately how long after the answer the WalletsIssued events (one per
5,000 residents) are on `vouchers.events` and the outbox is empty. Just before the request it times a yardstick
in the same database (as many rows into a plain logged table with a primary key, one statement) and reports the
issuance in multiples of it (`seconds_per_yardstick`), with the CPU seconds of each party (`cpu_seconds`) and what
the database's backends waited on (`waits`): on a shared machine these compare across runs where `seconds` drifts.
Then checks the ledger, stops the service with SIGTERM and drops the database. Needs the local stack
(`make stack-up`, `make topics`).

    /work/main/.venv/bin/python bench/wallet_issuance.py                          # 1,000,000 residents, JSON
    /work/main/.venv/bin/python bench/wallet_issuance.py --format csv --residents 200000

Progress and a summary line per issuance go to stderr; the last line on stdout is the run's figures as one JSON
object (one issuance's figures at its top level; with `--format both`, each issuance's under `json` and `csv`).
Exits 1 (`ok` false in the figures) when an issuance failed, an event is missing or the ledger has a problem.

`--breakdown` runs no service: it replays what the request does, step by step, with the clock on each —
the request body's validation (`Issuance.model_validate_json`), `Ledger.issue_wallets`' one statement on a
scratch database under EXPLAIN ANALYZE (which times each write in it, by table, and any per-row triggers), the
events and their outbox rows, the deferred balance trigger; its figures are the seconds of each step
(`steps_seconds`), of each write in the statement (`write_seconds`) and of per-row triggers (`trigger_seconds`):

    /work/main/.venv/bin/python bench/wallet_issuance.py --breakdown
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
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
    report,
    scratch_database,
    signing_key,
    token,
    wait_outbox_empty,
)
from vouchers.adapters.ledger import Ledger
from vouchers.app import SPEC

from buurtkracht_contracts.topics import VOUCHERS_EVENTS
from buurtkracht_kit import migrations
from buurtkracht_kit.db import create_pool

WIJK = "WK036300"
WALLETS_PER_EVENT = 5_000  # vouchers.domain.rounds.WALLETS_PER_EVENT


async def yardstick(pool, rows: int) -> float:
    """Seconds to write `rows` rows of a wallet's size into a logged table with a primary key, one statement, in the
    benchmark's database just before the issuance: the floor of the same disk and CPU share, to compare runs by."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_yardstick (id bigint PRIMARY KEY, owner text, cents bigint)")
        try:
            started = time.perf_counter()
            await conn.execute(
                "INSERT INTO bench_yardstick SELECT i, 'r-' || i, 2000 FROM generate_series(1, $1::bigint) AS i",
                rows,
                timeout=600,
            )
            return time.perf_counter() - started
        finally:
            await conn.execute("DROP TABLE bench_yardstick")


def body(resident_ids: list[str], form: str) -> tuple[bytes, str]:
    if form == "csv":
        return ("resident_id\n" + "\n".join(resident_ids) + "\n").encode(), "text/csv"
    return json.dumps({"resident_ids": resident_ids}).encode(), "application/json"


async def issuance(
    args, form: str, client, pool, service, official, database: str
) -> tuple[bool, str, dict[str, object]]:
    """One round, one issuance; returns (all well, the summary line, the figures)."""
    before = await end_offsets(VOUCHERS_EVENTS)
    now = datetime.now(UTC)
    answer = await client.post(
        "/api/v1/rounds",
        headers=official | {"Idempotency-Key": str(uuid.uuid4())},
        json={
            "area_code": WIJK,
            "name": f"Wallet issuance ({form}, benchmark)",
            "total_budget_cents": args.voucher_cents * args.residents,
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "mechanism": "pledge",
            "voucher_amount_cents": args.voucher_cents,
        },
    )
    answer.raise_for_status()
    round_id = answer.json()["id"]
    payload, content_type = body([f"{form}-r-{i:07d}" for i in range(args.residents)], form)
    events = math.ceil(args.residents / WALLETS_PER_EVENT)

    async with KeyCounter(VOUCHERS_EVENTS, before, round_id) as kafka:
        if await kafka.wait_for(1, 30) is None:  # RoundOpened: the relay and the counter work
            return False, f"{form}: RoundOpened never reached Kafka", {"format": form, "residents": args.residents}
        floor = await yardstick(pool, args.residents)
        cpu_before = cpu_seconds(service.pid, database)
        started = time.perf_counter()
        async with WaitSampler(pool, database, interval=0.25) as waits:
            answer = await client.post(
                f"/api/v1/rounds/{round_id}/wallet-issuances",
                headers=official | {"Content-Type": content_type},
                content=payload,
            )
        answered = time.perf_counter()
        cpu_after = cpu_seconds(service.pid, database)
        cpu = cpu_share(cpu_before, cpu_after, answered - started)
        if answer.status_code != 201:
            cause = ""
            if "bind_execute\\nTimeoutError" in service.log_path.read_text(errors="replace"):
                cause = (
                    f" -- a statement of the issuance ran past the service's per-statement limit "
                    f"BK_DB_COMMAND_TIMEOUT_SECONDS={args.command_timeout:g} (asyncpg TimeoutError in the log); "
                    "--command-timeout raises it"
                )
            return (
                False,
                f"wallet issuance ({form}): {args.residents:,} residents FAILED: HTTP {answer.status_code} after "
                f"{answered - started:.1f} s{cause}",
                {
                    "format": form,
                    "residents": args.residents,
                    "http_status": answer.status_code,
                    "seconds": answered - started,
                },
            )
        issued = answer.json()
        outbox_empty = await wait_outbox_empty(pool, args.drain_timeout)
        on_kafka = await kafka.wait_for(1 + events, args.drain_timeout)
        await asyncio.sleep(1.0)  # anything beyond what was expected would show up now
        records = kafka.count - 1
        wallets_on_kafka = kafka.types.get("wallets-issued", 0)

    checked = time.perf_counter()
    async with pool.acquire() as conn:
        problems = await Ledger(conn).check(round_id)
        wallets = await conn.fetchval("SELECT count(*) FROM accounts WHERE round_id = $1 AND kind = 'wallet'", round_id)
    checking = time.perf_counter() - checked
    for problem in problems[:10]:
        log(f"ledger: {problem}")
    log(f"CPU cores used during the request: {cpu}; the database's backends waited on: {waits.summary()}")

    took = answered - started
    drained = max(outbox_empty, on_kafka) - answered if outbox_empty and on_kafka else None
    line = (
        f"wallet issuance ({form}): {issued['issued']:,} wallets in {took:.1f} s = {issued['issued'] / took:,.0f} "
        f"wallets/s (body {len(payload) / 1e6:.1f} MB); {wallets_on_kafka} of {events} WalletsIssued events on "
        "Kafka "
        + (f"{drained:.1f} s after the answer" if drained is not None else "NOT all within the timeout")
        + f"; ledger check of the round {checking:.1f} s: {len(problems)} problems; yardstick (the same number of "
        f"rows into a plain table, just before) {floor:.1f} s, the issuance took {took / floor:.1f} times that"
    )
    well = (
        issued["issued"] == args.residents
        and wallets == args.residents
        and wallets_on_kafka == events
        and records == events
        and drained is not None
        and not problems
    )
    if not well:
        log(
            f"FAILED: issued={issued} wallets={wallets} events={wallets_on_kafka}/{records}/{events} "
            f"problems={len(problems)}"
        )
    return (
        well,
        line,
        {
            "format": form,
            "residents": args.residents,
            "wallets": issued["issued"],
            "wallets_booked": wallets,
            "seconds": took,
            "wallets_per_s": issued["issued"] / took,
            "body_mb": len(payload) / 1e6,
            "wallets_issued_events": wallets_on_kafka,
            "events_expected": events,
            "records_on_kafka": records,
            "events_drained_seconds": drained,  # after the answer; null when not all arrived within the timeout
            "ledger_check_seconds": checking,
            "ledger_problems": len(problems),
            "cpu_cores": cpu_cores(cpu_before, cpu_after, took),
            # CPU seconds each party spent on the request: less sensitive than `seconds` to others on the machine
            "cpu_seconds": {name: cores * took for name, cores in cpu_cores(cpu_before, cpu_after, took).items()},
            "waits": waits.averages(),  # average backends of the database per wait event while the request ran
            "yardstick_seconds": floor,
            "seconds_per_yardstick": took / floor,
        },
    )


async def breakdown(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    """Where the time of one issuance goes, without HTTP: the exit status, a summary line and the seconds per step."""
    from vouchers.adapters.ledger import ISSUE_WALLETS
    from vouchers.entrypoints.http.wallets import Issuance

    from buurtkracht_contracts import Envelope
    from buurtkracht_contracts import vouchers as events
    from buurtkracht_kit import outbox

    steps: dict[str, tuple[str, float]] = {}  # key: (what it is in the summary, seconds)
    trigger_seconds: dict[str, float] = {}  # key: seconds of the step's per-row triggers
    write_seconds: dict[str, float] = {}  # operation_table: seconds of that write within the issuance statement
    ids = [f"r-{i:07d}" for i in range(args.residents)]
    payload, _ = body(ids, "json")
    started = time.perf_counter()
    parsed = Issuance.model_validate_json(payload).resident_ids
    unique = list(dict.fromkeys(parsed))
    assert not any(not rid or len(rid) > 100 or "," in rid for rid in unique)
    steps["json_validated"] = "JSON body validated", time.perf_counter() - started
    async with scratch_database("bench_wallets_breakdown") as database_url:
        await asyncio.to_thread(migrations.apply, database_url, SPEC.migrations)
        pool = await create_pool(database_url, 1, 1, command_timeout=900)  # with the kit's JSON codecs
        conn = await pool.acquire()
        try:
            round_id, amount = uuid.uuid4(), args.voucher_cents
            await conn.execute(
                """INSERT INTO rounds (id, area_code, name, mechanism, total_budget_cents, voucher_amount_cents,
                       opens_at, closes_at, created_by)
                   VALUES ($1, $2, 'breakdown', 'pledge', $3, $4, now(), now() + interval '1 day', 'o-bench')""",
                round_id,
                WIJK,
                amount * len(unique),
                amount,
            )
            await conn.execute(
                """INSERT INTO accounts (round_id, kind, owner, balance_cents)
                   VALUES ($1, 'municipality', '', -$2::bigint), ($1, 'pool', '', $2::bigint)""",
                round_id,
                amount * len(unique),
            )

            async def timed(key: str, name: str, statement, *arguments, **options) -> object:
                started = time.perf_counter()
                result = await statement(*arguments, **options)
                steps[key] = name, time.perf_counter() - started
                return result

            def triggers(plan: object) -> float:
                plan = (json.loads(plan) if isinstance(plan, str) else plan)[0]
                return sum(t["Time"] for t in plan.get("Triggers", [])) / 1000

            def writes(plan: object) -> dict[str, float]:
                """Seconds of each INSERT/UPDATE in the plan, by table (the CTEs of the one statement)."""
                found: dict[str, float] = {}

                def walk(node: dict) -> None:
                    if node.get("Node Type") == "ModifyTable":
                        key = f"{node['Operation'].lower()}_{node['Relation Name']}"
                        found[key] = found.get(key, 0.0) + node["Actual Total Time"] / 1000
                    for child in node.get("Plans", []):
                        walk(child)

                walk((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])
                return found

            async with conn.transaction():
                pool_id = await conn.fetchval("SELECT id FROM accounts WHERE round_id = $1 AND kind = 'pool'", round_id)
                plan = await timed(
                    "issue_statement",
                    "the issuance statement",
                    conn.fetchval,
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + ISSUE_WALLETS,
                    round_id,
                    unique,
                    amount,
                    str(uuid.uuid4()),
                    pool_id,
                    timeout=900,
                )
                write_seconds.update(writes(plan))
                trigger_seconds["issue_statement"] = triggers(plan)
                started = time.perf_counter()
                owners = unique  # a new round: every resident gets a wallet
                envelopes = [
                    Envelope.wrap(
                        events.WalletsIssued(
                            round_id=round_id,
                            area_code=WIJK,
                            resident_ids=owners[i : i + WALLETS_PER_EVENT],
                            voucher_amount_cents=amount,
                            issued_cents=amount * len(owners[i : i + WALLETS_PER_EVENT]),
                        ),
                        "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers",
                    )
                    for i in range(0, len(owners), WALLETS_PER_EVENT)
                ]
                steps["events_built"] = f"{len(envelopes)} events built", time.perf_counter() - started
                await timed("outbox_rows", "their outbox rows", outbox.add, conn, envelopes)
                await timed(
                    "balance_trigger", "deferred balance trigger", conn.execute, "SET CONSTRAINTS ALL IMMEDIATE"
                )
        finally:
            await pool.release(conn)
            await pool.close()
    summary = f"wallet issuance breakdown, {args.residents:,} residents, seconds: " + "; ".join(
        f"{name} {seconds:.1f}"
        + (
            f" (of which {', '.join(f'{w} {t:.1f}' for w, t in write_seconds.items())}; per-row triggers "
            f"{trigger_seconds[key]:.1f})"
            if key in trigger_seconds
            else ""
        )
        for key, (name, seconds) in steps.items()
    )
    return (
        0,
        summary,
        {
            "residents": args.residents,
            "events": len(envelopes),
            "steps_seconds": {key: seconds for key, (_, seconds) in steps.items()},
            "trigger_seconds": trigger_seconds,
            "write_seconds": write_seconds,
            "ok": True,
        },
    )


async def main(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    """The exit status, the summary (a line per issuance) and the figures."""
    if args.breakdown:
        return await breakdown(args)
    private_pem, public_pem = key_pair()
    official = {"Authorization": "Bearer " + token(signing_key(private_pem), "o-bench", ["official"], [WIJK])}
    forms = ["json", "csv"] if args.format == "both" else [args.format]
    well = True
    lines: list[str] = []
    by_form: dict[str, dict[str, object]] = {}
    async with scratch_database("bench_wallets") as database_url:
        await asyncio.to_thread(migrations.apply, database_url, SPEC.migrations)
        pool = await create_pool(database_url, 1, 2, command_timeout=600)
        service = ServiceProcess(
            database_url,
            public_pem,
            launch=args.launch,
            extra_env={"BK_DB_COMMAND_TIMEOUT_SECONDS": str(args.command_timeout)}
            | ({"BENCH_PROFILE": args.profile} if args.profile else {}),
        )
        try:
            ready = await service.start()
            log(f"service {service.service_name} ready on {service.base_url} in {ready:.1f} s (pid {service.pid})")
            async with httpx.AsyncClient(base_url=service.base_url, timeout=httpx.Timeout(900.0)) as client:
                for form in forms:
                    ok, line, by_form[form] = await issuance(
                        args, form, client, pool, service, official, database_url.rpartition("/")[2]
                    )
                    lines.append(line)
                    well &= ok
        finally:
            exit_code, stopping = await service.stop()
            log(f"service stopped by SIGTERM: exit code {exit_code} after {stopping:.1f} s")
            if not service.clean_exit(exit_code):
                log("service log:\n" + service.log_tail())
                well = False
            elif not well:
                log("service log:\n" + service.log_tail())
            service.cleanup()
            await pool.close()
    figures: dict[str, object] = {**by_form[forms[0]]} if len(forms) == 1 else {**by_form}
    return (0 if well else 1), "\n".join(lines), figures | {"ok": well}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--residents", type=int, default=1_000_000)
    parser.add_argument("--format", choices=["json", "csv", "both"], default="json")
    parser.add_argument("--voucher-cents", type=int, default=2_000)
    parser.add_argument(
        "--command-timeout",
        type=float,
        default=30.0,
        help="the service's BK_DB_COMMAND_TIMEOUT_SECONDS (its default is 30)",
    )
    parser.add_argument(
        "--launch",
        choices=["isolated", "module"],
        default="isolated",
        help="isolated: bench/_stack.py serve-vouchers (the service without its Kafka consumer); "
        "module: `python -m vouchers` verbatim (joins the shared consumer group `vouchers`)",
    )
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--breakdown", action="store_true", help="no service: time each step of an issuance")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the service (--launch isolated only): FILE.pstats = cProfile of the main "
        "thread's CPU time; any other name = wall-clock stack samples, collapsed",
    )
    code, summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(code)
