"""Batches of one partition's records applied in one transaction, on the real broker and database: a batch
takes effect once and whole, a poisoned record in it is parked after its own attempts while the others take
effect once, a batch delivered again changes nothing, and the group's offsets never pass a record that has
not taken effect."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, dead_letter_topic
from buurtkracht_kit import migrations, topics
from buurtkracht_kit.consumer import EventConsumer
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics

from .kit_domain import MIGRATIONS, SOURCE, CounterIncremented, apply_increment, own_topic, read_topic
from .test_offset_commits import committed
from .test_outbox_and_consumer import consuming_service, wait_for

pytestmark = pytest.mark.integration

MAX_ATTEMPTS = 3


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    return scratch_database


@pytest.fixture(scope="module")
async def pool(database):
    pool = await create_pool(database, 2, 20)
    await pool.execute("CREATE TABLE applied_in (event_id uuid NOT NULL, transaction_id bigint NOT NULL)")
    yield pool
    await pool.close()


async def apply_and_echo(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
    """The counters' handler, noting its transaction, and recording an event of its own for the outbox."""
    await apply_increment(uow, event, envelope)
    await uow.connection.execute("INSERT INTO applied_in VALUES ($1, txid_current())", envelope.id)
    uow.record(CounterIncremented(counter_id=f"{event.counter_id}-echo", amount=event.amount))


def increments(counter: str, *amounts: int) -> list[Envelope]:
    return [Envelope.wrap(CounterIncremented(counter_id=counter, amount=amount), SOURCE) for amount in amounts]


async def on_one_partition(kafka: str, envelopes: list[Envelope]) -> list:
    """The records of `envelopes` (one key, so one partition), as read back from a topic of their own."""
    topic = own_topic(f"batch-{uuid.uuid4().hex[:8]}")
    await topics.ensure({"bootstrap_servers": kafka}, [TopicSpec(topic, 3, 3_600_000)])
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for envelope in envelopes:
            record = to_kafka(envelope)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    records = sorted(await read_topic(kafka, topic, at_least=len(envelopes)), key=lambda r: r.offset)
    assert len(records) == len(envelopes) and len({r.partition for r in records}) == 1
    return records


def consumer_for(pool, group: str, metrics: ServiceMetrics | None = None, handler=apply_and_echo) -> EventConsumer:
    return EventConsumer(
        group,
        pool,
        SOURCE,
        metrics or ServiceMetrics("batch"),
        {CounterIncremented: handler},
        max_attempts=MAX_ATTEMPTS,
        backoff_seconds=0.01,
    )


async def state(pool, group: str, counter: str) -> dict[str, object]:
    """Everything a consumed increment of `counter` can change."""
    async with pool.acquire() as conn:
        return {
            "value": await conn.fetchval("SELECT value FROM counters WHERE id = $1", counter),
            "times_applied": sorted(
                row["times"]
                for row in await conn.fetch(
                    "SELECT count(*) AS times FROM applied WHERE counter_id = $1 GROUP BY event_id", counter
                )
            ),
            "echoes": await conn.fetchval("SELECT count(*) FROM outbox WHERE aggregate_id = $1", f"{counter}-echo"),
            "inbox": await conn.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1", group),
            "failure_rows": await conn.fetchval("SELECT count(*) FROM consumer_failures WHERE consumer = $1", group),
            "dead_letters": await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE topic = $1", dead_letter_topic(group)
            ),
        }


async def test_a_batch_takes_effect_in_one_transaction_with_every_event_its_handlers_recorded(pool, kafka_bootstrap):
    group, counter = f"batch-{uuid.uuid4().hex[:8]}", f"batch-{uuid.uuid4()}"
    envelopes = increments(counter, 1, 2, 3, 4, 5, 6)
    records = await on_one_partition(kafka_bootstrap, envelopes)
    took_effect: list[int] = []

    async def note(record) -> None:
        took_effect.append(record.offset)

    outcomes = await consumer_for(pool, group).consume_batch(records, note)

    assert outcomes == ["processed"] * 6
    assert await state(pool, group, counter) == {
        "value": 21,
        "times_applied": [1] * 6,
        "echoes": 6,
        "inbox": 6,
        "failure_rows": 0,
        "dead_letters": 0,
    }
    transactions = await pool.fetch(
        "SELECT transaction_id, count(*) AS events FROM applied_in WHERE event_id = ANY($1::uuid[]) "
        "GROUP BY transaction_id ORDER BY count(*)",
        [envelope.id for envelope in envelopes],
    )
    # the first record alone (the partition had had nothing processed by this consumer), the rest together
    assert [row["events"] for row in transactions] == [1, 5]
    assert took_effect == [records[0].offset, records[-1].offset]


async def test_a_poisoned_record_in_a_batch_is_parked_after_its_attempts_and_the_others_take_effect_once(
    pool, kafka_bootstrap
):
    group, counter = f"batch-{uuid.uuid4().hex[:8]}", f"poisoned-{uuid.uuid4()}"
    first, second, poison, third = increments(counter, 1, 10, -1, 100)
    records = await on_one_partition(kafka_bootstrap, [first, second, poison, third, second])
    metrics = ServiceMetrics("poisoned")

    outcomes = await consumer_for(pool, group, metrics).consume_batch(records)

    assert outcomes == ["processed", "processed", "dead_lettered", "processed", "duplicate"]
    assert await state(pool, group, counter) == {
        "value": 111,
        "times_applied": [1] * 3,
        "echoes": 3,
        "inbox": 4,
        "failure_rows": 0,
        "dead_letters": 1,
    }
    parked = await pool.fetchrow(
        "SELECT verbatim_value, verbatim_headers FROM outbox WHERE topic = $1", dead_letter_topic(group)
    )
    headers = {name: bytes.fromhex(value) for name, value in parked["verbatim_headers"] if value is not None}
    assert headers["ce_id"] == str(poison.id).encode() and parked["verbatim_value"] == records[2].value
    assert headers["dlq_attempts"] == str(MAX_ATTEMPTS).encode() and b"PoisonError" in headers["dlq_error"]
    failures = metrics.registry.get_sample_value(
        "buurtkracht_consumer_handler_failures_total", {"consumer": group, "event_type": CounterIncremented.event_type}
    )
    assert failures == MAX_ATTEMPTS, "the batch that failed is no attempt of its own"
    assert (
        await pool.fetchval("SELECT outcome FROM inbox WHERE consumer = $1 AND message_id = $2", group, str(poison.id))
        == "dead_lettered"
    )


async def test_an_event_the_database_driver_refuses_to_encode_is_poison_not_an_outage(pool, kafka_bootstrap):
    """asyncpg's own DataError (a value it cannot send, such as an integer beyond 64 bits) is an InterfaceError;
    it is the event's fault, so it is counted and parked like any failing handler, never retried for ever."""

    async def beyond_64_bits(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
        await uow.connection.execute("SELECT $1::bigint", event.amount * 10**19)
        await apply_and_echo(uow, event, envelope)

    group, counter = f"batch-{uuid.uuid4().hex[:8]}", f"beyond-{uuid.uuid4()}"
    (record,) = await on_one_partition(kafka_bootstrap, increments(counter, 5))

    outcome = await asyncio.wait_for(consumer_for(pool, group, handler=beyond_64_bits).consume(record), timeout=30)

    assert outcome == "dead_lettered"
    assert (await state(pool, group, counter))["dead_letters"] == 1


async def test_a_batch_delivered_again_changes_nothing(pool, kafka_bootstrap):
    group, counter = f"batch-{uuid.uuid4().hex[:8]}", f"again-{uuid.uuid4()}"
    records = await on_one_partition(kafka_bootstrap, increments(counter, 1, 2, -1, 4, 8))
    consumer = consumer_for(pool, group)
    await consumer.consume_batch(records)
    before = await state(pool, group, counter)
    assert before["value"] == 15 and before["dead_letters"] == 1

    again = await consumer.consume_batch(records)  # the same process, its partition confirmed: as one batch
    restarted = await consumer_for(pool, group).consume_batch(records)  # a new process: one by one, then a batch

    assert again == restarted == ["duplicate"] * 5
    assert await state(pool, group, counter) == before


async def test_offsets_never_pass_a_record_that_has_not_taken_effect(database, pool, kafka_bootstrap, tmp_path):
    """Through the service's wiring: a record whose handler meets an outage (not counted as an attempt) holds its
    partition; the group commits up to it, never past it, and the records behind it wait until it took effect."""
    blocked = asyncio.Event()
    blocked.set()

    async def apply_unless_away(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
        if event.amount == 7 and blocked.is_set():
            raise ConnectionRefusedError("the database of a dependency is away")
        await apply_increment(uow, event, envelope)

    group = f"batch-offsets-{uuid.uuid4().hex[:8]}"
    service, topic, _ = await consuming_service(
        database,
        kafka_bootstrap,
        group,
        tmp_path,
        apply_unless_away,
        consumer_commit_interval_seconds=0.1,
        consumer_retry_backoff_seconds=0.01,
    )
    counter = f"held-{uuid.uuid4()}"
    envelopes = increments(counter, 1, 2, 7, 40, 80)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = []
        for envelope in envelopes:
            record = to_kafka(envelope)
            sent.append(await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers))
    finally:
        await producer.stop()
    partition = TopicPartition(topic, sent[0].partition)
    held_at, end = sent[2].offset, sent[-1].offset + 1

    async with service._lifespan(service.app):

        async def value() -> int | None:
            return await pool.fetchval("SELECT value FROM counters WHERE id = $1", counter)

        async def committed_up_to_the_held_record() -> bool:
            return (await committed(kafka_bootstrap, group)).get(partition) == held_at

        assert await wait_for(committed_up_to_the_held_record, timeout=30)
        for _ in range(10):  # several rounds of redelivery and rewinding: never past it, nothing behind it
            assert (await committed(kafka_bootstrap, group)).get(partition, 0) <= held_at
            assert await value() == 3
            await asyncio.sleep(0.3)
        blocked.clear()

        async def all_applied() -> bool:
            return await value() == 130

        assert await wait_for(all_applied, timeout=30)

        async def all_committed() -> bool:
            return (await committed(kafka_bootstrap, group)).get(partition) == end

        assert await wait_for(all_committed, timeout=15)
    counts = await pool.fetch("SELECT count(*) AS times FROM applied WHERE counter_id = $1 GROUP BY event_id", counter)
    assert sorted(row["times"] for row in counts) == [1] * 5
    assert await pool.fetchval("SELECT count(*) FROM consumer_failures WHERE consumer = $1", group) == 0
    assert (
        await pool.fetchval("SELECT count(*) FROM inbox WHERE consumer = $1 AND outcome = 'dead_lettered'", group) == 0
    )
