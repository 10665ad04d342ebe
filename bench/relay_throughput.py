"""How fast the outbox relay drains a committed backlog into Kafka.

Fills a scratch database's outbox with N committed events (default 100,000, in units of work of
5,000) of A aggregates (default 10,000 wallets; `--aggregates 1` is one busy aggregate, as a round on a
voucher day), then times `OutboxRelay.drain()` and checks that Kafka's end offsets grew by exactly N.
Needs the local stack (`make stack-up`). Logs a summary on stderr; the last line on stdout is the run's figures as
one JSON object (`ok` false, exit status 1, when not all N events were published and reached Kafka).

    .venv/bin/python bench/relay_throughput.py --events 100000 --batch-size 1000
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
from _stack import log, report
from aiokafka import AIOKafkaConsumer, TopicPartition

from buurtkracht_contracts import Event, register
from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, topics
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer

BENCH_TOPIC = "bench.relay"
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
    consumer = AIOKafkaConsumer(BENCH_TOPIC, bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(BENCH_TOPIC, p) for p in consumer.partitions_for_topic(BENCH_TOPIC) or []]
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
        await topics.ensure({"bootstrap_servers": bootstrap}, [TopicSpec(BENCH_TOPIC, 6, 3_600_000)])
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
        started = time.perf_counter()
        published = await relay.drain()
        drained = time.perf_counter() - started
        await relay.close()
        on_kafka = await end_offsets(bootstrap) - before
        await pool.close()
        summary = (
            f"relay drain: {published} events in {drained:.2f} s = {published / drained:,.0f} events/s "
            f"(batch {args.batch_size}, {args.aggregates:,} aggregates; {on_kafka} new records on Kafka; "
            f"outbox filled in {filled:.2f} s = {args.events / filled:,.0f} events/s)"
        )
        ok = published == args.events and on_kafka == args.events
        if not ok:
            log(f"expected {args.events} published and on Kafka")
        return summary, {
            "events": published,
            "seconds": drained,
            "events_per_s": published / drained,
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


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--aggregates", type=int, default=10_000, help="how many aggregates the events belong to")
    summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(0 if figures["ok"] else 1)
