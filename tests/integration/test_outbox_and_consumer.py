"""The kit on the real stack: outbox and relay into Kafka, the idempotent consumer, dead letters, order."""

from __future__ import annotations

import asyncio
import collections
import random
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, dead_letter_topic
from buurtkracht_kit import migrations, outbox, topics
from buurtkracht_kit.consumer import EventConsumer
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer
from buurtkracht_kit.runtime import Service, ServiceSpec
from buurtkracht_kit.settings import KitSettings

from ..keys import PUBLIC
from .kit_domain import (
    MIGRATIONS,
    SOURCE,
    TEST_TOPIC,
    CounterIncremented,
    apply_increment,
    increment,
    own_topic,
    read_topic,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    return scratch_database


@pytest.fixture(scope="module")
async def pool(database):
    pool = await create_pool(database, 2, 20)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
async def kafka(kafka_bootstrap):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(TEST_TOPIC, 6, 3_600_000)])
    return kafka_bootstrap


@pytest.fixture
async def relay(pool, kafka):
    relay = OutboxRelay(
        pool,
        lambda: kafka_producer({"bootstrap_servers": kafka}),
        ServiceMetrics("test"),
        batch_size=200,
        poll_interval=0.1,
    )
    yield relay
    await relay.close()


async def test_committed_events_reach_kafka_keyed_by_aggregate_with_cloudevents_headers(pool, kafka, relay):
    counter = f"c-{uuid.uuid4()}"
    envelope = await increment(pool, counter, 5)
    assert await relay.drain() >= 1
    records = [r for r in await read_topic(kafka, TEST_TOPIC, at_least=1) if r.key == counter.encode()]
    assert len(records) == 1
    headers = dict(records[0].headers)
    assert headers["ce_id"] == str(envelope.id).encode()
    assert headers["ce_type"] == CounterIncremented.event_type.encode()
    assert headers["ce_subject"] == counter.encode() and headers["ce_source"] == SOURCE.encode()
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE event_id = $1", envelope.id) == 0


async def test_a_unit_of_work_that_does_not_commit_publishes_nothing(pool, kafka, relay):
    counter = f"c-{uuid.uuid4()}"
    with pytest.raises(RuntimeError):
        async with UnitOfWork(pool, SOURCE) as uow:
            await uow.connection.execute("INSERT INTO counters (id) VALUES ($1)", counter)
            uow.record(CounterIncremented(counter_id=counter, amount=1))
            raise RuntimeError("the command failed halfway")
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM outbox WHERE aggregate_id = $1", counter) == 0
        assert await conn.fetchval("SELECT count(*) FROM counters WHERE id = $1", counter) == 0


async def test_a_record_kafka_refuses_waits_in_backoff_and_holds_back_only_its_own_aggregate(pool, kafka):
    def impatient_producer() -> AIOKafkaProducer:  # gives up on a missing topic after 2 s instead of 30 s
        return AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True, request_timeout_ms=2000)

    relay = OutboxRelay(pool, impatient_producer, ServiceMetrics("impatient"), batch_size=200)
    stuck_key, other = f"stuck-{uuid.uuid4()}", f"c-{uuid.uuid4()}"
    async with UnitOfWork(pool, SOURCE) as uow:
        await outbox.add_verbatim(
            uow.connection,
            topic=f"kit-test.{uuid.uuid4().hex}.missing",
            key=stuck_key.encode(),
            value=b"{}",
            headers=[],
            source=SOURCE,
            event_type="test",
        )
        uow.record(CounterIncremented(counter_id=stuck_key, amount=1))  # same aggregate, after the stuck row
        await uow.commit()
    await increment(pool, other)
    await relay.drain()
    rows = await pool.fetch(
        "SELECT aggregate_id, attempts, retry_after IS NOT NULL AS waiting FROM outbox "
        "WHERE aggregate_id = ANY($1::text[]) ORDER BY id",
        [stuck_key, other],
    )
    assert [(r["aggregate_id"], r["attempts"] >= 1, r["waiting"]) for r in rows] == [
        (stuck_key, True, True),
        (stuck_key, False, False),
    ]
    records = await read_topic(kafka, TEST_TOPIC, at_least=1)
    assert any(r.key == other.encode() for r in records)
    assert not any(r.key == stuck_key.encode() for r in records), "a later event overtook the stuck one"
    await pool.execute("DELETE FROM outbox WHERE aggregate_id = $1", stuck_key)
    await relay.close()


async def test_the_same_event_delivered_twice_takes_effect_once(pool, kafka, relay):
    counter = f"c-{uuid.uuid4()}"
    await increment(pool, counter, 7)
    await relay.drain()
    [record] = [r for r in await read_topic(kafka, TEST_TOPIC, at_least=1) if r.key == counter.encode()]
    consumer = EventConsumer(
        f"twice-{uuid.uuid4().hex[:6]}", pool, SOURCE, ServiceMetrics("t"), {CounterIncremented: apply_increment}
    )
    assert await consumer.consume(record) == "processed"
    assert await consumer.consume(record) == "duplicate"
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM applied WHERE counter_id = $1", counter) == 1


async def test_per_aggregate_order_is_kept_under_concurrent_writers_and_two_relays(pool, kafka, relay):
    counters = [f"order-{uuid.uuid4()}" for _ in range(5)]
    writes_per_writer, writers = 40, 8
    second = OutboxRelay(
        pool,
        lambda: kafka_producer({"bootstrap_servers": kafka}),
        ServiceMetrics("second"),
        batch_size=7,
        poll_interval=0.05,
    )
    relay_tasks = [asyncio.create_task(relay.run()), asyncio.create_task(second.run())]

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(writes_per_writer):
            await increment(pool, rng.choice(counters))

    await asyncio.gather(*(writer(seed) for seed in range(writers)))
    total = writes_per_writer * writers
    records = []
    for _ in range(120):
        records = [
            r for r in await read_topic(kafka, TEST_TOPIC, at_least=total, timeout=5) if r.key.decode() in counters
        ]
        if len(records) >= total:
            break
    relay.stop()
    second.stop()
    await asyncio.gather(*relay_tasks)
    await second.close()
    assert len(records) == total
    sequences = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        sequences[record.key.decode()].append(CounterIncremented.model_validate_json(record.value).sequence)
    for counter, seen in sequences.items():
        assert seen == list(range(1, len(seen) + 1)), f"{counter} out of order: {seen}"


def settings_for(database: str, kafka: str, group: str, key_file, **overrides) -> KitSettings:
    values = {
        "service_name": group,
        "database_url": database,
        "kafka_bootstrap_servers": kafka,
        "jwt_public_key_file": key_file,
        "consumer_max_attempts": 3,
        "consumer_retry_backoff_seconds": 0.05,
        "relay_poll_interval_seconds": 0.1,
        "migrate_on_start": True,
    }
    return KitSettings(**(values | overrides))


async def consuming_service(
    database: str, kafka: str, group: str, tmp_path, handler, **settings
) -> tuple[Service, str, str]:
    """A kit service whose consumer group `group` applies `handler` to a topic of its own; returns the service
    (not started), that topic and the group's dead-letter topic, both created."""
    topic, dlq = own_topic(group), dead_letter_topic(group)
    await topics.ensure({"bootstrap_servers": kafka}, [TopicSpec(topic, 6, 3_600_000), TopicSpec(dlq, 1, 3_600_000)])
    key_file = tmp_path / "key.pem"
    key_file.write_text(PUBLIC)
    spec = ServiceSpec(
        name=group,
        title="kit test",
        version="0",
        migrations=MIGRATIONS,
        subscribed_topics=[topic],
        handlers={CounterIncremented: handler},
    )
    return Service(spec, settings_for(database, kafka, group, key_file, **settings)), topic, dlq


async def wait_for(predicate, timeout=60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if await predicate():
            return True
        await asyncio.sleep(0.2)
    return False


async def test_poison_message_is_dead_lettered_once_and_the_messages_behind_it_are_processed(
    database, pool, kafka, tmp_path
):
    """Through the full service wiring: FastStream subscriber, kit consumer, outbox relay to the DLQ."""
    group = f"kit-test-{uuid.uuid4().hex[:8]}"
    service, topic, dlq = await consuming_service(database, kafka, group, tmp_path, apply_increment)
    counter = f"poison-{uuid.uuid4()}"
    good_before = Envelope.wrap(CounterIncremented(counter_id=counter, amount=1), SOURCE)
    poison = Envelope.wrap(CounterIncremented(counter_id=counter, amount=-1), SOURCE)
    good_after = Envelope.wrap(CounterIncremented(counter_id=counter, amount=10), SOURCE)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with service._lifespan(service.app):
            for envelope in (good_before, poison, good_after, good_before, poison):
                record = to_kafka(envelope)
                await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
            garbage_key = counter.encode()
            await producer.send_and_wait(topic, b"{broken", key=garbage_key, headers=[("ce_id", b"garbage-1")])
            await producer.send_and_wait(
                topic, b"{}", key=garbage_key, headers=[("ce_id", None), ("x", None), ("y", b"\xff")]
            )

            async def settled() -> bool:
                async with pool.acquire() as conn:
                    value = await conn.fetchval("SELECT value FROM counters WHERE id = $1", counter)
                    parked = await conn.fetchval(
                        "SELECT count(*) FROM inbox WHERE consumer = $1 AND outcome = 'dead_lettered'", group
                    )
                return value == 11 and parked == 3

            assert await wait_for(settled), "good messages not applied or poison not parked"
            dead = await read_topic(kafka, dlq, at_least=3, timeout=30)
    finally:
        await producer.stop()
    assert sorted(dict(r.headers).get("ce_id") or b"" for r in dead) == sorted(
        [b"", b"garbage-1", str(poison.id).encode()]
    )
    poisoned = next(r for r in dead if dict(r.headers)["ce_id"] == str(poison.id).encode())
    headers = dict(poisoned.headers)
    assert headers["dlq_consumer_group"] == group.encode() and headers["dlq_attempts"] == b"3"
    assert b"PoisonError" in headers["dlq_error"]
    assert poisoned.value == to_kafka(poison).value
    async with pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM applied WHERE counter_id = $1", counter) == 2
