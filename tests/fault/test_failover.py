"""The primary PostgreSQL lost in the middle of a voucher day, and its synchronous standby promoted in its place:
every pledge the vouchers service acknowledged (201) is on the promoted server and booked in its ledger, and the
service pledges again as soon as the promoted server takes writes — it finds it through its multi-host URL
(`...@127.0.0.1:P1,127.0.0.1:P2/vouchers?target_session_attrs=read-write`) alone, without a restart.

The pair is the local stack's (`postgres.sh up`, `standby up`, `kill`, `promote`), started by this module on free
ports in a directory of its own; Kafka is the stack's. The standby is synchronous (`ANY 1 (standby)`): a commit on
the primary returns only once the standby has flushed it, so no acknowledged pledge can be lost with the primary.

How the day goes, and why neither passing nor failing depends on timing:
- residents pledge from several clients at a steady pace, each pledge with an Idempotency-Key of its own;
- for a second before the kill the primary's WAL sender is stopped (SIGSTOP), as when the link to the standby
  stalls just as the primary dies. With a synchronous standby no commit returns in that second, so every client
  has a request in flight when the primary is killed: the kill always cuts requests off mid-commit. With an
  asynchronous standby the primary goes on acknowledging pledges whose WAL never leaves it, and those are missing
  after the failover: `test_an_asynchronous_standby_loses_what_was_acknowledged_in_the_stall` shows the checks
  find them. (Without the stall, an asynchronous standby on the same machine is rarely a millisecond behind: the
  same day with an asynchronous standby and no stall lost no acknowledged pledge in three runs of three, so a
  kill alone would not tell the two apart.)
- the primary is SIGKILLed (postmaster and every backend) and the standby promoted at once; the clients keep
  pledging, answered 503 until the promoted server takes writes, then 201 again.
- a pledge answered with an error may exist all the same: its commit may have reached the standby while its
  answer was lost with the primary (rare here, as the stall holds back the WAL of the commits the kill cuts off;
  without the stall, one run in three had one). Such pledges are counted, not failed; repeating every errored
  pledge with its Idempotency-Key then answers 201 with that same pledge, never a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts.event import source_urn
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint

from ..keys import PRIVATE, PUBLIC
from ..system import free_port

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]
POSTGRES_SH = ROOT / "deploy/local/postgres.sh"
PASSWORD = "failover-test"
INITIATIVES = source_urn("00000000000000000000", "buurtkracht-initiatives")
WIJK, BUURT = "WK036300", "BU03630001"
CLIENTS = 8  # residents pledging at once, one request at a time each
PACE = 0.01  # seconds a client waits after an acknowledged pledge; 0.05 after an error
PLEDGE_CENTS = 100
WARM_UP = 100  # pledges acknowledged before the stall
STALL = 1.0  # seconds the WAL sender is stopped before the kill
AFTER = 10  # pledges each client has acknowledged by the promoted server before the day ends


@dataclass
class Attempt:
    resident: str
    key: str
    sent: float
    answered: float | None = None
    status: int | None = None  # None: no HTTP answer at all
    pledge_id: str | None = None


@dataclass
class Pair:
    """A primary and its standby, run by the stack's scripts with `env`."""

    env: dict[str, str]
    primary_port: int
    standby_port: int

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.primary_port}/postgres"

    @property
    def vouchers_url(self) -> str:
        """What the service is given: both servers; the client takes the one that accepts writes."""
        hosts = f"127.0.0.1:{self.primary_port},127.0.0.1:{self.standby_port}"
        return f"postgresql://vouchers:vouchers-dev@{hosts}/vouchers?target_session_attrs=read-write"

    async def run(self, *command: str) -> str:
        process = await asyncio.create_subprocess_exec(
            str(POSTGRES_SH), *command, env=self.env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
        )
        output, _ = await asyncio.wait_for(process.communicate(), timeout=120)
        assert process.returncode == 0, f"postgres.sh {' '.join(command)}:\n{output.decode()}"
        return output.decode().strip()


@pytest.fixture
def pair():
    """A primary with a synchronous standby, on free ports under a temporary LOCAL_DIR; stopped however the test
    ends."""
    local_dir = tempfile.mkdtemp(prefix="bk-failover-")
    primary_port = free_port()
    standby_port = free_port()
    while standby_port == primary_port:
        standby_port = free_port()
    # the settings reach the scripts through the environment; a make command line of the caller (in MAKEFLAGS)
    # must not override them when the scripts ask make for the others
    env = {name: value for name, value in os.environ.items() if name not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    env |= {
        "LOCAL_DIR": local_dir,
        "PG_PORT": str(primary_port),
        "PG_STANDBY_PORT": str(standby_port),
        "PG_SUPERUSER_PASSWORD": PASSWORD,
        "PG_EXTRA_SETTINGS": "",  # the stack's extra settings (a WAL archive, say) are not this pair's
    }
    try:
        for command in (["up"], ["standby", "up"]):
            started = time.monotonic()
            result = subprocess.run(
                [str(POSTGRES_SH), *command], env=env, capture_output=True, text=True, timeout=180, check=False
            )
            if result.returncode != 0:
                pytest.fail(f"postgres.sh {' '.join(command)} failed:\n{result.stdout}{result.stderr}")
            print(f"postgres.sh {' '.join(command)}: {time.monotonic() - started:.1f}s")
        yield Pair(env, primary_port, standby_port)
    finally:
        subprocess.run([str(POSTGRES_SH), "down"], env=env, capture_output=True, timeout=180, check=False)
        shutil.rmtree(local_dir, ignore_errors=True)


def bearer(subject: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    token = mint(
        PRIVATE,
        issuer="https://login.buurtkracht.local",
        audience="buurtkracht",
        subject=subject,
        roles=roles,
        areas=areas,
    )
    return {"Authorization": f"Bearer {token}"}


async def until(what: str, check, timeout: float, interval: float = 0.02):
    """Until `check()` (a plain or an async function) is true."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f}s for {what}")
        await asyncio.sleep(interval)


@dataclass
class Day:
    """What happened, as the clients saw it and as the promoted server holds it."""

    attempts: list[Attempt]
    round_id: str
    stalled: float
    killed: float
    kill_line: str
    promote_line: str
    replication: list[tuple[str, str, str]]
    # the promoted server when the clients stopped: each pledge of the round (booked in the journal or not), and
    # each Idempotency-Key whose pledge committed, with that pledge
    on_server: dict[str, bool] = field(default_factory=dict)
    committed_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # then every errored pledge repeated with its key: (status, pledge id) of each, and the round's pledges after
    repeated: list[tuple[Attempt, int, str | None]] = field(default_factory=list)
    pledges_after_repeating: int = 0

    @property
    def acknowledged(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status == 201]

    @property
    def errored(self) -> list[Attempt]:
        return [a for a in self.attempts if a.status != 201]

    @property
    def lost(self) -> list[Attempt]:
        return [a for a in self.acknowledged if a.pledge_id not in self.on_server]

    @property
    def in_flight_at_kill(self) -> list[Attempt]:
        return [a for a in self.attempts if a.sent < self.killed and (a.answered or 0) > self.killed]

    @property
    def acknowledged_in_stall(self) -> list[Attempt]:
        """Pledges sent after the WAL sender stopped and acknowledged before the kill: none, when the standby is
        synchronous."""
        return [a for a in self.acknowledged if a.sent >= self.stalled and a.answered <= self.killed]

    @property
    def back(self) -> Attempt:
        """The first pledge acknowledged after the kill: by the promoted server."""
        return min((a for a in self.acknowledged if a.answered > self.killed), key=lambda a: a.answered)


async def pledge_steadily(
    http: httpx.AsyncClient, url: str, resident: str, body: dict, attempts: list[Attempt], stop: asyncio.Event
) -> None:
    headers = bearer(resident, ["resident"], [BUURT])
    n = 0
    while not stop.is_set():
        n += 1
        attempt = Attempt(resident, f"{resident}-{n}", time.monotonic())
        attempts.append(attempt)
        try:
            answer = await http.post(url, json=body, headers=headers | {"Idempotency-Key": attempt.key})
            attempt.status = answer.status_code
            if answer.status_code == 201:
                attempt.pledge_id = answer.json()["id"]
        except httpx.TransportError:
            pass
        attempt.answered = time.monotonic()
        await asyncio.sleep(PACE if attempt.status == 201 else 0.05)


async def voucher_day(pair: Pair, kafka_bootstrap: str, tmp_path: Path, synchronous: bool) -> Day:
    """The vouchers service on the pair, a round and wallets, then pledges at a steady pace through the stall, the
    kill of the primary and the promotion of the standby, until every client has had AFTER pledges acknowledged
    by the promoted server. The service is stopped afterwards; the pair is left as the day left it."""
    run = uuid.uuid4().hex[:6]
    primary = await asyncpg.connect(pair.admin_url)
    try:
        if not synchronous:
            await primary.execute("ALTER SYSTEM SET synchronous_standby_names = ''")
            await primary.execute("SELECT pg_reload_conf()")
            await until("the standby to be asynchronous", lambda: _sync_state_is(primary, "async"), 10)
        replication = [
            tuple(row)
            for row in await primary.fetch("SELECT application_name, state, sync_state FROM pg_stat_replication")
        ]
        walsender = await primary.fetchval("SELECT pid FROM pg_stat_replication WHERE application_name = 'standby'")
    finally:
        await primary.close()

    group = f"vouchers-failover-{run}"
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap.split(",")},
        [*all_topics(), TopicSpec(dead_letter_topic(group), 1, 3_600_000)],
    )
    (tmp_path / "public.pem").write_text(PUBLIC)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "vouchers.log"
    env = os.environ | {
        "BK_SERVICE_NAME": group,
        "BK_DATABASE_URL": pair.vouchers_url,
        "BK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BK_HTTP_PORT": str(port),
        "BK_JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
        "BK_CONSUMER_START": "latest",  # a group of its own, consuming before the approval is sent
        "BK_LEDGER_CHECK_SECONDS": "3600",
        "BK_SHUTDOWN_GRACE_SECONDS": "10",
        "BK_LOG_LEVEL": "WARNING",
    }
    with log.open("wb") as out:
        service = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "vouchers", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    official = bearer(f"o-failover-{run}", ["official"], [WIJK])
    residents = [f"r-failover-{run}-{n}" for n in range(CLIENTS)]
    attempts: list[Attempt] = []
    stop = asyncio.Event()
    clients: list[asyncio.Task] = []
    stopped_walsender = False
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:

            async def consuming():
                assert service.returncode is None, log.read_text()[-3000:]
                with contextlib.suppress(httpx.TransportError):
                    ready = await http.get("/readyz")
                    return ready.status_code == 200 and ready.json().get("consuming") is True
                return False

            await until("the vouchers service to consume", consuming, 90, interval=0.2)

            initiative = uuid.uuid4()
            approved = i.InitiativeApproved(
                initiative_id=initiative,
                area_code=BUURT,
                title=f"Failover {run}",
                initiators=[f"r-owner-{run}"],
                official_id=f"o-failover-{run}",
                requested_amount_cents=50_000_000,
                approved_amount_cents=50_000_000,  # far more than the day pledges: never awarded
            )
            record = to_kafka(Envelope.wrap(approved, INITIATIVES))
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap.split(","), acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
            finally:
                await producer.stop()

            async def known():
                return (await http.get(f"/api/v1/initiative-budgets/{initiative}", headers=official)).status_code == 200

            await until("the vouchers service to know the approved initiative", known, 30, interval=0.1)

            now = datetime.now(UTC)
            opened = await http.post(
                "/api/v1/rounds",
                headers=official | {"Idempotency-Key": f"round-{run}"},
                json={
                    "area_code": WIJK,
                    "name": f"Buurtbudget failover {run}",
                    "total_budget_cents": CLIENTS * 1_000_000,
                    "opens_at": (now - timedelta(minutes=1)).isoformat(),
                    "closes_at": (now + timedelta(days=1)).isoformat(),
                    "mechanism": "pledge",
                    "voucher_amount_cents": 1_000_000,  # a wallet the day never empties
                    "allow_wallet_claims": False,
                },
            )
            assert opened.status_code == 201, opened.text
            round_id = opened.json()["id"]
            issued = await http.post(
                f"/api/v1/rounds/{round_id}/wallet-issuances", headers=official, json={"resident_ids": residents}
            )
            assert issued.status_code in (200, 201) and issued.json()["issued"] == CLIENTS, issued.text

            url = f"/api/v1/rounds/{round_id}/pledges"
            body = {"initiative_id": str(initiative), "amount_cents": PLEDGE_CENTS}
            clients = [
                asyncio.create_task(pledge_steadily(http, url, resident, body, attempts, stop))
                for resident in residents
            ]

            def acknowledged(since: float = 0.0) -> list[Attempt]:
                return [a for a in attempts if a.status == 201 and a.sent >= since]

            await until("pledges before the stall", lambda: len(acknowledged()) >= WARM_UP, 60)
            os.kill(walsender, signal.SIGSTOP)
            stopped_walsender = True
            stalled = time.monotonic()
            await asyncio.sleep(STALL)
            killed = time.monotonic()
            kill_line = await pair.run("kill")
            stopped_walsender = False  # killed with the rest
            promote_line = await pair.run("promote")
            await until(
                "a pledge acknowledged by the promoted server",
                lambda: any(a.answered and a.answered > killed for a in acknowledged()),
                60,
            )
            back = min(a.answered for a in acknowledged() if a.answered and a.answered > killed)

            def each_client_pledged_again() -> bool:
                per_client = Counter(a.resident for a in acknowledged(since=back))
                return all(per_client[resident] >= AFTER for resident in residents)

            await until("every client to pledge again", each_client_pledged_again, 60)
            stop.set()
            await asyncio.gather(*clients)
            assert service.returncode is None, f"the service exited:\n{log.read_text()[-3000:]}"

            day = Day(attempts, round_id, stalled, killed, kill_line, promote_line, replication)
            await what_the_promoted_server_holds(day, pair, residents)
            for attempt in day.errored:
                answer = await http.post(
                    url,
                    json=body,
                    headers=bearer(attempt.resident, ["resident"], [BUURT]) | {"Idempotency-Key": attempt.key},
                )
                day.repeated.append((attempt, answer.status_code, answer.json().get("id")))
            day.pledges_after_repeating = len(await pledges_of(pair, round_id))
    finally:
        stop.set()
        for client in clients:
            client.cancel()
        if stopped_walsender:  # the test failed before the kill: let the primary stop cleanly
            with contextlib.suppress(ProcessLookupError):
                os.kill(walsender, signal.SIGCONT)
        if service.returncode is None:
            service.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(service.wait(), 30)
            except TimeoutError:
                service.kill()
                await service.wait()

    return day


async def pledges_of(pair: Pair, round_id: str) -> list[asyncpg.Record]:
    """The round's pledges on whichever server takes writes (through the service's own URL: the first server is
    gone), each with whether the journal books it."""
    promoted = await asyncpg.connect(pair.vouchers_url)
    try:
        assert await promoted.fetchval("SELECT inet_server_port()") == pair.standby_port
        assert await promoted.fetchval("SELECT NOT pg_is_in_recovery()")
        return await promoted.fetch(
            """SELECT p.id::text AS id, EXISTS (SELECT FROM journal_entries e
                                                WHERE e.kind = 'pledge' AND e.reference = p.id::text) AS booked
               FROM pledges p WHERE p.round_id = $1""",
            uuid.UUID(round_id),
        )
    finally:
        await promoted.close()


async def what_the_promoted_server_holds(day: Day, pair: Pair, residents: list[str]) -> None:
    day.on_server = {row["id"]: row["booked"] for row in await pledges_of(pair, day.round_id)}
    promoted = await asyncpg.connect(pair.vouchers_url)
    try:
        for row in await promoted.fetch(
            "SELECT principal, key, response FROM idempotency_keys WHERE principal = ANY($1) AND status_code = 201",
            residents,
        ):
            day.committed_keys[(row["principal"], row["key"])] = json.loads(row["response"])["id"]
    finally:
        await promoted.close()


async def _sync_state_is(connection: asyncpg.Connection, state: str) -> bool:
    return await connection.fetchval(
        "SELECT sync_state = $1 FROM pg_stat_replication WHERE application_name = 'standby'", state
    )


async def ledger_check(database_url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vouchers.ledger_check",
        env=os.environ | {"BK_DATABASE_URL": database_url},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, output.decode()


async def test_every_acknowledged_pledge_is_on_the_promoted_standby_and_pledging_resumes_there(
    pair, kafka_bootstrap, tmp_path
):
    started = time.monotonic()
    day = await voucher_day(pair, kafka_bootstrap, tmp_path, synchronous=True)

    # the standby was synchronous: the primary waited for it, and nothing was acknowledged while it could not
    assert day.replication == [("standby", "streaming", "quorum")]
    assert day.acknowledged_in_stall == []
    # so every client had its request held in the commit when the primary was killed
    assert len(day.in_flight_at_kill) == CLIENTS

    # every acknowledged pledge is on the promoted server, booked in its journal
    assert [a.key for a in day.lost] == []
    assert [a.pledge_id for a in day.acknowledged if not day.on_server[a.pledge_id]] == []
    # an errored pledge is there only if it committed (with its key); nothing else is there
    errored_but_committed = [a for a in day.errored if (a.resident, a.key) in day.committed_keys]
    assert set(day.on_server) == {a.pledge_id for a in day.acknowledged} | {
        day.committed_keys[(a.resident, a.key)] for a in errored_but_committed
    }
    # the database away is answered 503 (try again), never 500
    assert {a.status for a in day.errored} <= {503}, Counter(a.status for a in day.errored)
    # once the promoted server answered, every pledge succeeds
    back = day.back
    assert [a.status for a in day.attempts if a.sent > back.answered and a.status != 201] == []
    code, report = await ledger_check(pair.vouchers_url)
    assert code == 0 and " 0 problems" in report, report

    # an errored pledge repeated with its key: the pledge it made if it committed, else a new one; once either way
    assert {status for _, status, _ in day.repeated} <= {201}
    assert [
        attempt.key
        for attempt, _, pledge_id in day.repeated
        if (attempt.resident, attempt.key) in day.committed_keys
        and pledge_id != day.committed_keys[(attempt.resident, attempt.key)]
    ] == []
    assert day.pledges_after_repeating == len(day.acknowledged) + len(day.errored)

    print(
        f"\nfailover: {len(day.acknowledged)} pledges acknowledged, all {len(day.acknowledged)} on the promoted "
        f"server and booked; {len(day.in_flight_at_kill)} in flight at the kill; {len(day.errored)} answered "
        f"{dict(Counter(a.status for a in day.errored))}, of which {len(errored_but_committed)} had committed; "
        f"first 201 {back.answered - day.killed:.2f}s after the kill; {day.kill_line}; {day.promote_line}; "
        f"{time.monotonic() - started:.1f}s in all"
    )


async def test_an_asynchronous_standby_loses_what_was_acknowledged_in_the_stall(pair, kafka_bootstrap, tmp_path):
    """The same day with the standby made asynchronous: acknowledged pledges are missing after the failover (at
    least every one sent and acknowledged while the WAL sender was stopped), so the checks of the test above fail
    when the standby is not synchronous."""
    day = await voucher_day(pair, kafka_bootstrap, tmp_path, synchronous=False)
    assert day.replication == [("standby", "streaming", "async")]
    assert day.acknowledged_in_stall, "nothing was acknowledged while the WAL sender was stopped"
    # their commits came after the WAL sender stopped: they never left the primary (nor did the commits of pledges
    # sent just before the stall and acknowledged in it)
    assert {a.key for a in day.acknowledged_in_stall} <= {a.key for a in day.lost}
    print(
        f"\nasynchronous standby: {len(day.acknowledged_in_stall)} pledges acknowledged in the {STALL:.0f}s stall, "
        f"{len(day.lost)} of {len(day.acknowledged)} acknowledged pledges missing after the failover"
    )
