"""How fast the outbox relay drains a committed backlog into Kafka.

Fills a scratch database's outbox with N committed events (default 100,000, in units of work of
5,000) of A aggregates (default 10,000 wallets; `--aggregates 1` is one busy aggregate, as a round on a
voucher day), then times `OutboxRelay.drain()` and checks that Kafka's end offsets grew by exactly N.
Needs the local stack (`make stack-up`). Logs a summary on stderr; the last line on stdout is the run's figures as
one JSON object (`ok` false, exit status 1, when not all N events were published and reached Kafka).
Besides events/s (wall clock, which other work on a shared machine slows down) it reports the relay's own
CPU time per event and the cores each party used while draining (`others`: whatever else ran meanwhile).

    .venv/bin/python bench/relay_throughput.py --events 100000 --batch-size 5000
    .venv/bin/python bench/relay_throughput.py --events 100000 --aggregates 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from typing import ClassVar

import asyncpg
from _stack import cpu_cores, cpu_seconds, log, report
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from buurtkracht_contracts import Event, register
from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, topics
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer
from buurtkracht_kit.settings import KitSettings

BENCH_TOPIC = "bench.relay"  # a run publishes to a topic of its own, `bench.relay.<database>`, deleted afterwards
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-bench"


@register
class PledgeBenchmarked(Event):
    """An event the size of a real pledge event."""

    event_type: ClassVar[str] = "nl.buurtkracht.bench.pledge-benchmarked.v1"
    aggregate_type: ClassVar[str] = "wallet"
    topic: ClassVar[str] = BENCH_TOPIC

    pledge_id: uuid.UUID
    round_id: uuid.UUID
    wallet_id: uuid.UUID
    initiative_id: uuid.UUID
    resident_id: str
    area_code: str
    amount_cents: int
    wallet_balance_cents: int

    def subject(self) -> str:
        return str(self.wallet_id)


async def end_offsets(bootstrap: str) -> int:
    topic = PledgeBenchmarked.topic
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []]
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


async def main(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    admin_url = os.environ.get("BK_PG_ADMIN_URL", "postgresql://postgres:postgres@127.0.0.1:15432/postgres")
    bootstrap = os.environ.get("BK_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:19092")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    database_url = admin_url.rpartition("/")[0] + "/" + name
    admin = await asyncpg.connect(admin_url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        await asyncio.to_thread(migrations.apply, database_url)
        PledgeBenchmarked.topic = f"{BENCH_TOPIC}.{name}"  # records of other runs at the same time are not counted
        await topics.ensure({"bootstrap_servers": bootstrap}, [TopicSpec(PledgeBenchmarked.topic, 6, 3_600_000)])
        pool = await create_pool(database_url, 2, 4)
        round_id = uuid.uuid4()
        wallets = [uuid.uuid4() for _ in range(args.aggregates)]
        started = time.perf_counter()
        for start in range(0, args.events, 5_000):
            async with UnitOfWork(pool, SOURCE) as uow:
                uow.record_all(
                    PledgeBenchmarked(
                        pledge_id=uuid.uuid4(),
                        round_id=round_id,
                        wallet_id=wallets[i % len(wallets)],
                        initiative_id=round_id,
                        resident_id=f"r-{i}",
                        area_code="BU03630001",
                        amount_cents=500,
                        wallet_balance_cents=2_000,
                    )
                    for i in range(start, min(start + 5_000, args.events))
                )
                await uow.commit()
        filled = time.perf_counter() - started

        before = await end_offsets(bootstrap)
        relay = OutboxRelay(
            pool,
            lambda: kafka_producer({"bootstrap_servers": bootstrap}),
            ServiceMetrics("bench"),
            batch_size=args.batch_size,
        )
        cpu_before, relay_cpu_before = cpu_seconds(database=name), time.process_time()
        started = time.perf_counter()
        published = await relay.drain()
        drained = time.perf_counter() - started
        relay_cpu = time.process_time() - relay_cpu_before
        cores = cpu_cores(cpu_before, cpu_seconds(database=name), drained)
        await relay.close()
        on_kafka = await end_offsets(bootstrap) - before
        await pool.close()
        summary = (
            f"relay drain: {published} events in {drained:.2f} s = {published / drained:,.0f} events/s "
            f"(batch {args.batch_size}, {args.aggregates:,} aggregates; {on_kafka} new records on Kafka; "
            f"outbox filled in {filled:.2f} s = {args.events / filled:,.0f} events/s); relay CPU {relay_cpu:.2f} s = "
            f"{published / relay_cpu:,.0f} events per CPU second; cores while draining: "
            + ", ".join(f"{party} {used:.2f}" for party, used in cores.items())
        )
        ok = published == args.events and on_kafka == args.events
        if not ok:
            log(f"expected {args.events} published and on Kafka")
        return summary, {
            "events": published,
            "seconds": drained,
            "events_per_s": published / drained,
            "relay_cpu_seconds": relay_cpu,
            "events_per_relay_cpu_s": published / relay_cpu,
            "cores": cores,
            "batch_size": args.batch_size,
            "aggregates": args.aggregates,
            "on_kafka": on_kafka,
            "fill_seconds": filled,
            "fill_events_per_s": args.events / filled,
            "ok": ok,
        }
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
        if PledgeBenchmarked.topic != BENCH_TOPIC:
            kafka_admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
            await kafka_admin.start()
            try:
                await kafka_admin.delete_topics([PledgeBenchmarked.topic])
            finally:
                await kafka_admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument(
        "--batch-size",
        type=int,
        default=KitSettings.model_fields["relay_batch_size"].default,
        help="the setting's default",
    )
    parser.add_argument("--aggregates", type=int, default=10_000, help="how many aggregates the events belong to")
    summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(0 if figures["ok"] else 1)
