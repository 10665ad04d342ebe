"""Wiring of one service process: settings, migrations, pool, HTTP app, Kafka consumer, outbox relay.

Start-up order: migrations, pool, relay, consumer. Shutdown (SIGTERM, via uvicorn): stop taking HTTP
requests and finish those in flight, stop consuming after the batch in hand, publish what is
committed in the outbox, close the pool.

A process runs what its role says besides HTTP (`process_role`): `all` (the default, and what `make run`
and the tests use) runs the consumer, the background loops and the outbox relay; `api` runs none of them;
`worker` the consumer and background loops; `relay` the relay. The consumer and background loops must
run once per replica, never once per HTTP process: `serve` gives them to exactly one process when it
starts several (`http_workers`, `relay_process`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
import uvicorn
import uvloop
from fastapi import APIRouter, FastAPI
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from faststream.kafka.prometheus import KafkaPrometheusMiddleware
from faststream.middlewares import AckPolicy
from faststream.specification import AsyncAPI

from buurtkracht_contracts import Event
from buurtkracht_contracts.topics import dead_letter_topic

from . import housekeeping, http, logs, metrics, migrations, problems, tracing
from .auth import TokenVerifier
from .consumer import EventConsumer, Handler
from .db import UnitOfWork, create_pool
from .metrics import ServiceMetrics
from .offsets import OffsetCommitter
from .outbox import OutboxRelay, kafka_producer
from .problems import Problem
from .settings import KitSettings

logger = logging.getLogger(__name__)

BATCH_POLL_MS = 25  # see `_subscribe`


@dataclass
class ServiceSpec:
    """What makes a service itself; everything else is the kit's."""

    name: str
    title: str
    version: str
    migrations: Path
    routers: Sequence[APIRouter] = ()
    subscribed_topics: Sequence[str] = ()
    handlers: Mapping[type[Event], Handler] = field(default_factory=dict)
    problems: Mapping[type[Exception], Callable[[Any], Problem]] = field(default_factory=dict)
    background: Sequence[Callable[[Service], Awaitable[None]]] = ()
    sweeps: Callable[[Any], Sequence[housekeeping.Sweep]] = lambda settings: ()  # the service's old rows to delete
    publishes: Sequence[type[Event]] = ()
    description: str = ""
    unit_of_work: type[UnitOfWork] = UnitOfWork  # the service's own, with its repositories
    larger_bodies: Mapping[str, int] = field(default_factory=dict)  # path pattern -> most bytes (bulk uploads)


class Service:
    def __init__(self, spec: ServiceSpec, settings: KitSettings) -> None:
        self.spec, self.settings = spec, settings
        self.metrics = ServiceMetrics(spec.name)
        self.broker = KafkaBroker(
            settings.kafka_bootstrap_list,
            middlewares=[KafkaPrometheusMiddleware(registry=self.metrics.registry, app_name=spec.name)],
            logger=logging.getLogger(f"{spec.name}.kafka"),
            **_broker_security(settings),
        )
        self.pool: asyncpg.Pool | None = None
        self.consumer: EventConsumer | None = None
        self.relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.offsets = OffsetCommitter(settings.consumer_commit_interval_seconds)
        if spec.subscribed_topics:
            self._subscribe()
        for model in spec.publishes:  # declared for the AsyncAPI document; the outbox relay does the publishing
            self.broker.publisher(
                model.topic,
                title=f"{model.topic}:{model.__name__}",
                schema=model,
                description=f"CloudEvents type `{model.event_type}`; message key: the {model.aggregate_type} id. "
                + (model.__doc__ or "").strip(),
            )
        self.app = FastAPI(
            title=spec.title, version=spec.version, description=spec.description, lifespan=self._lifespan
        )
        # before `http.install`, which wraps the middleware stack the instrumentation builds
        if tracing.configure(spec.name, settings.otlp_endpoint, settings.trace_sample_ratio, sql=settings.trace_sql):
            tracing.instrument_app(self.app)
        self._readiness: dict[str, http.ReadinessCheck] = {
            "database": self._check_database,
            "kafka": self._check_kafka,
            "workers": self._check_tasks,
        }
        http.install(
            self.app,
            self.metrics,
            self._readiness,
            consuming=self.consuming if spec.subscribed_topics else None,
            process=lambda: {"role": self.settings.process_role, "pid": os.getpid()},
            max_body_bytes=settings.http_max_body_bytes,
            larger_bodies=spec.larger_bodies,
        )
        self.app.add_api_route("/asyncapi.json", self.asyncapi, include_in_schema=False)
        for error_type, to_problem in spec.problems.items():
            problems.answer(self.app, error_type, to_problem)
        for router in spec.routers:
            self.app.include_router(router)

    def unit_of_work(self) -> UnitOfWork:
        """A new unit of work on this service's database, recording events from this service."""
        assert self.pool is not None, "the service has not started"
        return self.spec.unit_of_work(
            self.pool, self.settings.event_source, acquire_timeout=self.settings.db_acquire_timeout_seconds
        )

    def _subscribe(self) -> None:
        handled = ", ".join(f"`{model.event_type}`" for model in self.spec.handlers)

        async def tolerant_batch_parser(records: Any, original_parser: Callable[[Any], Awaitable[Any]]) -> Any:
            """FastStream's parser, made to accept header values that are null or not UTF-8 (Kafka allows both): the
            kit's consumer still gets each record of the batch exactly as it came (`raw_message`), and parks it."""
            try:
                return await original_parser(records)
            except (AttributeError, UnicodeDecodeError):
                readable = tuple(
                    dataclasses.replace(record, headers=[(name, v) for name, v in record.headers if _utf8(v)])
                    for record in records
                )
                message = await original_parser(readable)
                message.raw_message = records
                return message

        @self.broker.subscriber(
            *self.spec.subscribed_topics,
            group_id=self.settings.service_name,
            title=f"{','.join(self.spec.subscribed_topics)}:{self.settings.service_name}",
            description=f"Consumer group `{self.settings.service_name}` (binary-mode CloudEvents); acts on "
            f"{handled}, ignores other types; dead letters go to {dead_letter_topic(self.settings.service_name)}",
            ack_policy=AckPolicy.MANUAL,  # rewound on error by `apply_batch`, committed by `self.offsets` later
            listener=self.offsets,
            no_reply=True,  # a record's reply_to header never makes this service publish anything
            auto_offset_reset=self.settings.consumer_start,
            batch=True,  # each partition's share of a poll is applied in one transaction
            max_records=self.settings.consumer_batch_size,
            # an empty poll waits this long, and then FastStream sleeps as long again: short, so a record that
            # arrives at an idle consumer is not held back (an idle poll reads the local fetch buffer: cheap)
            batch_timeout_ms=BATCH_POLL_MS,
            parser=tolerant_batch_parser,
            decoder=_raw_body,
        )
        async def on_batch(message: KafkaMessage) -> None:
            assert self.consumer is not None
            await self.offsets.apply_batch(message.raw_message, message.consumer, self.consumer.consume_batch)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        settings = self.settings
        if settings.migrate_on_start:
            await asyncio.to_thread(
                migrations.apply_when_reachable,
                settings.database_url,
                self.spec.migrations,
                wait_seconds=settings.database_wait_seconds,
            )
        self.pool = await create_pool(
            settings.database_url,
            settings.db_pool_min_size,
            settings.db_pool_max_size,
            command_timeout=settings.db_command_timeout_seconds,
            wait_seconds=settings.database_wait_seconds,
        )
        app.state.pool = self.pool
        app.state.settings = settings
        app.state.metrics = self.metrics
        app.state.token_verifier = TokenVerifier(
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            public_key_file=settings.jwt_public_key_file,
            jwks_url=settings.jwt_jwks_url,
        )
        relay_task = None
        if settings.relay_enabled and settings.process_role in ("all", "relay"):
            self.relay = OutboxRelay(
                self.pool,
                lambda: kafka_producer(settings.kafka_client_options()),
                self.metrics,
                batch_size=settings.relay_batch_size,
                poll_interval=settings.relay_poll_interval_seconds,
            )
            relay_task = self._supervised(self.relay.run(), "outbox-relay")
        consumes = settings.process_role in ("all", "worker")
        if not consumes:  # neither a consumer nor background loops here: another process of the service runs them
            self._readiness.pop("kafka", None)
        self.consumer = EventConsumer(
            settings.service_name,
            self.pool,
            settings.event_source,
            self.metrics,
            self.spec.handlers,
            max_attempts=settings.consumer_max_attempts,
            backoff_seconds=settings.consumer_retry_backoff_seconds,
            handler_timeout_seconds=settings.consumer_handler_timeout_seconds,
            unit_of_work=self.unit_of_work,
        )
        background: list[asyncio.Task[None]] = []
        if consumes:
            tasks = (housekeeping.run_housekeeping, *self.spec.background)
            background = [self._supervised(task(self), task.__name__) for task in tasks]
            background.append(self._supervised(self.offsets.run(), "offset-commits"))
            background.append(asyncio.ensure_future(self._start_consumer()))  # ends once started: not supervised
        # what startup made (modules, the app, the pool) lives as long as the process: out of the collector's
        # sight, so that a full collection walks only what requests and records left behind (startup's garbage
        # collected first, or it would stay)
        gc.collect()
        gc.freeze()
        logger.info("%s serving (%s)", self.spec.name, settings.process_role)
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            if background:  # bounded: a task that does not end when cancelled must not keep the process alive
                _, stuck = await asyncio.wait(background, timeout=settings.shutdown_grace_seconds)
                for task in stuck:
                    logger.error("%s did not end when cancelled; stopping without it", task.get_name())
            if consumes:
                await self.offsets.stopping()
                await self.broker.stop()
            if self.relay and relay_task:
                self.relay.stop()
                try:
                    await asyncio.wait_for(relay_task, settings.shutdown_grace_seconds)
                except Exception:  # a timeout included: what is not published stays in the outbox
                    logger.warning("outbox relay did not finish cleanly; the rest is published on restart")
                await self.relay.close()
            await self.pool.close()
            tracing.flush()
            logger.info("%s stopped", self.spec.name)

    async def _start_consumer(self) -> None:
        """Start the Kafka consumer once the bus answers. A process started while Kafka is away serves HTTP
        (commands only need the database: their events wait in the outbox) and retries, 1 s after the first
        attempt and at most 30 s apart, instead of exiting into a crash loop whose growing backoff would outlast the
        outage; readiness names Kafka until then."""
        delay = 1.0
        while True:
            try:
                await self.broker.start()
            except Exception as error:  # aiokafka's connection errors and timeouts, as many types as causes
                logger.warning("Kafka does not answer (%s); starting the consumer again in %.0f s", error, delay)
                with contextlib.suppress(Exception):
                    await self.broker.stop()  # what the failed start opened
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30.0)
            else:
                logger.info("%s consuming", self.spec.name)
                return

    def _supervised(self, work: Awaitable[None], name: str) -> asyncio.Task[None]:
        """A task whose unexpected end is logged at once and makes the service not ready."""
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._tasks.append(task)

        def ended(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                logger.error("%s stopped with an error", name, exc_info=done.exception())

        task.add_done_callback(ended)
        return task

    async def _check_tasks(self) -> None:
        stopped = [task.get_name() for task in self._tasks if task.done()]
        if stopped:
            raise RuntimeError(f"stopped: {', '.join(stopped)}")

    def asyncapi(self) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of what this service consumes and publishes, from the contract models."""
        document = AsyncAPI(
            self.broker,
            title=self.spec.title,
            version=self.spec.version,
            description=self.spec.description,
            schema_version="3.0.0",
        )
        return document.to_specification().to_jsonable()

    async def consuming(self) -> bool:
        """Whether the consumer holds partitions and knows where it reads from in each (its starting offsets
        are resolved: with `consumer_start=latest`, records produced after this are consumed)."""
        found = False
        for subscriber in self.broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            for partition in consumer.assignment() if consumer is not None else ():
                await consumer.position(partition)
                found = True
        return found

    def assigned_partitions(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this replica consumes now; empty before the group assigned any."""
        assigned: set[tuple[str, int]] = set()
        for subscriber in self.broker.subscribers:
            consumer = getattr(subscriber, "consumer", None)
            if consumer is not None:
                assigned |= {(tp.topic, tp.partition) for tp in consumer.assignment()}
        return assigned

    async def _check_database(self) -> None:
        assert self.pool is not None
        await self.pool.fetchval("SELECT 1")

    async def _check_kafka(self) -> None:
        if not await self.broker.ping(timeout=2.0):
            raise ConnectionError("Kafka does not answer")


def _utf8(value: bytes | None) -> bool:
    if value is None:
        return False
    try:
        value.decode()
    except UnicodeDecodeError:
        return False
    return True


def _raw_body(message: object) -> object:
    """Leave the record's bytes alone: the kit's consumer reads CloudEvents itself."""
    return getattr(message, "body", message)


def _broker_security(settings: KitSettings) -> dict[str, object]:
    """FastStream's security object for the broker: SASL (PLAIN or SCRAM) and/or TLS, as configured."""
    from faststream.security import BaseSecurity, SASLPlaintext, SASLScram256, SASLScram512

    context = settings.kafka_ssl_context()
    if settings.kafka_sasl_mechanism:
        kinds = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}
        return {
            "security": kinds[settings.kafka_sasl_mechanism](
                settings.kafka_sasl_username,
                settings.kafka_sasl_password,
                ssl_context=context,
                use_ssl=context is not None,
            )
        }
    return {"security": BaseSecurity(ssl_context=context, use_ssl=True)} if context is not None else {}


def serve(service: Service) -> None:
    """Run the service until SIGTERM or SIGINT, then shut down gracefully.

    One process (`process_role` says what it runs besides HTTP), unless `http_workers` is above 1 or
    `relay_process` is set: then this process supervises the others (`_supervise`)."""
    settings = service.settings
    logs.configure(service.spec.name, settings.log_level, settings.log_format)
    if settings.http_workers > 1 or settings.relay_process:
        sys.exit(_supervise(service))
    uvicorn.run(service.app, **_uvicorn_options(settings))


def _uvicorn_options(settings: KitSettings) -> dict[str, Any]:
    return {
        "host": settings.http_host,
        "port": settings.http_port,
        "loop": "uvloop",
        "http": "httptools",
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": int(settings.shutdown_grace_seconds),
        "timeout_keep_alive": 75,  # longer than a load balancer's idle timeout, so it never reuses a closed connection
    }


STARTUP_FAILURE = 3  # uvicorn's exit status when the application could not start


def _supervise(service: Service) -> int:
    """Several processes of one service in one container: the returned exit status is the container's.

    This process applies the migrations once, empties the shared metrics directory, then forks
    `http_workers` HTTP processes, each with its own event loop and pool, all on the one port (SO_REUSEPORT:
    the kernel spreads connections over them). The first also runs what must run once per replica: the
    Kafka consumer and the background loops (role `worker`), and the outbox relay unless `relay_process`
    gives the relay a process of its own (role `relay`, without HTTP). The rest only answer HTTP (role
    `api`). A process that ends while the service runs is started again, after a second; one that could
    not start at all stops the service (as a single process would). SIGTERM or SIGINT is passed on to
    every process, and this one ends when they all have: each drains as a single process does."""
    settings = service.settings
    if settings.process_role != "all":
        raise SystemExit("BK_HTTP_WORKERS above 1 and BK_RELAY_PROCESS assign the roles: leave BK_PROCESS_ROLE at all")
    if metrics.multiprocess_dir() is None:
        raise SystemExit(
            "several processes share one /metrics: set PROMETHEUS_MULTIPROC_DIR to a directory only this service "
            "writes, before the service starts"
        )
    if settings.migrate_on_start:
        migrations.apply_when_reachable(
            settings.database_url, service.spec.migrations, wait_seconds=settings.database_wait_seconds
        )
    metrics.clear_multiprocess_dir()
    roles = ["worker" if settings.relay_process else "all"] + ["api"] * (settings.http_workers - 1)
    if settings.relay_process:
        roles.append("relay")
    children: dict[int, str] = {}
    stopping = False
    status = 0

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def start(role: str) -> None:
        signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)  # no stop between the fork and the bookkeeping
        try:
            pid = os.fork()
            if pid == 0:
                _run_child(service, role)
            children[pid] = role
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)

    for stop_signal in _STOP_SIGNALS:
        signal.signal(stop_signal, stop)
    for role in roles:
        start(role)
    logger.info("%s: %s", service.spec.name, ", ".join(f"{role} (pid {pid})" for pid, role in children.items()))
    while children:
        try:
            pid, wait_status = os.wait()
        except ChildProcessError:
            break
        role = children.pop(pid, "")
        code = os.waitstatus_to_exitcode(wait_status)
        metrics.forget_process(pid)
        if stopping or not role:
            continue
        if code == STARTUP_FAILURE:
            logger.error("%s process %d could not start; stopping the service", role, pid)
            status = STARTUP_FAILURE
            stop()
            continue
        logger.error("%s process %d ended with %s; starting another", role, pid, code)
        time.sleep(1.0)
        if not stopping:
            start(role)
    logger.info("%s stopped", service.spec.name)
    return status


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def _run_child(service: Service, role: str) -> NoReturn:
    """The body of one forked process; it never returns into the supervisor's code."""
    code = 1
    try:
        for stop_signal in _STOP_SIGNALS:
            signal.signal(stop_signal, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
        service.settings = settings = service.settings.model_copy(
            update={"process_role": role, "migrate_on_start": False}
        )
        if role == "relay":
            uvloop.run(_relay_until_stopped(service))
            code = 0
        else:
            try:
                listening = _shared_port(settings)
            except OSError:
                code = STARTUP_FAILURE  # the port is another program's: as a single process, the service stops
                raise
            server = uvicorn.Server(uvicorn.Config(service.app, **_uvicorn_options(settings)))
            server.run(sockets=[listening])
            code = 0 if server.started else STARTUP_FAILURE
    except BaseException:
        logger.exception("%s process %d failed", role, os.getpid())
    finally:
        os._exit(code)


def _shared_port(settings: KitSettings) -> socket.socket:
    """A listening socket of its own on the service's port, which every HTTP process of the service binds."""
    family = socket.AF_INET6 if ":" in settings.http_host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((settings.http_host, settings.http_port))
    return sock


async def _relay_until_stopped(service: Service) -> None:
    """The outbox relay as a process of its own, until SIGTERM or SIGINT; an error in it ends the process
    (the supervisor starts another), where an HTTP process would report it in `/readyz`."""
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for stop_signal in _STOP_SIGNALS:
        loop.add_signal_handler(stop_signal, stopped.set)
    async with service._lifespan(service.app):
        while not stopped.is_set():
            await service._check_tasks()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), 1.0)
