"""`make restore-drill`: the vouchers ledger's PostgreSQL is lost in the middle of a voucher day and comes back
from the object store, to a point in time, with the tools CloudNativePG's backup plugin runs (Barman Cloud);
then the system goes on on it, and an independent check says what came back.

    python -m tests.drill.restore [--rate 20] [--phase-seconds 8]

The ledger runs on a PostgreSQL of its own (as in production, where each service has its own cluster) that
archives WAL to the local object store (deploy/local/objectstore.sh, backup.sh); initiatives and notifications
run on the stack's. The day:

1. residents pledge at a fixed rate; a base backup is taken while they go on pledging;
2. the ledger's outbox relay (a process of its own here, as it may be in production) stalls, and residents go on
   pledging (answered 201: the outbox holds their events);
3. the restore point: every pledge answered before it must come back;
4. more pledges while the relay still stalls, then it resumes, an official approves a new initiative (which
   the vouchers service learns from Kafka) and residents pledge again: none of this may come back;
5. the database is lost (the server SIGKILLed, its data directory set aside); it is restored into an empty
   directory to the restore point, `buurtkracht after-restore` rewinds the service's consumer group and
   clears from the outbox what Kafka already holds, and the service starts on the restored database;
6. residents pledge on the restored system.

The check: the ledger's invariants (`vouchers.ledger_check`), every pledge answered before the restore point
present and none after it, pledges on the restored system present, no event published twice and no sequence
given to two events, every event applied by every consumer exactly once, the new initiative known again (from
Kafka, after the rewind). Prints the figures as one JSON object on its last line; exits 1 on any problem.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import resource
import shutil
import signal
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from buurtkracht_contracts.topics import PRODUCERS

from ..chaos import check, load
from ..chaos.run import Folders
from ..system import ROOT, System, running_system

LOCAL = ROOT / "deploy" / "local"
PHASES = ("before", "after", "restored")  # pledges answered before the restore point, after it, after the restore


class Drill:
    """The drill's own PostgreSQL for the ledger, and the scripts that run, archive, lose and restore it."""

    def __init__(self, local_dir: Path, port: int, run: str) -> None:
        self.dir = local_dir / "restore-drill"
        self.port = port
        self.server_name = f"vouchers-db-{run}"  # its archive in the object store: a fresh one per drill
        self.env = os.environ | {
            "LOCAL_DIR": str(self.dir),
            "PG_PORT": str(port),
            "CACHE_DIR": os.environ.get("CACHE_DIR", str(local_dir / "cache")),
            "BACKUP_SERVER_NAME": self.server_name,
        }
        self.url = f"postgresql://vouchers:vouchers-dev@127.0.0.1:{port}/vouchers"
        self.admin_url = (
            f"postgresql://postgres:{os.environ.get('PG_SUPERUSER_PASSWORD', 'postgres')}@127.0.0.1:{port}/postgres"
        )

    @property
    def data(self) -> Path:
        return self.dir / "data" / "postgres"

    async def script(self, name: str, *arguments: str, env: dict[str, str] | None = None) -> str:
        process = await asyncio.create_subprocess_exec(
            str(LOCAL / name),
            *arguments,
            env=self.env | (env or {}),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await process.communicate()
        text = out.decode()
        if process.returncode != 0:
            raise RuntimeError(f"{name} {' '.join(arguments)} failed ({process.returncode}):\n{text[-3000:]}")
        return text.strip()

    async def up(self, fresh: bool) -> None:
        """The ledger's server, archiving every WAL segment to the object store."""
        if fresh:
            await self.script("postgres.sh", "down")
            shutil.rmtree(self.dir / "data", ignore_errors=True)
        printed = await self.script("backup.sh", "settings")  # the settings, after what installing the tools said
        settings = [line for line in printed.splitlines() if re.fullmatch(r"[a-z_]+=.*", line)]
        await self.script("postgres.sh", "up", env={"PG_EXTRA_SETTINGS": "\n".join(settings)})

    async def archived_up_to_now(self, timeout: float = 120.0) -> str:
        """Switch to a new WAL segment and wait until the one finished is in the object store; its name."""
        conn = await asyncpg.connect(self.admin_url)
        try:
            finished = await conn.fetchval("SELECT pg_walfile_name(pg_switch_wal())")
            deadline = time.monotonic() + timeout
            while (await conn.fetchval("SELECT coalesce(last_archived_wal, '') FROM pg_stat_archiver")) < finished:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"WAL segment {finished} not archived after {timeout:.0f} s")
                await asyncio.sleep(0.5)
            return finished
        finally:
            await conn.close()

    def lose(self) -> None:
        """The server dies with its machine (SIGKILL to every process of it) and its disk is gone: the data
        directory is set aside, never to be used again."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = Path(f"/proc/{postmaster}/task/{postmaster}/children").read_text().split()
        for pid in [postmaster, *map(int, children)]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        while Path(f"/proc/{postmaster}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self.data.rename(self.data.with_name(f"postgres.lost-{int(time.time())}"))

    async def restore(self, backup_id: str, target: datetime) -> str:
        """The base backup into the empty data directory, WAL replayed up to `target`, promoted, accepting
        writes; the server's log line saying where its recovery stopped."""
        point = target.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        await self.script("backup.sh", "restore", backup_id, str(self.data), point)
        await self.up(fresh=False)
        deadline = time.monotonic() + 300
        while True:  # until the replay reached the target and the server was promoted
            try:
                conn = await asyncpg.connect(self.admin_url)
            except (OSError, asyncpg.PostgresError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)
                continue
            try:
                if not await conn.fetchval("SELECT pg_is_in_recovery()"):
                    break
            finally:
                await conn.close()
            await asyncio.sleep(0.2)
        log = (self.dir / "logs" / "postgres.log").read_text(errors="replace")
        stops = re.findall(r"recovery stopping (?:before|after) .*", log)
        return stops[-1] if stops else "recovery reached the end of the archived WAL"


class Relay:
    """The ledger's outbox relay as a process of its own (`buurtkracht relay`), which the drill stalls and stops."""

    def __init__(self, url: str, bootstrap: str, environment: dict[str, str]) -> None:
        self.url, self.bootstrap, self.environment = url, bootstrap, environment
        self.process: asyncio.subprocess.Process | None = None

    async def start(self, log: Path) -> None:
        with log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                str(Path(sys.executable).with_name("buurtkracht")),
                "relay",
                "--database-url",
                self.url,
                "--bootstrap",
                self.bootstrap,
                "--poll-interval",
                "0.2",
                env=self.environment,
                stdout=out,
                stderr=out,
            )

    def stall(self, stalled: bool) -> None:
        """SIGSTOP / SIGCONT: the relay publishes nothing meanwhile, and answers go on."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP if stalled else signal.SIGCONT)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            await self.process.wait()


async def pledges(
    system: System, population: load.Population, ledger: load.Ledger, rate: float, seconds: float, seed: int
) -> None:
    await load.pledge_at_rate(system, population, ledger, rate, seconds, random.Random(seed))


async def drill(
    bootstrap: str,
    local_dir: Path,
    port: int,
    rate: float,
    phase: float,
    say: Any = print,
    folders: Any = None,
    resume: bool = True,
) -> dict[str, Any]:
    """One drill; its figures, with the problems found (none when it passed). `resume=False` leaves out
    `buurtkracht after-restore`, to show what that step prevents (the check then finds it)."""
    started = time.monotonic()
    run = f"{int(time.time()):x}"
    ledger_db = Drill(local_dir, port, run)
    say(f"restore drill: the ledger on 127.0.0.1:{port}, archived to the object store as {ledger_db.server_name}")
    say((await ledger_db.script("objectstore.sh", "up", env={"LOCAL_DIR": str(local_dir)})).splitlines()[-1])
    await ledger_db.up(fresh=True)
    figures: dict[str, Any] = {}
    problems: list[str] = []
    ledgers = {name: load.Ledger() for name in PHASES}
    folders = folders or Folders()
    settings = {"BK_SHUTDOWN_GRACE_SECONDS": "5"}
    relay: Relay | None = None
    try:
        async with running_system(
            bootstrap,
            folders,
            "drill",
            settings,
            {"vouchers": ledger_db.url},
            {"vouchers": {"BK_RELAY_ENABLED": "false"}},  # the drill's relay process publishes the ledger's outbox
        ) as system:
            relay = Relay(ledger_db.url, bootstrap, system.environments["vouchers"])
            await relay.start(system.logs / "relay.log")
            population = await load.prepare(system, residents=20, initiatives=4)
            say(f"day: {len(population.residents)} residents with a wallet, {len(population.initiatives)} initiatives")

            await pledges(system, population, ledgers["before"], rate, phase, 1)
            backup, _ = await asyncio.gather(
                ledger_db.script("backup.sh", "base"), pledges(system, population, ledgers["before"], rate, phase, 2)
            )
            backup_id = backup.splitlines()[-1]
            say(f"{backup.splitlines()[-2]}: {backup_id}, while residents went on pledging")

            relay.stall(True)
            try:
                await pledges(system, population, ledgers["before"], rate, phase, 3)
                await asyncio.sleep(0.5)
                target = datetime.now(UTC)
                await asyncio.sleep(0.5)
                await pledges(system, population, ledgers["after"], rate, phase, 4)
            finally:
                relay.stall(False)
            say(
                f"restore point {target.isoformat()}: the relay stalled for the {phase:.0f} s of pledges before "
                "it and after it"
            )

            journey = system.journey
            people = list(population.residents.values())
            late = await load.approved_initiative(
                journey, people[0], people[1:], population.official, 50_000, f"Na het herstelpunt {journey.run}"
            )
            await journey.until(
                "the vouchers service to learn of the initiative approved after the restore point",
                lambda: journey.call("vouchers", "GET", f"/api/v1/initiative-budgets/{late}", population.official),
            )
            await pledges(system, population, ledgers["after"], rate, phase, 5)
            await until_drained(system, ["vouchers"])
            segment = await ledger_db.archived_up_to_now()
            say(f"WAL archived up to {segment}")

            await system.kill("vouchers")
            await relay.kill()
            ledger_db.lose()
            say("the ledger's server was killed and its data directory set aside")
            t0 = time.monotonic()
            stopped_at = await ledger_db.restore(backup_id, target)
            restore_seconds = time.monotonic() - t0
            say(f"restored in {restore_seconds:.1f} s: {stopped_at}")
            resumed = await after_restore(system, ledger_db.url, bootstrap, target) if resume else {}
            say(f"after-restore: {json.dumps(resumed)}" if resume else "after-restore: left out")
            await relay.start(system.logs / "relay.log")
            starts = await system.start_until_ready("vouchers")
            service_seconds = time.monotonic() - t0
            say(f"the vouchers service answers on the restored ledger {service_seconds:.1f} s after the restore began")

            await pledges(system, population, ledgers["restored"], rate, phase, 6)
            await until_drained(system, list(system.databases))

            figures["vouchers_inbox_after_restore"] = await inbox_outcomes(system)
            findings = check.Findings()
            await check._ledger(system, findings)
            await check._events(system, bootstrap, findings)
            await check._messages(system, findings)
            problems += findings.problems
            figures |= {
                "backup_id": backup_id,
                "restore_point": target.isoformat(),
                "recovery": stopped_at,
                "restore_seconds": round(restore_seconds, 1),
                "until_service_answers_seconds": round(service_seconds, 1),
                "service_starts": starts,
                "after_restore": resumed,
                **{k: v for k, v in findings.figures.items() if k != "ledger_check"},
                "ledger_check": findings.figures.get("ledger_check"),
            }
            figures |= await pledges_check(system, population, ledgers, problems)
            figures |= await events_check(system, bootstrap, ledgers, problems)
            known = await journey.http.get(
                f"{system.url('vouchers')}/api/v1/initiative-budgets/{late}", headers=population.official
            )
            if known.status_code != 200:
                problems.append(
                    f"the initiative approved after the restore point is unknown to vouchers ({known.status_code})"
                )
            figures["initiative_after_restore_point_known_again"] = known.status_code == 200
    finally:
        if relay is not None:
            await relay.kill()
        stopped = await ledger_db.script("postgres.sh", "down")
        say(f"{stopped.splitlines()[-1]} (the ledger's server; {ledger_db.dir})")
    figures["drill_seconds"] = round(time.monotonic() - started, 1)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    figures["load_generator_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
    figures["problems"] = problems
    return figures


async def inbox_outcomes(system: System) -> dict[str, float]:
    """What the restarted vouchers consumer did with the records it read (`buurtkracht_inbox_events_total`):
    after the rewind, those the restored inbox already held are `duplicate`, and change nothing."""
    answer = await system.journey.http.get(f"{system.url('vouchers')}/metrics")
    outcomes: Counter[str] = Counter()
    for line in answer.text.splitlines():
        if line.startswith("buurtkracht_inbox_events_total{"):
            outcome = re.search(r'outcome="([a-z_]+)"', line)
            outcomes[outcome.group(1) if outcome else "?"] += float(line.rsplit(" ", 1)[1])
    return dict(outcomes)


async def until_drained(system: System, services: list[str], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        waiting = {k: v for k, v in (await check.drained(system)).items() if v and k.split(".")[0] in services}
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still waiting after {timeout:.0f} s: {waiting}")
        await asyncio.sleep(0.5)


async def after_restore(system: System, url: str, bootstrap: str, target: datetime) -> dict[str, Any]:
    environment = system.environments["vouchers"]
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("buurtkracht")),
        "after-restore",
        "vouchers",
        "--restored-to",
        target.isoformat(),
        "--database-url",
        url,
        "--bootstrap",
        bootstrap,
        "--group",
        environment["BK_SERVICE_NAME"],
        env=environment,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(f"buurtkracht after-restore failed: {err.decode()[-3000:]}")
    return json.loads(out.decode().strip().splitlines()[-1])


async def pledges_check(
    system: System, population: load.Population, ledgers: dict[str, load.Ledger], problems: list[str]
) -> dict[str, Any]:
    """Every pledge answered before the restore point is in the restored ledger with its amount, none answered
    after it is (nor its Idempotency-Key), and every pledge answered by the restored system is."""
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        rows = {
            str(row["id"]): row["amount_cents"]
            for row in await conn.fetch("SELECT id, amount_cents FROM pledges WHERE round_id = $1", population.round_id)
        }
        keys = {
            row["key"]
            for row in await conn.fetch(
                "SELECT key FROM idempotency_keys WHERE key = ANY($1::text[])",
                [key for ledger in ledgers.values() for key in ledger.pledges],
            )
        }
    finally:
        await conn.close()
    figures: dict[str, Any] = {}
    for name, ledger in ledgers.items():
        answered = [p for p in ledger.pledges.values() if p.status == 201]
        present = [p for p in answered if p.pledge_id in rows]
        figures[f"pledges_{name}"] = {
            "sent": len(ledger.pledges),
            "answered_201": len(answered),
            "in_restored_ledger": len(present),
            "not_answered_201": dict(Counter(str(p.status) for p in ledger.pledges.values() if p.status != 201)),
        }
        if name == "after":
            problems += [f"pledge {p.pledge_id} answered after the restore point came back" for p in present]
            problems += [
                f"pledge key {p.key} of after the restore point came back"
                for p in ledger.pledges.values()
                if p.key in keys
            ]
        else:
            problems += [
                f"pledge {p.pledge_id} ({name}) answered 201, not in the restored ledger"
                for p in answered
                if p not in present
            ]
            problems += [
                f"pledge {p.pledge_id}: {rows[p.pledge_id]} cents in the ledger, {p.answered_cents} answered"
                for p in present
                if rows[p.pledge_id] != p.answered_cents
            ]
        if not answered:
            problems.append(f"no pledge answered 201 in the phase '{name}': the drill proved nothing there")
    return figures


async def events_check(
    system: System, bootstrap: str, ledgers: dict[str, load.Ledger], problems: list[str]
) -> dict[str, Any]:
    """No event on Kafka twice (the outbox rows the restore brought back were on Kafka already), no sequence
    given to two events; and how many events on Kafka tell of pledges the restore undid (the consumers acted on
    them: a resident got an e-mail, an integration a webhook, for a pledge no longer in the ledger)."""
    records = await check.records_of_run(bootstrap, [PRODUCERS["vouchers"]], system.journey.run)
    copies = Counter(record.event_id for record, _ in records)
    problems += [f"event {event_id} on Kafka {n} times" for event_id, n in copies.items() if n > 1]
    by_sequence: dict[str, set[str]] = defaultdict(set)
    for record, _ in records:
        by_sequence[record.sequence].add(record.event_id)
    reused = {sequence: ids for sequence, ids in by_sequence.items() if len(ids) > 1}
    problems += [f"sequence {sequence} given to {len(ids)} events" for sequence, ids in reused.items()]
    undone = {p.pledge_id for p in ledgers["after"].pledges.values() if p.pledge_id}
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        outbox_left = await conn.fetchval("SELECT count(*) FROM outbox")
    finally:
        await conn.close()
    return {
        "vouchers_events_on_kafka": len(copies),
        "events_on_kafka_twice": sum(1 for n in copies.values() if n > 1),
        "sequences_given_twice": len(reused),
        "pledges_undone_by_the_restore": len(undone),
        "outbox_left": outbox_left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="pledges per second")
    parser.add_argument("--phase-seconds", type=float, default=8.0, help="seconds of pledges in each phase")
    parser.add_argument("--port", type=int, default=int(os.environ.get("DRILL_PG_PORT", "15442")))
    parser.add_argument(
        "--without-after-restore",
        action="store_true",
        help="leave out `buurtkracht after-restore`, to see what it prevents (the drill then fails)",
    )
    arguments = parser.parse_args()
    bootstrap = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    local_dir = Path(os.environ.get("LOCAL_DIR", ROOT / ".local")).resolve()
    figures = asyncio.run(
        drill(
            bootstrap,
            local_dir,
            arguments.port,
            arguments.rate,
            arguments.phase_seconds,
            resume=not arguments.without_after_restore,
        )
    )
    for problem in figures["problems"][:50]:
        print(f"PROBLEM: {problem}")
    print(json.dumps(figures))
    sys.exit(1 if figures["problems"] else 0)


if __name__ == "__main__":
    main()
