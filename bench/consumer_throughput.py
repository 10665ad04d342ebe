"""How fast one service instance's consumer applies a backlog of events on one partition set.

Puts N events (default 20,000) of one small event type on a topic of its own (6 partitions), then starts a
kit service whose consumer group has never read it, with a handler that books each event in the service's
database (one row), and times until every event has its inbox row: the whole path of a consumed event
(FastStream, the idempotent consumer's transaction with the inbox row, the offset commit). With
`--ignored`, the events are of a type the service does not handle: only the reading and committing.
The consumer runs in this process, so the CPU it used while consuming (`consumer_cores`, and the events
applied per CPU second of it) is reported beside PostgreSQL's and everyone else's on the shared machine.
Needs the local stack (`make stack-up`). Logs a summary on stderr; the last line on stdout is the run's figures as
one JSON object (`ok` false, exit status 1, when not every event was consumed before the timeout).

    .venv/bin/python bench/consumer_throughput.py --events 20000
    .venv/bin/python bench/consumer_throughput.py --events 20000 --ignored
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import ClassVar

from _stack import BOOTSTRAP, cpu_cores, cpu_seconds, key_pair, log, report, scratch_database
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope, Event, register
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, dead_letter_topic
from buurtkracht_kit import topics
from buurtkracht_kit.db import UnitOfWork
from buurtkracht_kit.runtime import Service, ServiceSpec
from buurtkracht_kit.settings import KitSettings

SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-bench"


@register
class VisitBenchmarked(Event):
    event_type: ClassVar[str] = "nl.buurtkracht.bench.visit-benchmarked.v1"
    aggregate_type: ClassVar[str] = "visitor"
    topic: ClassVar[str] = "bench.consumer"

    visitor_id: str
    amount_cents: int

    def subject(self) -> str:
        return self.visitor_id


@register
class VisitIgnored(VisitBenchmarked):
    event_type: ClassVar[str] = "nl.buurtkracht.bench.visit-ignored.v1"


async def book(uow: UnitOfWork, event: VisitBenchmarked, envelope: Envelope) -> None:
    await uow.connection.execute(
        "INSERT INTO visits (visitor_id, amount_cents) VALUES ($1, $2)", event.visitor_id, event.amount_cents
    )


async def produce(topic: str, events: int, model: type[VisitBenchmarked]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=5)
    await producer.start()
    try:
        deliveries = []
        for n in range(events):
            record = to_kafka(Envelope.wrap(model(visitor_id=f"v-{n % 1000}", amount_cents=n), SOURCE))
            deliveries.append(await producer.send(topic, record.value, key=record.key, headers=record.headers))
        await asyncio.gather(*deliveries)
    finally:
        await producer.stop()


async def main(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    run = uuid.uuid4().hex[:8]
    group, topic = f"bench-consumer-{run}", f"bench.consumer.{run}"
    await topics.ensure(
        {"bootstrap_servers": BOOTSTRAP},
        [TopicSpec(topic, 6, 3_600_000), TopicSpec(dead_letter_topic(group), 1, 3_600_000)],
    )
    model = VisitIgnored if args.ignored else VisitBenchmarked
    log(f"producing {args.events} events to {topic}")
    await produce(topic, args.events, model)
    with tempfile.TemporaryDirectory() as scratch:
        migrations, public_key = Path(scratch) / "migrations", Path(scratch) / "public.pem"
        migrations.mkdir()
        (migrations / "0001_visits.sql").write_text(
            "CREATE TABLE visits (visitor_id text NOT NULL, amount_cents bigint NOT NULL);\n"
        )
        public_key.write_text(key_pair()[1])
        async with scratch_database("bench_consumer") as database:
            service = Service(
                ServiceSpec(
                    name=group,
                    title="consumer benchmark",
                    version="0",
                    migrations=migrations,
                    subscribed_topics=[topic],
                    handlers={VisitBenchmarked: book},
                ),
                KitSettings(
                    service_name=group,
                    database_url=database,
                    kafka_bootstrap_servers=BOOTSTRAP,
                    jwt_public_key_file=public_key,
                ),
            )
            counter = service.metrics.inbox_events
            started = None
            database_name = database.rpartition("/")[2]
            cpu_before: dict[str, float] = {}
            async with service._lifespan(service.app):
                assert service.pool is not None
                deadline = time.monotonic() + args.timeout
                while time.monotonic() < deadline:
                    done = sum(
                        sample.value
                        for metric in counter.collect()
                        for sample in metric.samples
                        if sample.name.endswith("_total")
                    )
                    if started is None and done:
                        started = time.perf_counter()
                        cpu_before = cpu_seconds(database=database_name)
                    if done >= args.events:
                        break
                    await asyncio.sleep(0.05)
                elapsed = time.perf_counter() - (started or time.perf_counter())
                cores = cpu_cores(cpu_before, cpu_seconds(database=database_name), elapsed) if cpu_before else {}
                booked = await service.pool.fetchval("SELECT count(*) FROM visits")
                inbox = await service.pool.fetchval("SELECT count(*) FROM inbox")
    kind = "ignored (no handler)" if args.ignored else "applied (inbox row + one booked row each)"
    rate = done / elapsed if elapsed else float("nan")  # nothing consumed at all: no rate
    consumer_cores = cores.get("bench", float("nan"))
    per_cpu_second = done / (consumer_cores * elapsed) if consumer_cores and elapsed else float("nan")
    shares = ", ".join(f"{name} {used:.2f}" for name, used in cores.items())
    summary = (
        f"consumer: {int(done)} events {kind} in {elapsed:.2f} s = {rate:,.0f} events/s "
        f"(one service instance, 6 partitions; {inbox} inbox rows, {booked} booked); "
        f"cores used: {shares} (consumer = bench); {per_cpu_second:,.0f} events per consumer CPU second"
    )
    ok = done >= args.events
    if not ok:
        log(f"only {int(done)} of {args.events} events consumed before the timeout")
    return summary, {
        "events": int(done),
        "seconds": elapsed,
        "events_per_s": rate,
        "events_per_consumer_cpu_s": per_cpu_second,
        "consumer_cores": consumer_cores,
        "postgres_cores": cores.get("postgres", float("nan")),
        "others_cores": cores.get("others", float("nan")),
        "ignored": args.ignored,
        "partitions": 6,
        "inbox_rows": inbox,
        "booked_rows": booked,
        "ok": ok,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--ignored", action="store_true", help="events of a type the service does not handle")
    parser.add_argument("--timeout", type=float, default=600.0)
    summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(0 if figures["ok"] else 1)
