"""The consumer group's offsets on the real broker: committed in the background once records took effect,
and all of them when the service stops, so a restart starts behind the last applied record."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_kit import migrations

from .kit_domain import MIGRATIONS, SOURCE, CounterIncremented, apply_increment, committed
from .test_outbox_and_consumer import consuming_service, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    return scratch_database


async def publish(kafka: str, topic: str, counters: list[str]) -> dict[TopicPartition, int]:
    """One increment per counter; returns each partition's end offset."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    ends: dict[TopicPartition, int] = {}
    try:
        for counter in counters:
            record = to_kafka(Envelope.wrap(CounterIncremented(counter_id=counter, amount=1), SOURCE))
            sent = await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
            ends[TopicPartition(topic, sent.partition)] = sent.offset + 1
    finally:
        await producer.stop()
    return ends


async def applied(pool, counters: list[str]) -> int:
    return await pool.fetchval("SELECT count(*) FROM counters WHERE id = ANY($1::text[]) AND value = 1", counters)


@pytest.mark.parametrize("interval", [0.2, 3600.0], ids=["in the background", "when the service stops"])
async def test_offsets_are_committed_once_records_took_effect(database, kafka_bootstrap, tmp_path, interval):
    group = f"kit-offsets-{uuid.uuid4().hex[:8]}"
    service, topic, _ = await consuming_service(
        database, kafka_bootstrap, group, tmp_path, apply_increment, consumer_commit_interval_seconds=interval
    )
    counters = [f"offsets-{uuid.uuid4()}" for _ in range(30)]
    ends = await publish(kafka_bootstrap, topic, counters)
    async with service._lifespan(service.app):
        assert service.pool is not None
        pool = service.pool

        async def all_applied() -> bool:
            return await applied(pool, counters) == len(counters)

        assert await wait_for(all_applied)
        if interval < 1:

            async def all_committed() -> bool:
                return await committed(kafka_bootstrap, group) == ends

            assert await wait_for(all_committed, timeout=15)
        else:
            assert await committed(kafka_bootstrap, group) == {}, "nothing is committed before the interval"
    assert await committed(kafka_bootstrap, group) == ends
