"""HTTP load from a compiled generator, and when the consuming services applied each event.

The load generator is vegeta (a Go module), so the requests are not made on the CPU being measured by a Python
event loop: it reads its targets as JSON lines (each request with its own bearer token and Idempotency-Key), paces
them at a fixed arrival rate (open loop) or sends as fast as a fixed number of workers allows (closed loop), and
writes every result (start, latency, status, body). `vegeta` installs it under `.local/bin` when it is missing.

An open loop measured from the moment each request was sent still hides queueing when the generator itself falls
behind (all its workers waiting): `Attack.results` therefore also gives each request's intended start (the attack's
start plus its sequence number over the rate), and the latency from then is what a resident arriving on schedule
would have seen.

`InboxWatch` and `OffsetWatch` note when a consumer applied an event: the moment its inbox row became visible
(committed; the row's own `processed_at` is its transaction's start, which with batched consumption is earlier than
the commit), or for an event the consumer ignores (no inbox row), the moment its consumer group's committed offset
passed the record.
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import csv
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from _stack import BOOTSTRAP, REPO, Poller, log
from aiokafka.admin import AIOKafkaAdminClient

VEGETA_MODULE = "github.com/tsenart/vegeta/v12"
VEGETA_VERSION = "v12.13.0"
VEGETA = REPO / ".local" / "bin" / "vegeta"
NO_TARGETS = "no targets to attack"  # the result of a worker that found the (lazily read) targets used up


def vegeta() -> Path:
    """The vegeta binary; `go install`ed under .local/bin first when it is not there (a fresh clone)."""
    if VEGETA.exists():
        return VEGETA
    go = shutil.which("go") or ("/usr/local/go/bin/go" if Path("/usr/local/go/bin/go").exists() else None)
    if go is None:
        raise SystemExit(f"the load generator needs Go to install it: `go install {VEGETA_MODULE}@{VEGETA_VERSION}`")
    log(f"installing vegeta {VEGETA_VERSION} into {VEGETA.parent} (go install)")
    VEGETA.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [go, "install", f"{VEGETA_MODULE}@{VEGETA_VERSION}"],
        env=os.environ | {"GOBIN": str(VEGETA.parent)},
        check=True,
    )
    return VEGETA


def target(url: str, headers: dict[str, str], body: object) -> str:
    """One request as a line of vegeta's JSON target format."""
    return json.dumps(
        {
            "method": "POST",
            "url": url,
            "header": {name: [value] for name, value in headers.items()} | {"Content-Type": ["application/json"]},
            "body": base64.b64encode(json.dumps(body).encode()).decode(),
        }
    )


@dataclass(frozen=True)
class Result:
    seq: int
    started: float  # wall clock (seconds since the epoch) when the request was sent
    latency: float  # seconds until the whole answer was read; until the error for those without one
    code: int  # 0: no answer (timeout, connection error)
    error: str
    body: bytes

    @property
    def answered(self) -> float:
        return self.started + self.latency


@dataclass
class Attack:
    """One run of `vegeta attack`; `rate` 0 is a closed loop of `workers` workers."""

    name: str
    targets: Path
    rate: float
    seconds: float
    workers: int
    max_workers: int
    timeout: float = 30.0
    wall: float = 0.0  # seconds the generator ran
    generator_cpu: float = 0.0  # CPU seconds of the generator (user + system), from the kernel when it exited
    results: list[Result] = field(default_factory=list)
    report: dict[str, object] = field(default_factory=dict)

    @property
    def output(self) -> Path:
        return self.targets.with_suffix(".bin")

    def command(self) -> list[str]:
        rate = f"{round(self.rate)}/1s"  # whole requests a second; 0 is a closed loop
        return [
            str(vegeta()),
            "attack",
            f"-name={self.name}",
            "-format=json",
            "-lazy",  # one pass over the targets: each line (each Idempotency-Key) sent once
            f"-targets={self.targets}",
            f"-output={self.output}",
            f"-rate={rate}",
            f"-duration={self.seconds:.3f}s",
            f"-workers={self.workers}",
            f"-max-workers={self.max_workers}",
            f"-timeout={self.timeout:.3f}s",
        ]

    async def run(self) -> None:
        """Attack, then decode the results; the generator's CPU is its own rusage (`wait4`), not a sample."""
        started = time.perf_counter()
        process = await asyncio.to_thread(
            subprocess.Popen, self.command(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            _, status, usage = await asyncio.to_thread(os.wait4, process.pid, 0)
        except BaseException:
            process.kill()
            raise
        process.returncode = os.waitstatus_to_exitcode(status)
        self.wall = time.perf_counter() - started
        self.generator_cpu = usage.ru_utime + usage.ru_stime
        if process.returncode != 0:
            assert process.stderr is not None
            raise RuntimeError(f"vegeta attack exited with {process.returncode}: {process.stderr.read().decode()}")
        self.report = json.loads(await _vegeta("report", "-type=json", str(self.output)))
        self.results = _decode(await _vegeta("encode", "-to=csv", str(self.output)))

    def sent(self) -> list[Result]:
        """The requests sent (not the workers' notes that the targets ran out), in sequence order."""
        return [result for result in self.results if result.error != NO_TARGETS]

    def intended(self) -> int:
        """How many requests the schedule called for (open loop), or were sent (closed loop)."""
        return round(self.rate * self.seconds) if self.rate else len(self.sent())


async def _vegeta(*args: str) -> str:
    done = await asyncio.to_thread(subprocess.run, [str(vegeta()), *args], capture_output=True, check=True)
    return done.stdout.decode()


def _decode(text: str) -> list[Result]:
    results = []
    for row in csv.reader(text.splitlines()):
        # timestamp ns, code, latency ns, bytes out, bytes in, error, body (base64), attack, seq, method, url, headers
        results.append(
            Result(
                seq=int(row[8]),
                started=int(row[0]) / 1e9,
                latency=int(row[2]) / 1e9,
                code=int(row[1]),
                error=row[5],
                body=base64.b64decode(row[6]),
            )
        )
    results.sort(key=lambda result: result.seq)
    return results


def write_targets(path: Path, lines: Iterable[str]) -> int:
    count = 0
    with path.open("w") as out:
        for line in lines:
            out.write(line + "\n")
            count += 1
    return count


class InboxWatch(Poller):
    """Notes when each inbox row of one consumer and event type became visible (committed), polling every
    `interval` seconds; a row's time is the wall clock when the poll that first saw it returned (at most `interval`
    after its commit, plus the poll's own round trip).

    Each poll reads only rows whose `processed_at` (their transaction's start) is not older than the oldest
    transaction that was open in that database just before: a row not yet visible belongs to a transaction open
    then or begun since."""

    def __init__(self, url: str, consumer: str, event_type: str, interval: float = 0.05) -> None:
        self.url, self.consumer, self.event_type, self.interval = url, consumer, event_type, interval
        self.seen: dict[str, float] = {}
        self.polls = 0

    async def open(self) -> None:
        self._conn = await asyncpg.connect(self.url)
        self._horizon = await self._conn.fetchval("SELECT clock_timestamp() - interval '1 hour'")

    async def close(self) -> None:
        await self._conn.close()

    async def poll(self) -> None:
        next_horizon = await self._conn.fetchval(
            """SELECT least(clock_timestamp(), min(xact_start)) - interval '50 milliseconds'
               FROM pg_stat_activity
               WHERE datname = current_database() AND xact_start IS NOT NULL AND pid <> pg_backend_pid()"""
        )
        rows = await self._conn.fetch(
            "SELECT message_id FROM inbox WHERE consumer = $1 AND event_type = $2 AND processed_at >= $3",
            self.consumer,
            self.event_type,
            self._horizon,
        )
        now = time.time()
        for row in rows:
            self.seen.setdefault(row["message_id"], now)
        self._horizon = next_horizon
        self.polls += 1


class OffsetWatch(Poller):
    """Polls the committed offsets of consumer groups on one topic every `interval` seconds; `passed` tells when a
    group's committed offset first went past a record (the wall clock of the poll that saw it)."""

    def __init__(self, groups: Sequence[str], topic: str, interval: float = 0.05) -> None:
        self.groups, self.topic, self.interval = list(groups), topic, interval
        self.history: dict[tuple[str, int], tuple[list[float], list[int]]] = {}  # (group, partition): times, offsets

    async def open(self) -> None:
        self._admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await self._admin.start()

    async def close(self) -> None:
        await self._admin.close()

    async def poll(self) -> None:
        for group in self.groups:
            committed = await self._admin.list_consumer_group_offsets(group)
            now = time.time()
            for tp, meta in committed.items():
                if tp.topic != self.topic or meta is None or meta.offset < 0:
                    continue
                times, offsets = self.history.setdefault((group, tp.partition), ([], []))
                if not offsets or meta.offset > offsets[-1]:
                    times.append(now)
                    offsets.append(meta.offset)

    def passed(self, group: str, partition: int, offset: int) -> float | None:
        times, offsets = self.history.get((group, partition), ([], []))
        index = bisect.bisect_right(offsets, offset)  # the first committed offset beyond the record
        return times[index] if index < len(times) else None

    def committed(self, group: str, partition: int) -> int:
        _, offsets = self.history.get((group, partition), ([], []))
        return offsets[-1] if offsets else -1
