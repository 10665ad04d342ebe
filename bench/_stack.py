"""Shared pieces of the benchmarks that run services as their own processes against the local stack.

Scratch databases, a throw-away token-signing key pair, the services as child processes (`ServiceProcess`, the one
place that decides how a service is launched; the vouchers service optionally profiled), Kafka end offsets and a
counter of one aggregate's records, the CPU each party uses (the machine is shared), what the database's backends
wait on, latency percentiles, pgbench, and `report`, the end of every benchmark's output: its summary on stderr, its
figures as one JSON object on stdout's last line.

Run as a script, it is the vouchers service without its Kafka consumer:

    python bench/_stack.py serve-vouchers        # configured by BK_* variables, like `python -m vouchers`

`python -m vouchers` consumes `initiatives.events` (as the consumer group `BK_SERVICE_NAME`), so whatever other
people's tests put on that topic meanwhile (poison records included) would land in the benchmark's database and
outbox, and a shared group name would take partitions away from other vouchers processes on the stack. The
benchmarks make initiatives known directly in the database, so this entry point builds the very same service
(routes, database work, outbox relay, background tasks) with the spec named after `BK_SERVICE_NAME` and subscribed
to nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self
from urllib.parse import urlparse

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

ADMIN_URL = os.environ.get("BK_PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:15432/postgres")
BOOTSTRAP = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
PGBENCH = os.environ.get("BK_PGBENCH", "/usr/lib/postgresql/15/bin/pgbench")
ISSUER, AUDIENCE = "https://login.buurtkracht.local", "buurtkracht"
REPO = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    """Progress and summaries, on stderr; stdout holds only the figures, as JSON (`report`)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- PostgreSQL --------------------------------------------------------------------------------


def database_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


@contextlib.asynccontextmanager
async def scratch_database(prefix: str = "bench") -> AsyncIterator[str]:
    """A fresh, empty database on the stack's PostgreSQL, dropped afterwards (even when connected)."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def plain_table_seconds(pool, rows: int) -> float:
    """Seconds to write `rows` rows into a plain table with a primary key in one statement: the database's yardstick
    for benchmarks that write about that many rows."""
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE bench_yardstick (id bigint PRIMARY KEY, owner text, items text[])")
        try:
            started = time.perf_counter()
            await conn.execute(
                """INSERT INTO bench_yardstick SELECT i, 'r-' || i, ARRAY[gen_random_uuid()::text, 'klussen']
                   FROM generate_series(1, $1::bigint) AS i""",
                rows,
                timeout=600,
            )
            return time.perf_counter() - started
        finally:
            await conn.execute("DROP TABLE bench_yardstick")


def _pg_env(url: str) -> dict[str, str]:
    parsed = urlparse(url)
    return os.environ | {
        "PGHOST": parsed.hostname or "127.0.0.1",
        "PGPORT": str(parsed.port or 5432),
        "PGUSER": parsed.username or "postgres",
        "PGPASSWORD": parsed.password or "",
        "PGDATABASE": parsed.path.lstrip("/"),
    }


@dataclass(frozen=True)
class PgbenchResult:
    tps: float
    latency_ms: float
    transactions: int
    clients: int
    seconds: int


async def pgbench(scale: int = 10, clients: int = 16, threads: int = 2, seconds: int = 30) -> PgbenchResult:
    """The built-in simple-update script (`-N`) on a scratch pgbench database of the same PostgreSQL."""
    async with scratch_database("bench_pgbench") as url:
        env = _pg_env(url)
        await asyncio.to_thread(
            subprocess.run, [PGBENCH, "-i", "-q", "-s", str(scale)], env=env, check=True, capture_output=True
        )
        done = await asyncio.to_thread(
            subprocess.run,
            [PGBENCH, "-N", "-c", str(clients), "-j", str(threads), "-T", str(seconds)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    latency = re.search(r"latency average = ([\d.]+) ms", done.stdout)
    processed = re.search(r"number of transactions actually processed: (\d+)", done.stdout)
    if not (tps and latency and processed):
        raise RuntimeError(f"unexpected pgbench output:\n{done.stdout}\n{done.stderr}")
    return PgbenchResult(float(tps[1]), float(latency[1]), int(processed[1]), clients, seconds)


# -- tokens ------------------------------------------------------------------------------------


def key_pair() -> tuple[str, str]:
    """A throw-away RS256 key pair (private PEM, public PEM), like the identity provider's."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


def signing_key(private_pem: str) -> object:
    """The parsed private key. `mint` takes a PEM string and PyJWT parses it on every call, which with
    cryptography's RSA key validation costs ~50 ms a token; PyJWT takes the key object as well (~0.5 ms)."""
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(private_pem.encode(), None, unsafe_skip_rsa_key_validation=True)


def token(key: object, subject: str, roles: list[str], areas: list[str], ttl_seconds: int = 4 * 3600) -> str:
    """A bearer token as the identity provider would issue it; `key` from `signing_key` (or a PEM string)."""
    from buurtkracht_kit.auth import mint

    return mint(
        key,  # type: ignore[arg-type]
        issuer=ISSUER,
        audience=AUDIENCE,
        subject=subject,
        roles=roles,
        areas=areas,
        ttl_seconds=ttl_seconds,
    )


def _mint_chunk(args: tuple[str, list[tuple[str, str]], list[str]]) -> list[str]:
    private_pem, subjects_and_areas, roles = args
    key = signing_key(private_pem)
    return [token(key, subject, roles, [area]) for subject, area in subjects_and_areas]


def mint_many(private_pem: str, subjects_and_areas: Sequence[tuple[str, str]], roles: list[str]) -> list[str]:
    """One token per (subject, area), signed on every core."""
    workers = os.cpu_count() or 1
    size = max(1, len(subjects_and_areas) // workers + 1)
    chunks = [
        (private_pem, list(subjects_and_areas[i : i + size]), roles) for i in range(0, len(subjects_and_areas), size)
    ]
    with ProcessPoolExecutor(workers) as pool:
        return [minted for chunk in pool.map(_mint_chunk, chunks) for minted in chunk]


# -- the service as a process ----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def workers_variable() -> str | None:
    """The environment variable that sets how many worker processes a service runs (`BK_` and the kit setting whose
    name ends in `workers`), or None while the kit has no such setting."""
    from buurtkracht_kit.settings import KitSettings

    names = [name for name in KitSettings.model_fields if name.endswith("workers")]
    return f"BK_{names[0].upper()}" if len(names) == 1 else None


@dataclass
class ServiceProcess:
    """A service in a child process, configured by BK_* variables; stopped with SIGTERM. Every benchmark launches its
    services through this class, so how a service is started (its command, its variables, its worker count) is
    decided here only.

    `module` is the service (`vouchers`, `initiatives`, `notifications`). `launch` "isolated" runs the vouchers
    service from this file's entry point (subscribed to nothing, see the module docstring); "module" runs
    `python -m <module>` verbatim, whose consumer group is `service_name` (give each run its own name and
    `BK_CONSUMER_START=latest`, as here, so it reads only what is produced after it started). With `consuming`, the
    service counts as started only once its consumer holds partitions and knows where it reads from."""

    database_url: str
    public_pem: str
    pool_max_size: int = 20
    launch: str = "isolated"  # "isolated": this file's entry point (no consumer); "module": `python -m <module>`
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    service_name: str = ""
    module: str = "vouchers"
    workers: int | None = None  # worker processes of the service; None leaves the service's own default
    consuming: bool = False

    def __post_init__(self) -> None:
        if not self.service_name:
            self.service_name = f"{self.module}-bench-{uuid.uuid4().hex[:8]}"
        if self.launch == "isolated" and self.module != "vouchers":
            raise ValueError("only the vouchers service has an isolated entry point")
        self._dir = tempfile.TemporaryDirectory(prefix="bk-bench-")
        self.log_path = Path(self._dir.name) / "service.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    def environment(self, key_file: Path) -> dict[str, str]:
        env = os.environ | {
            "BK_DATABASE_URL": self.database_url,
            "BK_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
            "BK_HTTP_PORT": str(self.port),
            "BK_JWT_PUBLIC_KEY_FILE": str(key_file),
            "BK_SERVICE_NAME": self.service_name,  # also the consumer group of `python -m <module>`
            "BK_LOG_LEVEL": "WARNING",
            "BK_DB_POOL_MAX_SIZE": str(self.pool_max_size),
            # a new consumer group starts at the end of its topics instead of replaying their history
            "BK_CONSUMER_START": "latest",
        }
        if self.module == "vouchers":
            env["BK_LEDGER_CHECK_SECONDS"] = "86400"  # the benchmark checks the ledger itself, after the load
        if self.workers is not None:
            variable = workers_variable()
            if variable is None:
                raise RuntimeError("the kit has no worker-count setting (a KitSettings field ending in `workers`)")
            env[variable] = str(self.workers)
            if self.workers > 1:  # the HTTP processes' metrics are added up through files in this directory
                metrics = Path(self._dir.name) / "prometheus"
                metrics.mkdir(exist_ok=True)
                env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics)
        return env | self.extra_env

    def command(self) -> list[str]:
        if self.launch == "module":
            return [sys.executable, "-m", self.module]
        return [sys.executable, str(REPO / "bench" / "_stack.py"), "serve-vouchers"]

    async def start(self, timeout: float = 60.0) -> float:
        """Start the process and wait until `/readyz` answers 200 (and, with `consuming`, says it consumes); returns
        the seconds it took."""
        key_file = Path(self._dir.name) / "jwt-public.pem"
        key_file.write_text(self.public_pem)
        env = self.environment(key_file)
        started = time.perf_counter()
        with self.log_path.open("wb") as out:
            self._process = await asyncio.to_thread(
                subprocess.Popen, self.command(), env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO
            )
        # a new connection for every probe: with several HTTP processes on the port, the kernel spreads connections
        # over them, and only one of them runs the consumer
        limits = httpx.Limits(max_keepalive_connections=0)
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0, limits=limits) as client:
            while time.perf_counter() - started < timeout:
                if self._process.poll() is not None:
                    raise RuntimeError(
                        f"{self.service_name} exited with {self._process.returncode}:\n{self.log_tail()}"
                    )
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = await client.get("/readyz")
                    if answer.status_code == 200 and (not self.consuming or answer.json().get("consuming") is True):
                        return time.perf_counter() - started
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.service_name} was not ready within {timeout} s:\n{self.log_tail()}")

    async def stop(self, timeout: float = 60.0) -> tuple[int | None, float]:
        """SIGTERM and wait (the relay publishes what is committed first); returns (exit code, seconds).

        uvicorn (0.29 and later) re-raises the signal it caught once it has shut down gracefully, so a clean
        stop ends with -SIGTERM; `clean_exit` accepts both."""
        if self._process is None or self._process.poll() is not None:
            return (self._process.returncode if self._process else None), 0.0
        started = time.perf_counter()
        self._process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.to_thread(self._process.wait, timeout)
        except subprocess.TimeoutExpired:
            self._process.kill()
            code = await asyncio.to_thread(self._process.wait)
            log(f"the service did not stop within {timeout} s after SIGTERM; killed it")
        return code, time.perf_counter() - started

    @staticmethod
    def clean_exit(code: int | None) -> bool:
        return code in (0, -signal.SIGTERM)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def cleanup(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait()
        self._dir.cleanup()


# -- Kafka -----------------------------------------------------------------------------------


async def end_offsets(topic: str) -> dict[int, int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=BOOTSTRAP, enable_auto_commit=False)
    await consumer.start()  # fetches the subscribed topic's metadata
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist; run `make topics`")
        return {tp.partition: offset for tp, offset in (await consumer.end_offsets(partitions)).items()}
    finally:
        await consumer.stop()


class KeyCounter:
    """Reads a topic from given offsets and counts the records with one key (one aggregate's events), noting when
    each arrived; the topic is shared, so other records are skipped rather than assumed absent."""

    def __init__(self, topic: str, start: dict[int, int], key: str, keep: bool = False) -> None:
        self.topic, self.start, self.key, self.keep = topic, start, key.encode(), keep
        self.arrivals: list[float] = []
        self.records: list[object] = []  # with `keep`: the aggregate's records themselves (aiokafka ConsumerRecord)
        self.types: dict[str, int] = {}
        self.other_records = 0
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def __aenter__(self) -> KeyCounter:
        self._task = asyncio.create_task(self._run())
        await self._ready.wait()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    @property
    def count(self) -> int:
        return len(self.arrivals)

    async def _run(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, fetch_max_bytes=64 * 1024 * 1024
        )
        await consumer.start()
        try:
            partitions = [TopicPartition(self.topic, p) for p in self.start]
            consumer.assign(partitions)
            for tp in partitions:
                consumer.seek(tp, self.start[tp.partition])
            self._ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=50, max_records=10_000)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        if record.key == self.key:
                            self.arrivals.append(now)
                            if self.keep:
                                self.records.append(record)
                            kind = dict(record.headers).get("ce_type", b"?").decode().rsplit(".", 2)[-2]
                            self.types[kind] = self.types.get(kind, 0) + 1
                        else:
                            self.other_records += 1
        finally:
            self._ready.set()
            await consumer.stop()

    async def wait_for(self, expected: int, timeout: float) -> float | None:
        """The perf_counter time the `expected`-th record arrived, or None after `timeout` seconds."""
        deadline = time.perf_counter() + timeout
        while self.count < expected:
            if time.perf_counter() > deadline or (self._task is not None and self._task.done()):
                return None
            await asyncio.sleep(0.02)
        return self.arrivals[expected - 1]


async def wait_outbox_empty(
    pool: asyncpg.Pool, timeout: float, topic: str = "vouchers.events", interval: float = 0.05
) -> float | None:
    """The perf_counter time the outbox first held no row for `topic`, or None after `timeout` seconds (rows for
    other topics, such as a dead letter of a record from someone else's test, are not waited for)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox WHERE topic = $1)", topic):
            return time.perf_counter()
        await asyncio.sleep(interval)
    return None


# -- where the CPU goes ------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")


def _busy_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (every core, /proc/stat)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / _TICK


def cpu_seconds(
    service_pid: int | None = None,
    database: str | Collection[str] | None = None,
    parties: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """CPU seconds used so far by this process, the service process, PostgreSQL (the backends of `database`, one name
    or several, and the server's own processes), Kafka, each of `parties` (name: pid), and everything else on the
    machine ("others": other databases' backends, other people's test runs...), from /proc.

    The service and each party count with their descendants (the worker processes of a service that runs several).
    A process that ended in between is no longer seen: its CPU shows under "others"."""
    databases = {database} if isinstance(database, str) else set(database) if database is not None else None
    roots = {"service": service_pid} if service_pid is not None else {}
    roots |= dict(parties or {})
    used = {"bench": 0.0, "service": 0.0, "postgres": 0.0, "kafka": 0.0} | {name: 0.0 for name in parties or {}}
    processes: dict[int, tuple[int, str, str, float]] = {}  # pid: (parent pid, comm, command line, CPU seconds)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                text = stat.read()
            with open(f"/proc/{entry.name}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        comm = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        seconds = (int(fields[11]) + int(fields[12])) / _TICK  # utime + stime
        processes[int(entry.name)] = (int(fields[1]), comm, command, seconds)
    party_of = {pid: name for name, pid in roots.items()}

    def party(pid: int) -> str | None:
        seen = 0
        while pid > 1 and seen < 64:
            if pid in party_of:
                return party_of[pid]
            pid, seen = processes[pid][0] if pid in processes else 0, seen + 1
        return None

    for pid, (_, comm, command, seconds) in processes.items():
        if pid == os.getpid():
            used["bench"] += seconds
        elif (name := party(pid)) is not None:
            used[name] += seconds
        elif comm == "postgres" and command.startswith("postgres: "):
            words = command.split()
            # "postgres: USER DATABASE HOST(PORT) STATE" for a backend, "postgres: walwriter" and such otherwise
            backend = len(words) >= 4 and "(" in words[3]
            if not backend or (databases is not None and words[2] in databases):
                used["postgres"] += seconds
        elif comm == "postgres" and "-D" in command:
            used["postgres"] += seconds  # the postmaster
        elif comm == "java":
            used["kafka"] += seconds
    used["others"] = _busy_seconds() - sum(used.values())
    return used


def cpu_cores(before: dict[str, float], after: dict[str, float], wall: float) -> dict[str, float]:
    """Cores used by each party over `wall` seconds, e.g. `{"bench": 0.2, "service": 0.95, ..., "others": 0.4}`.

    A backend or process that ended in between is counted under "others"."""
    return {name: (after[name] - before[name]) / wall for name in before}


def cpu_share(before: dict[str, float], after: dict[str, float], wall: float) -> str:
    """`cpu_cores` as text, e.g. `service 0.95, postgres 0.61, ..., others 0.40 (of 2)`."""
    shares = ", ".join(f"{name} {cores:.2f}" for name, cores in cpu_cores(before, after, wall).items())
    return f"{shares} (of {os.cpu_count()})"


class Poller:
    """Calls `poll()` every `interval` seconds while its `async with` block runs, between `open()` and `close()`."""

    interval: float
    _task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Before the first poll."""

    async def close(self) -> None:
        """After the last poll."""

    async def poll(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.open()
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self.close()

    async def _run(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self.interval)


class WaitSampler(Poller):
    """Samples what the database's active backends wait on (pg_stat_activity), a few times a second; backends in a
    transaction waiting for its client's next statement (holding its locks meanwhile) count as `idle in transaction`."""

    def __init__(self, pool: asyncpg.Pool, database: str, interval: float = 0.1) -> None:
        self.pool, self.database, self.interval = pool, database, interval
        self.samples = 0
        self.counts: dict[str, int] = {}

    async def poll(self) -> None:
        rows = await self.pool.fetch(
            """SELECT CASE WHEN state = 'active' THEN coalesce(wait_event_type || ':' || wait_event, 'CPU')
                      ELSE 'idle in transaction' END AS waiting, count(*) AS n
               FROM pg_stat_activity
               WHERE datname = $1 AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()
               GROUP BY 1""",
            self.database,
        )
        self.samples += 1
        for row in rows:
            self.counts[row["waiting"]] = self.counts.get(row["waiting"], 0) + row["n"]

    def averages(self) -> dict[str, float]:
        """Average number of active backends per wait event, most first, e.g. `{"CPU": 3.1, "Lock:tuple": 2.0}`."""
        ranked = sorted(self.counts.items(), key=lambda item: -item[1])
        return {name: count / max(self.samples, 1) for name, count in ranked}

    def summary(self, top: int = 6) -> str:
        """The `top` averages as text, e.g. `CPU 3.1, Lock:tuple 2.0`."""
        ranked = list(self.averages().items())[:top]
        return ", ".join(f"{name} {average:.1f}" for name, average in ranked) or "idle"


# -- figures ---------------------------------------------------------------------------------


def _figure(value: object) -> object:
    """A figure for JSON: floats to 6 significant digits, NaN and infinities as null, containers throughout."""
    if isinstance(value, float):
        return float(f"{value:.6g}") if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _figure(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_figure(item) for item in value]
    return value


def report(summary: str, figures: dict[str, object]) -> None:
    """The end of a benchmark's output: the human-readable summary on stderr, then the figures as one JSON object on
    the last line of stdout (`ok` in them says whether the run passed its checks, as its exit status does)."""
    log(summary)
    print(json.dumps(_figure(figures), sort_keys=True), flush=True)


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), round(fraction * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]


# -- entry point: the vouchers service with a consumer group of its own ------------------------


class _StackSampler:
    """A poor man's sampling profiler: the main thread's stack every few milliseconds, wall clock (so an idle event
    loop shows as `select`), written as collapsed stacks (`frame;frame;... count`, flamegraph.pl input).
    The sampler needs the GIL, so it over-samples the points where the main thread releases it (socket writes,
    `select`): good for seeing which code path waits, not for CPU shares (use a `.pstats` file for those)."""

    def __init__(self, path: str, interval: float = 0.002) -> None:
        import threading

        self.path, self.interval = path, interval
        self.counts: dict[str, int] = {}
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="stack-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            frame = sys._current_frames().get(self._main)
            stack = []
            while frame is not None:
                code = frame.f_code
                stack.append(f"{Path(code.co_filename).name}:{code.co_name}")
                frame = frame.f_back
            line = ";".join(reversed(stack))
            self.counts[line] = self.counts.get(line, 0) + 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        with open(self.path, "w") as out:
            for line, count in sorted(self.counts.items(), key=lambda item: -item[1]):
                out.write(f"{line} {count}\n")


def _serve_vouchers() -> None:
    import dataclasses

    from vouchers.app import SPEC
    from vouchers.settings import VouchersSettings

    from buurtkracht_kit.runtime import Service, serve

    settings = VouchersSettings()
    service = Service(dataclasses.replace(SPEC, name=settings.service_name, subscribed_topics=()), settings)
    service.app.state.service = service  # as vouchers.app.create does
    profile = os.environ.get("BENCH_PROFILE")
    if not profile:
        serve(service)
        return
    # uvicorn re-raises SIGTERM after a graceful shutdown; ignore that one, so the profile gets written
    signal.signal(signal.SIGTERM, lambda *_: None)
    if profile.endswith(".pstats"):  # cProfile on the main thread's CPU time (not wall time)
        import cProfile
        import time as clock

        profiler = cProfile.Profile(clock.thread_time)
        profiler.enable()
        try:
            serve(service)
        finally:
            profiler.disable()
            profiler.dump_stats(profile)
        return
    sampler = _StackSampler(profile)
    sampler.start()
    try:
        serve(service)
    finally:
        sampler.stop()


if __name__ == "__main__":
    if sys.argv[1:] != ["serve-vouchers"]:
        raise SystemExit("usage: python bench/_stack.py serve-vouchers")
    _serve_vouchers()
