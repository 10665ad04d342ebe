"""Portal public read side: latency of the public API (and pages) at a fixed arrival rate, on a realistic read model.

Starts the portal (`python -m portal`, production's settings: two HTTP processes, the outbox relay in a process of
its own, JSON logs at INFO, a pool of 10) on a scratch database of the stack's PostgreSQL, and builds its read model
the way production does: the events of `--initiatives` initiatives in `--buurten` buurten (two wijken of one
gemeente) go on the real Kafka topics as the initiatives and vouchers services would publish them (submissions,
supports, threshold, approvals, pledges and withdrawals in an open round per wijk and one of the gemeente, awards,
funding, starts, reports, last year's closed rounds), and the portal's consumer applies them through its inbox and
projection. Then vegeta (open loop, `_load.Attack`) sends `--rate` requests a second for `--seconds` after a warm-up,
over a fixed mix:

    GET /api/v1/public/areas/{buurt}/initiatives     3   a buurt's list (25 initiatives, the first page of 20)
    GET /api/v1/public/areas/{wijk}/initiatives      1   a wijk's list (250 initiatives: the count and a page)
    GET /api/v1/public/initiatives/{id}              4   one initiative
    GET /api/v1/public/areas/{buurt}/rounds          2   the open rounds over a buurt
    GET /buurten/{buurt}                             1   the buurt page (only when it answers 200)
    GET /initiatieven/{id}                           1   the initiative page (only when it answers 200)

Figures: latency p50/p90/p99/max (as vegeta measured each request, and from each request's scheduled start, which
also counts any lag of the generator itself), per kind of request too; errors; the achieved rate; the CPU the
generator, the portal and PostgreSQL used; what the portal database's backends waited on. The yardstick, measured in
the same run so runs can be compared over time on this shared machine: the same generator at the same rate against
the portal's `/healthz` (the HTTP stack alone), and pgbench select-only on the same PostgreSQL. The goal (issue 15):
p99 at most `--goal-p99-ms` (50 ms) at 200 requests a second.

    .venv/bin/python bench/portal_public.py
    .venv/bin/python bench/portal_public.py --rate 400 --seconds 60 --py-spy /tmp/portal.svg

Progress and the summary go to stderr; the last line on stdout is the figures as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
from _load import Attack, _vegeta, write_targets
from _stack import (
    BOOTSTRAP,
    PGBENCH,
    ServiceProcess,
    WaitSampler,
    _pg_env,
    cpu_cores,
    cpu_seconds,
    key_pair,
    log,
    percentile,
    report,
    scratch_database,
)
from aiokafka import AIOKafkaProducer
from portal.app import SPEC

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import migrations, topics

SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-bench"
CATEGORIES = ("green", "play", "culture", "safety", "social", "sport")
WORDS = (
    "Geveltuinen",
    "Bankjes",
    "Speeltuin",
    "Buurtfeest",
    "Moestuin",
    "Boekenkast",
    "Muurschildering",
    "Repaircafé",
    "Sportveld",
    "Bloembakken",
    "Zomerschool",
    "Kerstmarkt",
)
# kind of request: weight in the mix
MIX = {"buurt_list": 3, "wijk_list": 1, "initiative": 4, "rounds": 2, "buurt_page": 1, "initiative_page": 1}
PAGES = ("buurt_page", "initiative_page")


# -- the history: what the services would have published -------------------------------------------------------


@dataclass
class History:
    """The events of a realistic read model, in the order the services would publish them, and what the read model
    must hold once they are applied (to know when the consumer is done)."""

    gemeente: str
    wijken: list[str]
    buurten: list[str]
    initiatives: list[uuid.UUID] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    supports: int = 0
    pledges: int = 0
    awarded: dict[uuid.UUID, list[tuple[uuid.UUID, int]]] = field(default_factory=dict)  # round: (initiative, cents)

    @classmethod
    def build(cls, initiatives: int, buurten: int, seed: int) -> History:
        draw = random.Random(seed)
        gemeente = f"GM{draw.randrange(1000, 10_000)}"
        wijken = [f"WK{gemeente[2:]}{n:02d}" for n in draw.sample(range(10, 100), 2)]
        per_wijk = -(-buurten // len(wijken))
        areas = [f"BU{wijk[2:]}{n:02d}" for wijk in wijken for n in range(1, per_wijk + 1)][:buurten]
        history = cls(gemeente, wijken, areas)
        now = datetime.now(UTC)
        open_rounds = {area: uuid.uuid4() for area in [*wijken, gemeente]}
        for area, round_id in open_rounds.items():
            history.events.append(
                v.RoundOpened(
                    round_id=round_id,
                    area_code=area,
                    name=f"Buurtbudget {now.year} {area}",
                    mechanism="pledge",
                    total_budget_cents=draw.choice((2_000_000, 5_000_000, 10_000_000)),
                    voucher_amount_cents=2_500,
                    opens_at=now - timedelta(days=10),
                    closes_at=now + timedelta(days=draw.randrange(10, 40)),
                )
            )
        last_year = {wijk: uuid.uuid4() for wijk in wijken}
        for wijk, round_id in last_year.items():
            history.events.append(
                v.RoundOpened(
                    round_id=round_id,
                    area_code=wijk,
                    name=f"Buurtbudget {now.year - 1} {wijk}",
                    mechanism="committee",
                    total_budget_cents=3_000_000,
                    voucher_amount_cents=None,
                    opens_at=now - timedelta(days=400),
                    closes_at=now - timedelta(days=340),
                )
            )
        for n in range(initiatives):
            history.initiative(draw, n, areas[n % len(areas)], open_rounds, last_year, now)
        for wijk, round_id in last_year.items():
            awarded = history.awarded.get(round_id, [])
            total = sum(cents for _, cents in awarded)
            history.events.append(
                v.RoundClosed(
                    round_id=round_id,
                    area_code=wijk,
                    name=f"Buurtbudget {now.year - 1} {wijk}",
                    mechanism="committee",
                    summary=v.RoundSummary(
                        total_budget_cents=max(3_000_000, total),
                        awarded_cents=total,
                        returned_to_pool_cents=max(3_000_000, total) - total,
                        awarded_initiative_ids=[initiative_id for initiative_id, _ in awarded],
                        unawarded_initiative_ids=[],
                    ),
                )
            )
        return history

    def initiative(
        self,
        draw: random.Random,
        n: int,
        buurt: str,
        open_rounds: dict[str, uuid.UUID],
        last_year: dict[str, uuid.UUID],
        now: datetime,
    ) -> None:
        """One initiative's life so far: 40% gathering support, 30% approved with pledges coming in, 10% in review,
        10% funded or started (last year), 10% completed with a report."""
        initiative_id = uuid.uuid4()
        self.initiatives.append(initiative_id)
        owner = f"r-owner-{n}"
        facts = {
            "initiative_id": initiative_id,
            "area_code": buurt,
            "title": f"{draw.choice(WORDS)} {buurt[-2:]}-{n}",
            "initiators": [owner],
        }
        requested = draw.randrange(20, 150) * 1_000
        lines = [i.PlannedBudgetLine(description=f"Post {k + 1}", amount_cents=requested // 4) for k in range(4)]
        threshold = 25
        fate = draw.random()
        self.events.append(
            i.InitiativeSubmitted(
                **facts,
                category=draw.choice(CATEGORIES),
                summary="Wat de buurt samen wil doen, in een paar zinnen: " + " ".join(draw.sample(WORDS, 6)),
                requested_amount_cents=requested,
                status="gathering_support",
                support_threshold=threshold,
                support_deadline=now + timedelta(days=draw.randrange(1, 42)),
                budget_lines=lines,
            )
        )
        supporters = draw.randrange(0, threshold) if fate < 0.4 else threshold + draw.randrange(0, 15)
        for count in range(1, supporters + 1):
            self.events.append(i.InitiativeSupported(**facts, supporter_id=f"r-sup-{n}-{count}", support_count=count))
        self.supports += supporters
        if fate < 0.4:
            return
        self.events.append(i.SupportThresholdReached(**facts, support_count=supporters))
        if fate < 0.5:
            return
        approved = requested - draw.randrange(0, 10) * 1_000
        self.events.append(
            i.InitiativeApproved(
                **facts, official_id="o-bench", requested_amount_cents=requested, approved_amount_cents=approved
            )
        )
        if fate < 0.8:  # pledges in this year's round of the wijk or the gemeente
            round_id = open_rounds[draw.choice([f"WK{buurt[2:8]}", self.gemeente])]
            area = next(area for area, rid in open_rounds.items() if rid == round_id)
            pledged = 0
            for k in range(draw.randrange(0, 25)):
                amount = draw.choice((500, 1_000, 2_500))
                if k % 7 == 6 and pledged >= amount:
                    pledged -= amount
                    event: Event = v.PledgeWithdrawn(
                        round_id=round_id,
                        area_code=area,
                        pledge_id=uuid.uuid4(),
                        initiative_id=initiative_id,
                        resident_id=f"r-pledger-{n}-{k}",
                        amount_cents=amount,
                        wallet_balance_cents=amount,
                        pledged_to_initiative_cents=pledged,
                        reason="withdrawn_by_resident",
                    )
                else:
                    pledged += amount
                    event = v.PledgeMade(
                        round_id=round_id,
                        area_code=area,
                        pledge_id=uuid.uuid4(),
                        initiative_id=initiative_id,
                        resident_id=f"r-pledger-{n}-{k}",
                        amount_cents=amount,
                        wallet_balance_cents=2_500 - amount,
                        pledged_to_initiative_cents=pledged,
                        requested_amount_cents=amount,
                    )
                self.events.append(event)
                self.pledges += 1
            return
        # funded in last year's round of the wijk, then started, and half of them completed with a report
        round_id, wijk = last_year[f"WK{buurt[2:8]}"], f"WK{buurt[2:8]}"
        self.events.append(
            v.InitiativeAwarded(
                round_id=round_id,
                area_code=wijk,
                initiative_id=initiative_id,
                mechanism="committee",
                awarded_amount_cents=approved,
            )
        )
        self.awarded.setdefault(round_id, []).append((initiative_id, approved))
        self.events.append(i.InitiativeFunded(**facts, round_id=round_id, awarded_amount_cents=approved))
        self.events.append(i.InitiativeStarted(**facts, started_by=owner))
        if fate < 0.9:
            return
        spending = [
            i.BudgetLineSpending(description=line.description, budgeted_cents=line.amount_cents, spent_cents=spent)
            for line in lines
            for spent in [line.amount_cents - draw.randrange(0, 5) * 100]
        ]
        self.events.append(
            i.InitiativeCompleted(
                **facts,
                reported_by=owner,
                what_was_done="Gedaan wat we beloofden, met de hele straat. " * 3,
                spent_amount_cents=sum(line.spent_cents for line in spending),
                spending=spending,
            )
        )


async def publish(events: Sequence[Event]) -> float:
    """Every event on its topic, keyed by its aggregate, as the services' relays publish them; returns the seconds."""
    started = time.perf_counter()
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=5, enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for event in events:
            record = to_kafka(Envelope.wrap(event, SOURCE))
            sent.append(await producer.send(type(event).topic, record.value, key=record.key, headers=record.headers))
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    return time.perf_counter() - started


async def applied(url: str, expected: int, timeout: float) -> float | None:
    """The perf_counter time the portal's inbox held `expected` events, or None after `timeout` seconds."""
    connection = await asyncpg.connect(url)
    try:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if await connection.fetchval("SELECT count(*) FROM inbox") >= expected:
                return time.perf_counter()
            await asyncio.sleep(0.2)
        return None
    finally:
        await connection.close()


# -- the load ---------------------------------------------------------------------------------------------------


def requests(history: History, base_url: str, kinds: Sequence[str], seed: int) -> Iterator[tuple[str, str]]:
    """An endless, reproducible stream of (kind, url) in the proportions of MIX, over every area and initiative."""
    draw = random.Random(seed)
    weights = [MIX[kind] for kind in kinds]
    paths = {
        "buurt_list": lambda: f"/api/v1/public/areas/{draw.choice(history.buurten)}/initiatives",
        "wijk_list": lambda: f"/api/v1/public/areas/{draw.choice(history.wijken)}/initiatives",
        "initiative": lambda: f"/api/v1/public/initiatives/{draw.choice(history.initiatives)}",
        "rounds": lambda: f"/api/v1/public/areas/{draw.choice(history.buurten)}/rounds",
        "buurt_page": lambda: f"/buurten/{draw.choice(history.buurten)}",
        "initiative_page": lambda: f"/initiatieven/{draw.choice(history.initiatives)}",
    }
    while True:
        kind = draw.choices(kinds, weights)[0]
        yield kind, base_url + paths[kind]()


def target_lines(stream: Iterator[tuple[str, str]], count: int) -> Iterator[str]:
    for _ in range(count):
        _, url = next(stream)
        yield json.dumps({"method": "GET", "url": url})


KIND_OF = [
    (re.compile(r"/api/v1/public/areas/BU\d+/initiatives$"), "buurt_list"),
    (re.compile(r"/api/v1/public/areas/WK\d+/initiatives$"), "wijk_list"),
    (re.compile(r"/api/v1/public/initiatives/[0-9a-f-]+$"), "initiative"),
    (re.compile(r"/api/v1/public/areas/BU\d+/rounds$"), "rounds"),
    (re.compile(r"/buurten/BU\d+$"), "buurt_page"),
    (re.compile(r"/initiatieven/[0-9a-f-]+$"), "initiative_page"),
    (re.compile(r"/healthz$"), "healthz"),
]


@dataclass(frozen=True)
class Hit:
    kind: str
    seq: int
    second: int  # of the attack, by the request's place in the schedule
    latency_ms: float
    scheduled_ms: float  # from the request's place in the schedule (attack start + seq / rate) until its answer
    code: int
    error: str


async def hits(attack: Attack) -> list[Hit]:
    """Every request of the attack with its kind (vegeta's CSV: timestamp, code, latency, bytes out, bytes in, error,
    body, attack, seq, method, url, headers); the bodies are not kept."""
    rows = list(csv.reader((await _vegeta("encode", "-to=csv", str(attack.output))).splitlines()))
    if not rows:
        return []
    start = min(int(row[0]) for row in rows) / 1e9
    found = []
    for row in rows:
        kind = next((name for pattern, name in KIND_OF if pattern.search(row[10])), "other")
        started, latency, seq = int(row[0]) / 1e9, int(row[2]) / 1e9, int(row[8])
        scheduled = start + seq / attack.rate
        found.append(
            Hit(
                kind,
                seq,
                int(seq / attack.rate),
                latency * 1000,
                (started + latency - scheduled) * 1000,
                int(row[1]),
                row[5],
            )
        )
    return found


def slow_seconds(found: Sequence[Hit], goal_ms: float) -> dict[int, float]:
    """The seconds of the attack in which some request took longer than `goal_ms`, with the slowest of each: spread
    over the run, the tail is queueing at a steady load; bunched, it is a stall (a pause of the process, or the
    machine's CPU taken by something else for a moment)."""
    slowest: dict[int, float] = {}
    for hit in found:
        slowest[hit.second] = max(slowest.get(hit.second, 0.0), hit.latency_ms)
    return {second: ms for second, ms in sorted(slowest.items()) if ms > goal_ms}


def latencies(values: list[float]) -> dict[str, float]:
    values = sorted(values)
    return {
        "p50_ms": percentile(values, 0.50),
        "p90_ms": percentile(values, 0.90),
        "p99_ms": percentile(values, 0.99),
        "max_ms": values[-1] if values else float("nan"),
    }


async def attack(name: str, workdir: Path, lines: Iterator[str], rate: float, seconds: float) -> Attack:
    path = workdir / f"{name}.jsonl"
    write_targets(path, lines)
    run = Attack(name, path, rate, seconds, workers=20, max_workers=500, timeout=10.0)
    await run.run()
    return run


def scheduler_times(root: int) -> dict[str, float]:
    """CPU seconds and run-queue seconds (runnable, but waiting for a core) of `root`, its descendants and all their
    threads so far (/proc/<pid>/task/<tid>/schedstat). Run-queue time is what the machine's other load costs the
    service directly: a request waits that long on top of its own work."""
    parents: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as stat:
                    text = stat.read()
            except OSError:
                continue
            parents[int(entry.name)] = int(text[text.rindex(")") + 2 :].split()[1])

    def below(pid: int) -> bool:
        while pid > 1:
            if pid == root:
                return True
            pid = parents.get(pid, 0)
        return False

    running = waiting = 0
    for pid in (pid for pid in parents if below(pid)):
        with contextlib.suppress(OSError):
            for task in os.scandir(f"/proc/{pid}/task"):
                with open(f"{task.path}/schedstat") as schedstat:
                    cpu, queued, _ = schedstat.read().split()
                running, waiting = running + int(cpu), waiting + int(queued)
    return {"cpu_seconds": running / 1e9, "runqueue_seconds": waiting / 1e9}


def profile(pid: int, path: str, seconds: float) -> subprocess.Popen[bytes]:
    """py-spy sampling the portal and its processes while the load runs; `.txt`: collapsed stacks, else SVG."""
    spy = shutil.which("py-spy") or str(Path.home() / ".local" / "bin" / "py-spy")
    kind = "raw" if path.endswith(".txt") else "flamegraph"
    command = [spy, "record", "--pid", str(pid), "--subprocesses", "--nonblocking", "--rate", "200"]
    command += ["--duration", str(int(seconds)), "--format", kind, "--output", path]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def pgbench_select_only(seconds: int, clients: int = 4) -> dict[str, float]:
    """pgbench's built-in select-only script (`-S`, one primary-key read a transaction) on a scratch database of the
    same PostgreSQL: the database server's own speed at this moment."""
    async with scratch_database("bench_pgbench") as url:
        env = _pg_env(url)
        await asyncio.to_thread(
            subprocess.run, [PGBENCH, "-i", "-q", "-s", "10"], env=env, check=True, capture_output=True
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [PGBENCH, "-S", "-c", str(clients), "-j", "2", "-T", str(seconds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    if not (tps and latency):
        raise RuntimeError(f"unexpected pgbench output:\n{done.stdout}\n{done.stderr}")
    return {"tps": float(tps[1]), "latency_ms": float(latency[1]), "clients": clients, "seconds": seconds}


# -- the run ----------------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> tuple[int, str, dict[str, object]]:
    with tempfile.TemporaryDirectory(prefix="bk-bench-portal-") as workdir:
        return await run(args, Path(workdir))


async def run(args: argparse.Namespace, workdir: Path) -> tuple[int, str, dict[str, object]]:
    history = History.build(args.initiatives, args.buurten, args.seed)
    log(
        f"history: {len(history.initiatives)} initiatives in {len(history.buurten)} buurten of "
        f"{', '.join(history.wijken)} ({history.gemeente}); {len(history.events):,} events "
        f"({history.supports:,} supports, {history.pledges:,} pledges and withdrawals)"
    )
    _, public_pem = key_pair()
    code = 0
    async with scratch_database("bench_portal") as database_url:
        await asyncio.to_thread(migrations.apply, database_url, SPEC.migrations)
        service = ServiceProcess(
            database_url,
            public_pem,
            pool_max_size=args.pool_size,
            launch="module",
            module="portal",
            workers=args.workers,
            consuming=True,
            # production's settings (k8s/base/settings.env), the rest as `python -m portal` defaults them
            extra_env={
                "BK_RELAY_PROCESS": "true",
                "BK_LOG_FORMAT": "json",
                "BK_LOG_LEVEL": "INFO",
                "BK_RELAY_POLL_INTERVAL_SECONDS": "0.05",
            },
        )
        await topics.ensure(
            {"bootstrap_servers": BOOTSTRAP},
            [*all_topics(), TopicSpec(dead_letter_topic(service.service_name), 1, 3_600_000)],
        )
        try:
            ready = await service.start(timeout=120)
            log(
                f"portal ready on {service.base_url} in {ready:.1f} s "
                f"(pid {service.pid}, {args.workers} HTTP processes)"
            )
            publishing = time.perf_counter()
            published = await publish(history.events)
            done = await applied(database_url, len(history.events), timeout=args.load_timeout)
            if done is None:
                raise RuntimeError(f"the portal did not apply {len(history.events)} events in {args.load_timeout} s")
            building = done - publishing
            async with httpx.AsyncClient(base_url=service.base_url, timeout=10.0) as client:
                initiative_id = history.initiatives[0]
                pages = {
                    "buurt_page": await client.get(f"/buurten/{history.buurten[0]}"),
                    "initiative_page": await client.get(f"/initiatieven/{initiative_id}"),
                }
                check = await client.get(f"/api/v1/public/areas/{history.wijken[0]}/initiatives")
            skipped = {kind: answer.status_code for kind, answer in pages.items() if answer.status_code != 200}
            kinds = [kind for kind in MIX if kind not in skipped]
            listed = check.json().get("total") if check.status_code == 200 else None
            log(
                f"read model built: {len(history.events):,} events published in {published:.1f} s, applied "
                f"{building:.1f} s after the first was sent; "
                f"{history.wijken[0]} lists {listed} initiatives; pages "
                + (", ".join(f"{kind} answered {status}, left out" for kind, status in skipped.items()) or "answer 200")
            )

            stream = requests(history, service.base_url, kinds, args.seed)
            warm = await attack(
                "warmup",
                workdir,
                target_lines(stream, int(args.rate * args.warmup_seconds) + 50),
                args.rate,
                args.warmup_seconds,
            )
            log(f"warm-up: {len(warm.sent())} requests at {args.rate:g}/s")

            profiler = profile(service.pid, args.py_spy, args.seconds) if args.py_spy else None
            pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
            database = database_url.rsplit("/", 1)[1]
            try:
                sampler = WaitSampler(pool, database)
                cpu_before = cpu_seconds(service.pid, database)
                sched_before = scheduler_times(service.pid)
                async with sampler:
                    measured = await attack(
                        "public",
                        workdir,
                        target_lines(stream, int(args.rate * args.seconds) + 200),
                        args.rate,
                        args.seconds,
                    )
                cpu_after = cpu_seconds(service.pid, database)
                sched_after = scheduler_times(service.pid)
            finally:
                await pool.close()
            if profiler is not None:
                await asyncio.to_thread(profiler.wait)
                log(f"profile of the measured phase: {args.py_spy}")
            cores = cpu_cores(cpu_before, cpu_after, measured.wall)
            cores["generator"] = measured.generator_cpu / measured.wall
            cores["others"] -= cores["generator"]  # the generator had ended by the second reading

            health_lines = (
                json.dumps({"method": "GET", "url": f"{service.base_url}/healthz"})
                for _ in range(int(args.rate * args.yardstick_seconds) + 50)
            )
            health_before = cpu_seconds(service.pid, database)
            health = await attack("healthz", workdir, health_lines, args.rate, args.yardstick_seconds)
            health_after = cpu_seconds(service.pid, database)
        finally:
            exit_code, stopping = await service.stop()
            log(f"portal stopped by SIGTERM: exit code {exit_code} after {stopping:.1f} s")
            if not service.clean_exit(exit_code):
                log("portal log:\n" + service.log_tail())
                code = 1
            service.cleanup()
    pgbench = await pgbench_select_only(int(args.yardstick_seconds))

    found = await hits(measured)
    errors = [hit for hit in found if not 200 <= hit.code < 300]
    by_kind = {}
    for kind in kinds:
        mine = [hit for hit in found if hit.kind == kind]
        by_kind[kind] = latencies([hit.latency_ms for hit in mine]) | {
            "requests": len(mine),
            "errors": sum(1 for hit in mine if not 200 <= hit.code < 300),
        }
    overall = latencies([hit.latency_ms for hit in found])
    slow = slow_seconds(found, args.goal_p99_ms)
    over_goal = sum(1 for hit in found if hit.latency_ms > args.goal_p99_ms)
    scheduled = latencies([hit.scheduled_ms for hit in found])
    health_hits = await hits(health)
    health_latency = latencies([hit.latency_ms for hit in health_hits])
    health_errors = sum(1 for hit in health_hits if not 200 <= hit.code < 300)
    achieved = len(found) / measured.seconds
    throughput = float(measured.report.get("throughput", 0.0))
    goal_met = overall["p99_ms"] <= args.goal_p99_ms and not errors
    if errors or len(found) < 0.99 * measured.intended() or health_errors:
        code = 1
    error_kinds: dict[str, int] = {}
    for hit in errors:
        label = f"{hit.code} {hit.error}".strip()
        error_kinds[label] = error_kinds.get(label, 0) + 1

    figures: dict[str, object] = {
        "rate": args.rate,
        "seconds": args.seconds,
        "requests": len(found),
        "intended": measured.intended(),
        "achieved_rate": achieved,
        "throughput": throughput,
        "errors": len(errors),
        "error_kinds": error_kinds,
        **overall,
        "from_schedule": scheduled,
        "over_goal": over_goal,
        "seconds_over_goal": len(slow),
        "by_kind": by_kind,
        "goal_p99_ms": args.goal_p99_ms,
        "goal_met": goal_met,
        "generator_cpu_seconds": measured.generator_cpu,
        # the portal's processes (HTTP, the consumer's idle polling, the relay's) per request answered: less
        # sensitive to the machine's other load than the latencies
        "service_cpu_ms_per_request": 1000 * cores["service"] * measured.wall / max(len(found), 1),
        "cores": cores,
        # seconds the portal's threads were runnable but had no core, per second of the run (and the share of its
        # own CPU time that is): the part of the latency the rest of the machine's load adds
        "service_runqueue_per_s": (sched_after["runqueue_seconds"] - sched_before["runqueue_seconds"]) / measured.wall,
        "service_runqueue_to_cpu": (sched_after["runqueue_seconds"] - sched_before["runqueue_seconds"])
        / max(sched_after["cpu_seconds"] - sched_before["cpu_seconds"], 1e-9),
        "load_average": os.getloadavg()[0],
        "db_active_backends": sampler.averages(),
        "pages_skipped": {kind: f"answered {status}" for kind, status in skipped.items()},
        "read_model": {
            "build_seconds": building,
            "initiatives": len(history.initiatives),
            "buurten": len(history.buurten),
            "wijken": len(history.wijken),
            "events": len(history.events),
            "supports": history.supports,
            "pledge_events": history.pledges,
        },
        "service": {"http_workers": args.workers, "relay_process": True, "pool_max_size": args.pool_size},
        "yardstick": {
            "healthz": health_latency
            | {
                # the HTTP stack and the kit's middleware alone, per request: the floor under the read path's figure
                "service_cpu_ms_per_request": 1000
                * (health_after["service"] - health_before["service"])
                / max(len(health_hits), 1),
                "rate": args.rate,
                "requests": len(health_hits),
                "errors": health_errors,
                "generator_cpu_seconds": health.generator_cpu,
            },
            "pgbench_select_only": pgbench,
        },
        "ok": code == 0,
    }
    summary = (
        f"{achieved:.0f} requests/s of {args.rate:g} for {args.seconds:g} s, {len(errors)} errors: "
        f"p50 {overall['p50_ms']:.1f} ms, p90 {overall['p90_ms']:.1f} ms, p99 {overall['p99_ms']:.1f} ms, "
        f"max {overall['max_ms']:.0f} ms (from the schedule p99 {scheduled['p99_ms']:.1f} ms); goal p99 <= "
        f"{args.goal_p99_ms:g} ms {'met' if goal_met else 'MISSED'}; generator {measured.generator_cpu:.1f} CPU s; "
        f"portal {figures['service_cpu_ms_per_request']:.2f} ms CPU a request, waited "
        f"{figures['service_runqueue_to_cpu']:.2f} s for a core per CPU second; load average "
        f"{figures['load_average']:.1f}; "
        f"cores " + ", ".join(f"{k} {v:.2f}" for k, v in cores.items()) + f"; database backends: {sampler.summary()}; "
        f"yardstick: /healthz p50 {health_latency['p50_ms']:.1f} ms p99 {health_latency['p99_ms']:.1f} ms "
        f"({figures['yardstick']['healthz']['service_cpu_ms_per_request']:.2f} ms CPU a request), "
        f"pgbench -S {pgbench['tps']:,.0f} tps"
    )
    log(
        f"{over_goal} requests over {args.goal_p99_ms:g} ms, in {len(slow)} of {int(args.seconds)} seconds: "
        + ", ".join(f"s{second} {ms:.0f} ms" for second, ms in slow.items())
    )
    for kind, numbers in by_kind.items():
        log(
            f"  {kind:16} {numbers['requests']:6} requests, p50 {numbers['p50_ms']:.1f} ms, "
            f"p99 {numbers['p99_ms']:.1f} ms, max {numbers['max_ms']:.0f} ms, {numbers['errors']} errors"
        )
    return code, summary, figures


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests a second (open loop)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup-seconds", type=float, default=5.0)
    parser.add_argument("--yardstick-seconds", type=float, default=10.0)
    parser.add_argument("--initiatives", type=int, default=500)
    parser.add_argument("--buurten", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="HTTP processes (BK_HTTP_WORKERS; production: 2)")
    parser.add_argument("--pool-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--load-timeout", type=float, default=600.0, help="seconds to wait for the read model")
    parser.add_argument("--goal-p99-ms", type=float, default=50.0)
    parser.add_argument("--py-spy", metavar="PATH", help="profile the portal with py-spy while measuring")
    return parser.parse_args(argv)


if __name__ == "__main__":
    exit_code, text, numbers = asyncio.run(main(parse(sys.argv[1:])))
    report(text, numbers)
    sys.exit(exit_code)
