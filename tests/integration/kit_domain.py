"""A small domain to exercise the kit with: counters, incremented by events on a topic of this test run."""

from __future__ import annotations

import asyncio
import os
import uuid
from pathlib import Path
from typing import ClassVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from buurtkracht_contracts import Envelope, Event, register
from buurtkracht_kit.db import UnitOfWork

RUN_ID = os.environ.get("KIT_TEST_RUN_ID") or uuid.uuid4().hex[:8]  # a child process joins its parent's run
TEST_TOPIC = f"kit-test.{RUN_ID}.events"
MIGRATIONS = Path(__file__).parent / "migrations"
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-kit-test"


def own_topic(name: str) -> str:
    """A topic for one test's consumer group alone: a new group reads from the start, so a topic shared
    with other tests would hand it their messages (and their poison) too."""
    return f"kit-test.{RUN_ID}.{name}"


@register
class CounterIncremented(Event):
    event_type: ClassVar[str] = "nl.buurtkracht.kit-test.counter-incremented.v1"
    aggregate_type: ClassVar[str] = "counter"
    topic: ClassVar[str] = TEST_TOPIC

    counter_id: str
    amount: int
    sequence: int = 0

    def subject(self) -> str:
        return self.counter_id


class PoisonError(RuntimeError):
    pass


async def apply_increment(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
    """The handler under test: a negative amount is a poison message that always fails."""
    if event.amount < 0:
        raise PoisonError(f"cannot apply a negative amount to {event.counter_id}")
    await uow.connection.execute(
        "INSERT INTO counters (id, value) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET value = counters.value + $2",
        event.counter_id,
        event.amount,
    )
    await uow.connection.execute(
        "INSERT INTO applied (event_id, counter_id, sequence) VALUES ($1, $2, $3)",
        envelope.id,
        event.counter_id,
        event.sequence,
    )


async def increment(pool, counter_id: str, amount: int = 1) -> Envelope:
    """A command: bump the counter's sequence under its row lock and record the event, in one unit of work."""
    async with UnitOfWork(pool, SOURCE) as uow:
        sequence = await uow.connection.fetchval(
            """
            INSERT INTO counters (id, sequence) VALUES ($1, 1)
            ON CONFLICT (id) DO UPDATE SET sequence = counters.sequence + 1 RETURNING sequence
            """,
            counter_id,
        )
        [envelope] = uow.record(CounterIncremented(counter_id=counter_id, amount=amount, sequence=sequence))
        await uow.commit()
    return envelope


async def read_topic(bootstrap: str, topic: str, *, at_least: int, timeout: float = 60.0) -> list:
    """Every record of `topic` from the beginning, once at least `at_least` arrived (or the timeout passed)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()  # without a group, the consumer is assigned every partition of the topic
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        assert partitions, f"topic {topic} does not exist"
        records: list = []
        deadline = asyncio.get_running_loop().time() + timeout
        while asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for partition_records in batch.values():
                records += partition_records
            if len(records) >= at_least:
                end = await consumer.end_offsets(partitions)
                positions = [await consumer.position(tp) for tp in partitions]
                if all(position >= end[tp] for position, tp in zip(positions, partitions, strict=True)):
                    break
        return records
    finally:
        await consumer.stop()


async def committed(kafka: str, group: str, topic: str | None = None) -> dict[TopicPartition, int]:
    """The offsets `group` has committed (on `topic` only, when given), as Kafka's admin API reports them."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and topic in (None, tp.topic)}
