"""Voucher day: residents pledge through the vouchers service's HTTP API, and the other services hear of it.

What it measures, in one invocation on the local stack (`make stack-up`, `make topics`):

1. pgbench's simple-update script (`-N`) on a scratch database of the same PostgreSQL: the yardstick, one small
   transaction per commit on this disk and these cores.
2. Closed loop, for throughput: `--concurrency` workers of a compiled load generator (vegeta) send pledges as fast
   as they are answered, for at most `--closed-seconds` or `--closed-pledges`. Accepted pledges (201, a capped one
   included) are counted apart from refusals (409); the rate of accepted pledges is what counts, and it is set
   against pgbench's rate (`ratio`).
3. Open loop, for latency: pledges arrive at a fixed rate (`--rate`, by default half of pgbench's tps) for
   `--open-seconds`, whether or not earlier ones were answered. Latency is counted from each request's place in
   the schedule (so a generator held up by a slow service does not hide the wait: coordinated omission), and the
   pledges answered later than `--late-ms` or not at all are counted.
4. End to end: for every accepted pledge, the time from its answer until both the initiatives and the notifications
   service applied its PledgeMade. Both run as processes of their own (`python -m initiatives`, `python -m
   notifications`) on scratch databases, each a consumer group of its own that starts at the end of the topics, so
   other traffic on the shared stack neither reaches the benchmark's groups' history nor loses records to them;
   their outbox relays are off, so what they would publish stays in their scratch databases. Notifications applies
   PledgeMade (an inbox row: the moment it became visible counts), initiatives ignores it (no inbox row: the moment
   its group's committed offset passed the record counts).
5. pgbench again, after the load, with the services stopped.

Set-up: the vouchers service runs as its own process subscribed to nothing (see bench/_stack.py) on a scratch
database; a pledge round for WK036300 is opened as an official; the approved initiatives are made known to the
vouchers service directly in its database (as its InitiativeApproved handler would) and to the initiatives service
as approved rows; every resident gets a wallet of `--pledges-per-resident` times the largest pledge through the
wallet-issuances endpoint, then pledges that many times (far apart in the sequence), each request with the
resident's bearer token (minted before any clock starts) and its own Idempotency-Key. `--awarded-share` of the
initiatives are approved for less than the first pledges to them add up to, so they are awarded early: the pledge
that completes an award is capped, later ones are refused.

While pledging it notes the CPU each party used (service, initiatives, notifications, PostgreSQL, Kafka, the
generator from its own rusage, everything else on this shared machine) and what PostgreSQL's backends waited on.
Afterwards it checks: the outbox empty and every event of the round on `vouchers.events`; both consumers applied
every PledgeMade; the ledger balanced, nothing overfunded, every 201 booked once (a request that went unanswered
may have been booked: the bound is stated); and a sample of requests sent again with the same Idempotency-Key
books nothing new.

    .venv/bin/python bench/voucher_day.py                        # about three minutes on a 2-core machine
    .venv/bin/python bench/voucher_day.py --rate 200 --open-seconds 20 --concurrency 128
    .venv/bin/python bench/voucher_day.py --otlp-endpoint http://127.0.0.1:16687   # traced, to `make observability-up`

Progress, diagnostics and a summary go to stderr; the last line on stdout is the run's figures as one JSON object
(`pledges_per_s`, `pgbench_tps` and its `_before`/`_after`, `ratio`, `p50_ms`/`p99_ms` of the open loop from the
schedule, `e2e_p50_ms`/`e2e_p99_ms`, `generator_cpu`, ...). Exits 1 (`ok` false) when a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from _load import Attack, InboxWatch, OffsetWatch, target, vegeta, write_targets
from _stack import (
    BOOTSTRAP,
    KeyCounter,
    ServiceProcess,
    WaitSampler,
    cpu_cores,
    cpu_seconds,
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
from initiatives.app import SPEC as INITIATIVES_SPEC
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.service import reactions

from buurtkracht_contracts.topics import VOUCHERS_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_contracts.vouchers import PledgeMade
from buurtkracht_kit import migrations, topics
from buurtkracht_kit.db import create_pool

WIJK = "WK036300"
BUURTEN = [f"BU036300{n:02d}" for n in range(1, 10)]
AMOUNTS = (500, 1_000, 1_500, 2_000)
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
AWARD_WINDOW = 500  # the awarded initiatives are approved for less than the first this many pledges add up to


@dataclass(frozen=True)
class Pledge:
    resident: int
    initiative: int
    amount: int


def plan(args: argparse.Namespace, count: int) -> tuple[int, list[Pledge], list[int]]:
    """The residents, who pledges what to which initiative in sequence order, and each initiative's approved
    amount (seeded, reproducible). A resident's pledges are `residents` places apart."""
    rng = random.Random(args.seed)
    residents = math.ceil(count / args.pledges_per_resident)
    pledges = [Pledge(n % residents, rng.randrange(args.initiatives), rng.choice(AMOUNTS)) for n in range(count)]
    demand, early = [0] * args.initiatives, [0] * args.initiatives
    for n, pledge in enumerate(pledges):
        demand[pledge.initiative] += pledge.amount
        if n < AWARD_WINDOW:
            early[pledge.initiative] += pledge.amount
    awarded = set(rng.sample(range(args.initiatives), round(args.initiatives * args.awarded_share)))
    approved = [
        max(1, int(early[i] * rng.uniform(0.70, 0.95)) if i in awarded else int(demand[i] * rng.uniform(1.2, 3.0)))
        for i in range(args.initiatives)
    ]
    return residents, pledges, approved


def resident_id(n: int) -> str:
    return f"bench-r-{n:07d}"


async def main(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    """The exit status, the summary and the figures."""
    log(f"load generator: {vegeta()}")
    tps_before = None
    if args.pgbench_seconds:
        log(f"pgbench -N -c {args.pgbench_clients} -j 2 -T {args.pgbench_seconds} (scale {args.pgbench_scale})")
        tps_before = (await pgbench(args.pgbench_scale, args.pgbench_clients, 2, args.pgbench_seconds)).tps
        log(f"pgbench before: {tps_before:,.0f} tps")
    rate = round(args.rate or 0.5 * (tps_before or 200.0))
    closed_count = args.closed_pledges
    open_count = math.ceil(rate * args.open_seconds)
    residents, pledges, approved = plan(args, closed_count + open_count)
    private_pem, public_pem = key_pair()
    official = {"Authorization": "Bearer " + token(signing_key(private_pem), "o-bench", ["official"], [WIJK])}
    started = time.perf_counter()
    tokens = mint_many(
        private_pem, [(resident_id(n), BUURTEN[n % len(BUURTEN)]) for n in range(residents)], ["resident"]
    )
    log(f"{len(tokens)} resident tokens minted in {time.perf_counter() - started:.1f} s")

    with tempfile.TemporaryDirectory(prefix="bk-voucher-day-") as workdir:
        async with (
            scratch_database("bench_voucher_day") as vouchers_url,
            scratch_database("bench_vd_initiatives") as initiatives_url,
            scratch_database("bench_vd_notifications") as notifications_url,
        ):
            await asyncio.to_thread(migrations.apply, vouchers_url, SPEC.migrations)
            await asyncio.to_thread(migrations.apply, initiatives_url, INITIATIVES_SPEC.migrations)
            run = uuid.uuid4().hex[:8]
            traced = tracing_env(args)
            consumers = {
                name: ServiceProcess(
                    url,
                    public_pem,
                    pool_max_size=args.consumer_pool_size,
                    launch="module",
                    module=name,
                    service_name=f"{name}-bench-{run}",
                    workers=args.workers,
                    consuming=True,
                    # what they publish (InitiativeFunded, ...) stays in their scratch outbox, off the shared topics
                    extra_env={"BK_RELAY_ENABLED": "false"} | traced,
                )
                for name, url in (("initiatives", initiatives_url), ("notifications", notifications_url))
            }
            service = ServiceProcess(
                vouchers_url,
                public_pem,
                pool_max_size=args.pool_size,
                launch=args.launch,
                workers=args.workers,
                extra_env=traced
                | dict(pair.split("=", 1) for pair in args.service_env)
                | ({"BENCH_PROFILE": args.profile} if args.profile else {}),
            )
            everyone = [service, *consumers.values()]
            pool = await create_pool(vouchers_url, 1, 6)
            code = 1
            try:
                await topics.ensure(
                    {"bootstrap_servers": BOOTSTRAP},
                    [
                        *all_topics(),
                        *(TopicSpec(dead_letter_topic(c.service_name), 1, 3_600_000) for c in consumers.values()),
                    ],
                )
                ready = await asyncio.gather(*(process.start(timeout=180.0) for process in everyone))
                for process, seconds in zip(everyone, ready, strict=True):
                    log(f"{process.service_name} ready on {process.base_url} in {seconds:.1f} s (pid {process.pid})")
                day = VoucherDay(args, Path(workdir), pool, service, consumers, residents, tokens, pledges, approved)
                day.urls = {
                    "vouchers": vouchers_url,
                    "initiatives": initiatives_url,
                    "notifications": notifications_url,
                }
                code, summary, figures = await day.run(official, rate, closed_count)
            finally:
                for process in everyone:
                    exit_code, stopping = await process.stop()
                    log(f"{process.service_name} stopped by SIGTERM: exit code {exit_code} after {stopping:.1f} s")
                    if not process.clean_exit(exit_code):
                        log(f"{process.service_name} log:\n" + process.log_tail())
                        code = 1
                    if args.logs:
                        await asyncio.to_thread(
                            shutil.copy, process.log_path, Path(args.logs) / f"{process.module}.log"
                        )
                    process.cleanup()
                await pool.close()

    tps_after = None
    if args.pgbench_seconds:
        tps_after = (await pgbench(args.pgbench_scale, args.pgbench_clients, 2, args.pgbench_seconds)).tps
        tps = (tps_before + tps_after) / 2  # type: ignore[operator]
        rate_accepted = figures["pledges_per_s"]
        summary += (
            f"; pgbench -N {tps_before:,.0f} tps before, {tps_after:,.0f} after: "
            f"pledges/s / tps = {rate_accepted / tps:.3f}"  # type: ignore[operator]
        )
        figures |= {
            "pgbench_tps": tps,
            "pgbench_tps_before": tps_before,
            "pgbench_tps_after": tps_after,
            "ratio": rate_accepted / tps,  # type: ignore[operator]
        }
    tracing = f"{args.trace_sample_ratio:.0%} to {args.otlp_endpoint}" if args.otlp_endpoint else "off"
    return code, f"{summary}; tracing {tracing}", figures | {"tracing": tracing, "ok": code == 0}


def tracing_env(args: argparse.Namespace) -> dict[str, str]:
    """The tracing settings of all three services: off unless `--otlp-endpoint` names a trace backend."""
    if not args.otlp_endpoint:
        return {}
    return {"BK_OTLP_ENDPOINT": args.otlp_endpoint, "BK_TRACE_SAMPLE_RATIO": str(args.trace_sample_ratio)}


class VoucherDay:
    def __init__(self, args, workdir, pool, service, consumers, residents, tokens, pledges, approved) -> None:
        self.args, self.workdir, self.pool, self.service, self.consumers = args, workdir, pool, service, consumers
        self.residents, self.tokens, self.pledges, self.approved = residents, tokens, pledges, approved
        self.urls: dict[str, str] = {}
        self.pledges_booked = 0

    @property
    def databases(self) -> dict[str, str]:
        return {name: url.rpartition("/")[2] for name, url in self.urls.items()}

    async def run(self, official: dict[str, str], rate: float, closed_count: int) -> tuple[int, str, dict]:
        args = self.args
        before = await end_offsets(VOUCHERS_EVENTS)
        client = httpx.AsyncClient(base_url=self.service.base_url, timeout=httpx.Timeout(120.0))
        try:
            round_id = await self.open_round(client, official)
            async with KeyCounter(VOUCHERS_EVENTS, before, round_id, keep=True) as kafka:
                started = time.perf_counter()
                answer = await client.post(
                    f"/api/v1/rounds/{round_id}/wallet-issuances",
                    headers=official,
                    json={"resident_ids": [resident_id(n) for n in range(self.residents)]},
                )
                issuing = time.perf_counter() - started
                answer.raise_for_status()
                assert answer.json()["issued"] == self.residents, answer.text
                self.setup_events = 1 + math.ceil(self.residents / 5_000)  # RoundOpened, WalletsIssued per 5,000
                if await kafka.wait_for(self.setup_events, args.drain_timeout) is None:
                    raise RuntimeError(f"only {kafka.count} of {self.setup_events} set-up events reached Kafka")
                log(f"round {round_id}: {len(self.approved)} initiatives, {self.residents} wallets in {issuing:.2f} s")
                self.kafka = kafka
                groups = {name: process.service_name for name, process in self.consumers.items()}
                async with (
                    OffsetWatch(list(groups.values()), VOUCHERS_EVENTS) as offsets,
                    InboxWatch(self.urls["initiatives"], groups["initiatives"], PledgeMade.event_type) as initiatives,
                    InboxWatch(self.urls["notifications"], groups["notifications"], PledgeMade.event_type) as notes,
                ):
                    self.offsets, self.inboxes, self.groups = (
                        offsets,
                        {"initiatives": initiatives, "notifications": notes},
                        groups,
                    )
                    url = f"{self.service.base_url}/api/v1/rounds/{round_id}/pledges"
                    closed = await self.phase(
                        "closed", url, self.pledges[:closed_count], 0, args.closed_seconds, args.concurrency
                    )
                    closed.settled = await self.settle()
                    open_ = await self.phase(
                        "open",
                        url,
                        self.pledges[closed_count:],
                        rate,
                        args.open_seconds,
                        args.open_max_workers or max(100, round(rate / 4)),
                    )
                    open_.settled = await self.settle()
                    retried = await self.send_again(client, closed)
                    await asyncio.sleep(1.0)  # anything beyond what was expected would show up now
                    records = list(kafka.records)
                    types = dict(kafka.types)
                    other_records = kafka.other_records
        finally:
            await client.aclose()
        return await self.figures(closed, open_, retried, records, types, other_records, issuing)

    async def open_round(self, client: httpx.AsyncClient, official: dict[str, str]) -> str:
        """A pledge round as the official, and its initiatives approved in the vouchers and initiatives databases."""
        now = datetime.now(UTC)
        voucher = self.args.pledges_per_resident * max(AMOUNTS)
        answer = await client.post(
            "/api/v1/rounds",
            headers=official | {"Idempotency-Key": str(uuid.uuid4())},
            json={
                "area_code": WIJK,
                "name": "Voucher day (benchmark)",
                "total_budget_cents": voucher * self.residents,
                "opens_at": (now - timedelta(minutes=1)).isoformat(),
                "closes_at": (now + timedelta(days=1)).isoformat(),
                "mechanism": "pledge",
                "voucher_amount_cents": voucher,
            },
        )
        answer.raise_for_status()
        round_id = answer.json()["id"]
        self.initiative_ids = [uuid.uuid4() for _ in self.approved]
        async with VouchersUnitOfWork(self.pool, INITIATIVES_SOURCE) as uow:  # what the InitiativeApproved handler does
            for number, (initiative_id, cents) in enumerate(zip(self.initiative_ids, self.approved, strict=True)):
                await reactions.initiative_approved(
                    uow,
                    initiative_id,
                    BUURTEN[number % len(BUURTEN)],
                    f"Initiative {number}",
                    [f"bench-i-{number}"],
                    cents,
                )
            await uow.commit()
        initiatives = await create_pool(self.urls["initiatives"], 1, 1)
        try:  # the initiatives service knows them as approved, so an award funds them
            await initiatives.executemany(
                """INSERT INTO initiatives (id, owner_id, title, summary, description, area_code, category,
                       budget_lines, requested_amount_cents, volunteers_wanted, status, approved_amount_cents,
                       created_at)
                   VALUES ($1, $2, $3, 'bench', 'bench', $4, 'social', $5::jsonb, $6, 0, 'approved', $6, now())""",
                [
                    (
                        initiative_id,
                        f"bench-i-{number}",
                        f"Initiative {number}",
                        BUURTEN[number % len(BUURTEN)],
                        [{"description": "all of it", "amount_cents": cents}],
                        cents,
                    )
                    for number, (initiative_id, cents) in enumerate(
                        zip(self.initiative_ids, self.approved, strict=True)
                    )
                ],
            )
        finally:
            await initiatives.close()
        return round_id

    async def phase(
        self, name: str, url: str, pledges: list[Pledge], rate: float, seconds: float, workers: int
    ) -> Phase:
        lines = (
            target(
                url,
                {
                    "Authorization": f"Bearer {self.tokens[p.resident]}",
                    "Idempotency-Key": f"{name}-{n}-{uuid.uuid4().hex}",
                },
                {"initiative_id": str(self.initiative_ids[p.initiative]), "amount_cents": p.amount},
            )
            for n, p in enumerate(pledges)
        )
        path = self.workdir / f"{name}.jsonl"
        write_targets(path, lines)
        attack = Attack(
            name,
            path,
            rate,
            seconds,
            workers=workers if rate == 0 else min(workers, 50),
            max_workers=workers,
            timeout=self.args.timeout,
        )
        log(
            f"{name} loop: "
            + (
                f"{workers} workers for up to {seconds:g} s"
                if rate == 0
                else f"{rate:,.0f} pledges/s for {seconds:g} s"
            )
            + f", up to {len(pledges):,} pledges"
        )
        databases = self.databases
        parties = {name: process.pid for name, process in self.consumers.items()}
        cpu_before = cpu_seconds(self.service.pid, databases.values(), parties)
        samplers = {db: WaitSampler(self.pool, database) for db, database in databases.items()}
        async with contextlib.AsyncExitStack() as stack:
            for sampler in samplers.values():
                await stack.enter_async_context(sampler)
            await attack.run()
        cpu_after = cpu_seconds(self.service.pid, databases.values(), parties)
        cores = cpu_cores(cpu_before, cpu_after, attack.wall)
        cores["generator"] = attack.generator_cpu / attack.wall
        cores["others"] -= cores["generator"]  # the generator had ended by the second reading
        phase = Phase(name, attack, cores, {db: s.averages() for db, s in samplers.items()}, self.pledges_booked)
        phase.booked_after = await self.pool.fetchval("SELECT count(*) FROM pledges")
        log(f"{name} loop: {phase.line()}")
        log(f"{name} loop, CPU cores: " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()))
        log(f"{name} loop, vouchers database backends active on average: {samplers['vouchers'].summary()}")
        self.pledges_booked = phase.booked_after
        return phase

    def pledge_records(self) -> list:
        return [r for r in self.kafka.records if dict(r.headers).get("ce_type", b"").decode() == PledgeMade.event_type]

    def applied(self, consumer: str, record) -> float | None:
        """When `consumer` applied the record: its inbox row visible, or for an event it ignores its offset passed."""
        ce_id = dict(record.headers)["ce_id"].decode()
        seen = self.inboxes[consumer].seen.get(ce_id)
        if seen is not None:
            return seen
        return self.offsets.passed(self.groups[consumer], record.partition, record.offset)

    async def settle(self) -> float | None:
        """Seconds until the outbox was empty, every event of the round on Kafka and every PledgeMade applied by both
        consumers; None when that did not happen within --drain-timeout."""
        started = time.perf_counter()
        deadline = started + self.args.drain_timeout
        if await wait_outbox_empty(self.pool, self.args.drain_timeout) is None:
            return None
        booked = await self.pool.fetchval("SELECT count(*) FROM pledges")
        awarded = await self.pool.fetchval("SELECT count(*) FROM initiatives WHERE status = 'awarded'")
        if await self.kafka.wait_for(self.setup_events + booked + awarded, deadline - time.perf_counter()) is None:
            return None
        while time.perf_counter() < deadline:
            records = self.pledge_records()
            if all(self.applied(c, r) is not None for r in records for c in self.consumers):
                return time.perf_counter() - started
            await asyncio.sleep(0.1)
        applied = {c: sum(self.applied(c, r) is not None for r in records) for c in self.consumers}
        log(f"not settled within {self.args.drain_timeout:g} s: of {len(records)} PledgeMade applied {applied}")
        return None

    async def send_again(self, client: httpx.AsyncClient, closed: Phase) -> dict[str, int]:
        """The first --retries requests of the closed loop again, with their Idempotency-Keys: nothing new is booked."""
        count = min(self.args.retries, len(closed.attack.sent()))
        lines = closed.attack.targets.read_text().splitlines()[:count]
        booked = await self.pool.fetchval("SELECT count(*) FROM pledges")
        statuses: dict[str, int] = {}
        gate = asyncio.Semaphore(8)

        async def again(line: str) -> None:
            request = json.loads(line)
            async with gate:
                answer = await client.post(
                    request["url"],
                    headers={name: values[0] for name, values in request["header"].items()},
                    content=base64.b64decode(request["body"]),
                )
            kind = f"{answer.status_code}" + (
                " replayed" if answer.headers.get("Idempotent-Replayed") == "true" else ""
            )
            statuses[kind] = statuses.get(kind, 0) + 1

        await asyncio.gather(*(again(line) for line in lines))
        booked_again = await self.pool.fetchval("SELECT count(*) FROM pledges")
        return {"sent": count, "newly_booked": booked_again - booked} | statuses

    async def figures(self, closed, open_, retried, records, types, other_records, issuing) -> tuple[int, str, dict]:
        async with self.pool.acquire() as conn:
            problems = await Ledger(conn).check()
            booked = await conn.fetchval("SELECT count(*) FROM pledges")
            awarded = await conn.fetchval("SELECT count(*) FROM initiatives WHERE status = 'awarded'")
            overfunded = await conn.fetchval(
                """SELECT count(*) FROM initiatives i WHERE (SELECT coalesce(sum(amount_cents), 0) FROM pledges p
                   WHERE p.initiative_id = i.id) > i.approved_amount_cents"""
            )
        for problem in problems[:10]:
            log(f"ledger: {problem}")
        pledge_records = [r for r in records if dict(r.headers).get("ce_type", b"").decode() == PledgeMade.event_type]
        by_pledge = {json.loads(r.value)["pledge_id"]: r for r in pledge_records}
        e2e = {}
        for phase in (closed, open_):
            e2e[phase.name] = self.end_to_end(phase, by_pledge)
        round_ids = [dict(r.headers)["ce_id"].decode() for r in records]
        dead_letters, foreign = {}, {}
        for consumer, process in self.consumers.items():
            conn = await asyncpg.connect(self.urls[consumer])
            try:
                dead_letters[consumer] = await conn.fetchval(
                    """SELECT count(*) FROM inbox WHERE consumer = $1 AND outcome = 'dead_lettered'
                       AND message_id = ANY($2::text[])""",
                    process.service_name,
                    round_ids,
                )
                # the topics are shared: what other people produced meanwhile reached these consumers too
                foreign[consumer] = {
                    row["event_type"].rsplit(".", 2)[-2]: row["n"]
                    for row in await conn.fetch(
                        """SELECT event_type, count(*) AS n FROM inbox
                           WHERE consumer = $1 AND NOT message_id = ANY($2::text[]) GROUP BY 1 ORDER BY 2 DESC""",
                        process.service_name,
                        round_ids,
                    )
                }
            finally:
                await conn.close()
        for consumer, applied in foreign.items():
            if applied:
                log(f"{consumer} also applied events of other traffic on the shared topics: {json.dumps(applied)}")
        accepted = closed.count(201) + open_.count(201)
        unanswered = closed.unanswered() + open_.unanswered()
        expected_events = self.setup_events + booked + awarded
        on_kafka = len(records)
        checks = {
            "ledger balanced": not problems,
            "nothing overfunded": not overfunded,
            "every 201 booked, nothing more than was sent": accepted <= booked <= accepted + unanswered,
            "every event of the round on Kafka, once": on_kafka == expected_events,
            "every PledgeMade applied by both consumers": closed.settled is not None and open_.settled is not None,
            "no event of the round dead-lettered by a consumer": not any(dead_letters.values()),
            "no HTTP error but 409": closed.http_errors() + open_.http_errors() == 0,
            "sent again with the same key: nothing new booked": retried["newly_booked"] == 0,
        }
        failed = [name for name, ok in checks.items() if not ok]
        for name in failed:
            log(f"FAILED: {name}")
        for phase in (closed, open_):
            for error in phase.errors()[:5]:
                log(f"{phase.name} loop error: {error}")
        if failed:
            log("vouchers service log (warnings and errors):\n" + self.service.log_tail())
            for process in self.consumers.values():
                log(f"{process.service_name} log:\n" + process.log_tail(15))
        log(f"Kafka records of the round by type: {json.dumps(types)}; other records read {other_records}")
        log(f"sent again with the same Idempotency-Key: {retried}")

        schedule = open_.schedule_ms()
        late = sum(1 for ms in schedule if self.args.late_ms < ms < math.inf)
        never = open_.attack.intended() - len(open_.attack.sent())
        p50, p99 = percentile(schedule, 0.50), percentile(schedule, 0.99)
        e2e_open = e2e["open"]
        summary = (
            f"voucher day: closed loop {closed.pledges_per_s():,.0f} accepted pledges/s ({closed.line()}); "
            f"open loop at {open_.attack.rate:,.0f}/s for {open_.attack.seconds:g} s: from the schedule p50 "
            f"{_ms(p50)} p99 {_ms(p99)}, {late} answered later than {self.args.late_ms:g} ms, "
            f"{open_.unanswered()} unanswered, {never} never sent; "
            f"e2e (answer -> applied by initiatives and notifications) p50 {_ms(e2e_open['p50_ms'])} "
            f"p99 {_ms(e2e_open['p99_ms'])}; generator CPU {closed.cores['generator']:.2f} / "
            f"{open_.cores['generator']:.2f} cores (closed / open); "
            f"{awarded} of {len(self.approved)} initiatives awarded; closed loop CPU cores "
            + ", ".join(f"{party} {cores:.2f}" for party, cores in closed.cores.items())
            + f" (of {os.cpu_count()}; others: not this benchmark); vouchers database backends active "
            f"{_waits(closed.db_active_backends['vouchers'])}; "
            + (
                f"the consumers also applied {sum(sum(t.values()) for t in foreign.values())} events others put on "
                "the shared topics meanwhile (an e2e figure may include that work); "
                if any(foreign.values())
                else ""
            )
            + f"checks {'all passed' if not failed else 'FAILED: ' + ', '.join(failed)}"
        )
        figures = {
            "pledges_per_s": closed.pledges_per_s(),
            "answered_per_s": closed.answered_per_s(),
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": schedule[-1] if schedule else None,
            "late": late,
            "late_ms": self.args.late_ms,
            "unanswered": open_.unanswered(),
            "never_sent": never,
            "open_rate": open_.attack.rate,
            "open_seconds": open_.attack.seconds,
            "open_sent": len(open_.attack.sent()),
            "open_p50_sent_ms": percentile(sorted(r.latency * 1000 for r in open_.answered()), 0.50),
            "open_p99_sent_ms": percentile(sorted(r.latency * 1000 for r in open_.answered()), 0.99),
            "e2e_p50_ms": e2e_open["p50_ms"],
            "e2e_p99_ms": e2e_open["p99_ms"],
            "e2e": e2e,
            "e2e_resolution_ms": 50,
            "generator_cpu": max(closed.cores["generator"], open_.cores["generator"]),
            "closed": closed.figures(),
            "open": open_.figures(),
            "concurrency": self.args.concurrency,
            "pool_size": self.args.pool_size,
            "workers": self.args.workers,
            "residents": self.residents,
            "wallet_issuance_seconds": issuing,
            "initiatives": len(self.approved),
            "initiatives_awarded": awarded,
            "pledges_booked": booked,
            "accepted": accepted,
            "events_expected": expected_events - self.setup_events,
            "events_on_kafka": on_kafka - self.setup_events,
            "kafka_records_by_type": types,
            "kafka_other_records": other_records,
            "sent_again": retried,
            "ledger_problems": len(problems),
            "overfunded_initiatives": overfunded,
            "dead_letters": dead_letters,
            "foreign_events_applied": {consumer: sum(applied.values()) for consumer, applied in foreign.items()},
            "checks_failed": failed,
        }
        return (1 if failed else 0), summary, figures

    def end_to_end(self, phase: Phase, by_pledge: dict) -> dict[str, object]:
        """From each accepted pledge's answer until both consumers applied its PledgeMade (and per consumer)."""
        both, each = [], {name: [] for name in self.consumers}
        missing = 0
        for result in phase.attack.sent():
            if result.code != 201:
                continue
            record = by_pledge.get(json.loads(result.body)["id"])
            times = {c: self.applied(c, record) for c in self.consumers} if record is not None else {}
            if record is None or any(at is None for at in times.values()):
                missing += 1
                both.append(math.inf)
                continue
            for consumer, at in times.items():
                each[consumer].append((at - result.answered) * 1000)
            both.append((max(times.values()) - result.answered) * 1000)
        both.sort()
        figures: dict[str, object] = {
            "p50_ms": percentile(both, 0.50),
            "p99_ms": percentile(both, 0.99),
            "max_ms": both[-1] if both else None,
            "pledges": len(both),
            "not_applied": missing,
        }
        for consumer, values in each.items():
            values.sort()
            figures[consumer] = {"p50_ms": percentile(values, 0.50), "p99_ms": percentile(values, 0.99)}
        return figures


def _ms(value: object) -> str:
    """Milliseconds as text; a percentile that falls on requests without an answer (or events never applied) is
    infinite, shown as such (null in the figures)."""
    return f"{value:,.0f} ms" if isinstance(value, float) and math.isfinite(value) else "none (no answer)"


def _waits(averages: dict[str, float], top: int = 4) -> str:
    return ", ".join(f"{name} {n:.1f}" for name, n in list(averages.items())[:top]) or "idle"


@dataclass
class Phase:
    name: str
    attack: Attack
    cores: dict[str, float]
    db_active_backends: dict[str, dict[str, float]]
    booked_before: int
    booked_after: int = 0
    settled: float | None = None

    def count(self, code: int) -> int:
        return sum(1 for result in self.attack.sent() if result.code == code)

    def answered(self) -> list:
        return [result for result in self.attack.sent() if result.code != 0]

    def unanswered(self) -> int:
        return self.count(0)

    def http_errors(self) -> int:
        return sum(1 for result in self.attack.sent() if result.code not in (0, 201, 409))

    def errors(self) -> list[str]:
        return [f"{r.code} {r.error} {r.body[:200]!r}" for r in self.attack.sent() if r.code not in (201, 409)]

    def span(self) -> float:
        """From the first request sent until the last answer."""
        sent = self.attack.sent()
        return max(r.answered for r in sent) - sent[0].started if sent else math.nan

    def pledges_per_s(self) -> float:
        return self.count(201) / self.span()

    def answered_per_s(self) -> float:
        return len(self.answered()) / self.span()

    def capped(self) -> int:
        return sum(
            1
            for r in self.attack.sent()
            if r.code == 201 and (body := json.loads(r.body))["amount_cents"] < body["requested_cents"]
        )

    def schedule_ms(self) -> list[float]:
        """Latency from the schedule, in ms, sorted; a request without an answer or never sent counts as infinite."""
        answered = {r.seq for r in self.attack.sent() if r.code != 0}
        values = [ms * 1000 for r, ms in zip(self.attack.sent(), self._scheduled(), strict=True) if r.seq in answered]
        values += [math.inf] * (self.attack.intended() - len(values))
        return sorted(values)

    def _scheduled(self) -> list[float]:
        sent = self.attack.sent()
        if not sent or self.attack.rate == 0:
            return [r.latency for r in sent]
        began = sent[0].started - sent[0].seq / self.attack.rate
        return [r.answered - (began + r.seq / self.attack.rate) for r in sent]

    def line(self) -> str:
        latencies = sorted(r.latency * 1000 for r in self.answered())
        return (
            f"{len(self.attack.sent()):,} sent in {self.span():.1f} s: accepted {self.count(201):,} "
            f"(capped {self.capped()}), refused {self.count(409):,}, unanswered {self.unanswered()}, "
            f"other {self.http_errors()}; latency from sending p50 {percentile(latencies, 0.5):,.0f} ms "
            f"p99 {percentile(latencies, 0.99):,.0f} ms"
        )

    def figures(self) -> dict[str, object]:
        latencies = sorted(r.latency * 1000 for r in self.answered())
        report = self.attack.report
        return {
            "sent": len(self.attack.sent()),
            "seconds": self.span(),
            "accepted": self.count(201),
            "capped": self.capped(),
            "refused": self.count(409),
            "unanswered": self.unanswered(),
            "http_errors": self.http_errors(),
            "accepted_per_s": self.pledges_per_s(),
            "p50_ms": percentile(latencies, 0.50),
            "p99_ms": percentile(latencies, 0.99),
            "max_ms": latencies[-1] if latencies else None,
            "rate": self.attack.rate,
            "workers": self.attack.max_workers,
            "generator_wall_seconds": self.attack.wall,
            "generator_cpu_seconds": self.attack.generator_cpu,
            "cpu_cores": self.cores,
            "db_active_backends": self.db_active_backends,
            "booked": self.booked_after - self.booked_before,
            "settled_seconds": self.settled,  # after the last answer: events on Kafka and applied by both consumers
            "vegeta_status_codes": report.get("status_codes"),
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--closed-seconds", type=float, default=15.0, help="closed loop: at most this long")
    parser.add_argument("--closed-pledges", type=int, default=20_000, help="closed loop: at most this many pledges")
    parser.add_argument("--concurrency", type=int, default=64, help="closed loop: requests in flight (workers)")
    parser.add_argument("--rate", type=float, help="open loop: pledges a second (default: 0.5 x pgbench tps before)")
    parser.add_argument("--open-seconds", type=float, default=10.0, help="open loop: how long pledges arrive")
    parser.add_argument(
        "--open-max-workers",
        type=int,
        help="open loop: most requests in flight (default: a quarter of a second's arrivals, at least 100); when "
        "all are waiting the generator falls behind its schedule, which the latency from the schedule shows",
    )
    parser.add_argument("--late-ms", type=float, default=100.0, help="open loop: answered later than this is late")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds the generator waits for an answer")
    parser.add_argument("--pledges-per-resident", type=int, default=10, help="each wallet holds this many pledges")
    parser.add_argument("--initiatives", type=int, default=50)
    parser.add_argument(
        "--awarded-share",
        type=float,
        default=0.2,
        help=f"share of initiatives approved for less than the first {AWARD_WINDOW:,} pledges to them add up to",
    )
    parser.add_argument("--pool-size", type=int, default=20, help="the vouchers service's BK_DB_POOL_MAX_SIZE")
    parser.add_argument("--consumer-pool-size", type=int, default=10, help="the consumers' BK_DB_POOL_MAX_SIZE")
    parser.add_argument("--workers", type=int, help="worker processes of each service (the kit's worker setting)")
    parser.add_argument(
        "--launch",
        choices=["isolated", "module"],
        default="isolated",
        help="isolated: bench/_stack.py serve-vouchers (the vouchers service without its Kafka consumer); "
        "module: `python -m vouchers` verbatim (a consumer group of its own)",
    )
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--retries", type=int, default=200, help="requests sent again with their Idempotency-Key")
    parser.add_argument("--pgbench-seconds", type=int, default=10, help="0 skips pgbench")
    parser.add_argument("--pgbench-clients", type=int, default=16)
    parser.add_argument("--pgbench-scale", type=int, default=10)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--logs", metavar="DIR", help="keep each service's log (warnings and errors) in DIR")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="profile the vouchers service (--launch isolated only): FILE.pstats = cProfile of the main "
        "thread's CPU time; any other name = wall-clock stack samples, collapsed",
    )
    parser.add_argument(
        "--otlp-endpoint",
        metavar="URL",
        help="trace all three services to this OTLP/HTTP endpoint (a running Jaeger: make observability-up, "
        "http://127.0.0.1:16687); tracing is off without it",
    )
    parser.add_argument("--trace-sample-ratio", type=float, default=1.0, help="share of new traces recorded")
    parser.add_argument(
        "--service-env",
        metavar="NAME=VALUE",
        action="append",
        default=[],
        help="an extra environment variable for the vouchers service (repeatable), e.g. BK_RELAY_BATCH_SIZE=500",
    )
    arguments = parser.parse_args()
    if arguments.logs:
        Path(arguments.logs).mkdir(parents=True, exist_ok=True)
    code, summary, figures = asyncio.run(main(arguments))
    report(summary, figures)
    sys.exit(code)
