"""The relay process killed with SIGKILL in the middle of publishing: no event lost, none applied twice."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, topics
from buurtkracht_kit.consumer import EventConsumer
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics

from ..integration.kit_domain import MIGRATIONS, SOURCE, TEST_TOPIC, CounterIncremented, apply_increment, read_topic

pytestmark = pytest.mark.fault

EVENTS = 20_000
COUNTERS = 50
RELAY = [sys.executable, "-m", "buurtkracht_kit.cli", "relay"]


def relay_process(database: str, kafka: str, *extra: str) -> asyncio.subprocess.Process:
    env = os.environ | {"BK_DATABASE_URL": database, "BK_KAFKA_BOOTSTRAP_SERVERS": kafka, "BK_RELAY_BATCH_SIZE": "500"}
    return asyncio.create_subprocess_exec(*RELAY, *extra, env=env, cwd=Path(__file__).parents[2])


async def test_relay_killed_mid_batch_loses_nothing_and_the_consumer_applies_each_event_once(
    scratch_database, kafka_bootstrap
):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(TEST_TOPIC, 6, 3_600_000)])
    pool = await create_pool(scratch_database, 2, 5)
    prefix = f"kill-{uuid.uuid4().hex[:6]}"
    try:
        for start in range(0, EVENTS, 5_000):
            async with UnitOfWork(pool, SOURCE) as uow:
                uow.record_all(
                    CounterIncremented(counter_id=f"{prefix}-{i % COUNTERS}", amount=1, sequence=i)
                    for i in range(start, start + 5_000)
                )
                await uow.commit()

        async def published() -> int:
            return EVENTS - await pool.fetchval("SELECT count(*) FROM outbox")

        offsets = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
        await offsets.start()
        partitions = [TopicPartition(TEST_TOPIC, p) for p in offsets.partitions_for_topic(TEST_TOPIC) or range(6)]

        async def on_kafka() -> int:
            return sum((await offsets.end_offsets(partitions)).values())

        before = await on_kafka()
        relay = await relay_process(scratch_database, kafka_bootstrap)
        # Kill while a batch is acknowledged by Kafka but not yet marked published, if we catch one.
        for _ in range(3000):
            sent, marked = await on_kafka() - before, await published()
            if sent > marked > 0 or marked >= EVENTS // 2:
                break
            await asyncio.sleep(0.005)
        relay.send_signal(signal.SIGKILL)
        await relay.wait()
        at_kill, sent_at_kill = await published(), await on_kafka() - before
        await offsets.stop()
        assert 0 < at_kill < EVENTS, f"the relay was not killed mid-way ({at_kill} of {EVENTS} published)"

        restarted = await relay_process(scratch_database, kafka_bootstrap, "--once")
        assert await restarted.wait() == 0
        assert await published() == EVENTS

        records = [
            r
            for r in await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=EVENTS, timeout=120)
            if r.key.decode().startswith(prefix)
        ]
        event_ids = {dict(r.headers)["ce_id"] for r in records}
        assert len(event_ids) == EVENTS, "an event committed to the outbox never reached Kafka"

        consumer = EventConsumer(
            f"{prefix}-consumer", pool, SOURCE, ServiceMetrics("t"), {CounterIncremented: apply_increment}
        )
        outcomes = [await consumer.consume(record) for record in records]
        assert outcomes.count("processed") == EVENTS
        assert outcomes.count("duplicate") == len(records) - EVENTS
        assert await pool.fetchval("SELECT count(*) FROM applied WHERE counter_id LIKE $1", f"{prefix}-%") == EVENTS
        assert await pool.fetchval("SELECT sum(value) FROM counters WHERE id LIKE $1", f"{prefix}-%") == EVENTS
        print(
            f"killed with {at_kill}/{EVENTS} acknowledged and deleted and {sent_at_kill} on Kafka; "
            f"{len(records) - EVENTS} records delivered twice, each applied once"
        )
    finally:
        await pool.close()
