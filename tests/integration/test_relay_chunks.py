"""A batch goes to Kafka in chunks, the next fetched while one is in flight: every aggregate's events still arrive in
order, a failed chunk ends the batch, and an aggregate with a row left unpublished sends none of its later rows."""

from __future__ import annotations

import asyncio
import collections
import random
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, outbox, topics
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer

from .kit_domain import MIGRATIONS, SOURCE, TEST_TOPIC, CounterIncremented, increment, own_topic, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(scratch_database, kafka_bootstrap):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(TEST_TOPIC, 6, 3_600_000)])
    pool = await create_pool(scratch_database, 2, 20)
    yield pool
    await pool.close()


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(outbox, "CHUNK_ROWS", 3)


def sequences_on_kafka(records, counters) -> dict[str, list[int]]:
    seen = collections.defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        if record.key.decode() in counters:
            seen[record.key.decode()].append(CounterIncremented.model_validate_json(record.value).sequence)
    return seen


async def test_chunks_keep_each_aggregates_order_under_concurrent_writers_and_two_relays(
    pool, kafka_bootstrap, small_chunks
):
    counters = [f"chunked-{uuid.uuid4()}" for _ in range(5)]
    relays = [
        OutboxRelay(
            pool,
            lambda: kafka_producer({"bootstrap_servers": kafka_bootstrap}),
            ServiceMetrics(f"chunks-{n}"),
            batch_size=batch_size,
            poll_interval=0.02,
        )
        for n, batch_size in enumerate((20, 7))
    ]
    tasks = [asyncio.create_task(relay.run()) for relay in relays]

    async def writer(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(30):
            await increment(pool, rng.choice(counters))

    await asyncio.gather(*(writer(seed) for seed in range(8)))
    total = 30 * 8
    records = []
    for _ in range(60):
        records = [r for r in await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=total, timeout=5)]
        if sum(len(seen) for seen in sequences_on_kafka(records, counters).values()) >= total:
            break
    for relay in relays:
        relay.stop()
    await asyncio.gather(*tasks)
    for relay in relays:
        await relay.close()
    sequences = sequences_on_kafka(records, counters)
    assert sum(len(seen) for seen in sequences.values()) == total
    for counter, seen in sequences.items():
        assert seen == list(range(1, len(seen) + 1)), f"{counter} out of order: {seen}"


async def test_a_failed_chunk_ends_the_batch_and_holds_back_only_its_aggregate(pool, kafka_bootstrap, small_chunks):
    def impatient_producer() -> AIOKafkaProducer:  # gives up on a missing topic after 2 s instead of 30 s
        return AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True, request_timeout_ms=2000
        )

    await pool.execute("DELETE FROM outbox")
    stuck, others = f"stuck-{uuid.uuid4()}", [f"fine-{uuid.uuid4()}" for _ in range(2)]
    for counter in others:  # the first chunk: published
        await increment(pool, counter)
    await increment(pool, stuck)
    async with UnitOfWork(pool, SOURCE) as uow:  # the second chunk fails on this row
        await outbox.add_verbatim(
            uow.connection,
            topic=f"kit-test.{uuid.uuid4().hex}.missing",
            key=stuck.encode(),
            value=b"{}",
            headers=[],
            source=SOURCE,
            event_type="test",
        )
        await uow.commit()
    for _ in range(4):  # later chunks: the stuck aggregate's rows wait, the others go
        await increment(pool, stuck)
        for counter in others:
            await increment(pool, counter)

    relay = OutboxRelay(pool, impatient_producer, ServiceMetrics("impatient-chunks"), batch_size=100)
    try:
        rows = await pool.fetch("SELECT id, aggregate_id FROM outbox ORDER BY id")
        # chunks of 3: [fine 1, fine 1, stuck 1], [stuck verbatim, stuck 2, fine 2], [fine 2, stuck 3, fine 3], ...
        assert await relay.publish_batch() == 4  # the first chunk, and the second's row of another aggregate
        left = await pool.fetch("SELECT id, attempts, retry_after IS NOT NULL AS waiting FROM outbox ORDER BY id")
        assert (
            [(row["id"], row["attempts"], row["waiting"]) for row in left]
            == [
                (rows[3]["id"], 1, True),  # failed, in backoff
                (rows[4]["id"], 0, False),  # cut: behind the failed row of its aggregate
                *((row["id"], 0, False) for row in rows[6:]),  # the failed chunk ended the batch
            ]
        )
        await pool.execute("UPDATE outbox SET retry_after = now() + interval '1 hour' WHERE id = $1", rows[3]["id"])
        await relay.drain()  # the failed row stays in backoff meanwhile
    finally:
        await relay.close()
    left = await pool.fetch("SELECT aggregate_id, attempts FROM outbox ORDER BY id")
    assert [(row["aggregate_id"], row["attempts"]) for row in left] == [(stuck, 1)] + [(stuck, 0)] * 4
    sequences = sequences_on_kafka(await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=1), [stuck, *others])
    assert sequences == {stuck: [1], others[0]: [1, 2, 3, 4, 5], others[1]: [1, 2, 3, 4, 5]}
    await pool.execute("DELETE FROM outbox WHERE aggregate_id = $1", stuck)


async def test_an_aggregate_cut_in_one_chunk_sends_none_of_its_rows_in_the_later_chunks_of_the_batch(
    pool, kafka_bootstrap, small_chunks
):
    other_topic = own_topic("chunks-other")
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(other_topic, 1, 3_600_000)])
    await pool.execute("DELETE FROM outbox")
    moving, fine = f"moving-{uuid.uuid4()}", f"fine-{uuid.uuid4()}"
    await increment(pool, moving)
    async with UnitOfWork(pool, SOURCE) as uow:  # same chunk, another topic: cut here, the rest of `moving` waits
        await outbox.add_verbatim(
            uow.connection,
            topic=other_topic,
            key=moving.encode(),
            value=b"{}",
            headers=[],
            source=SOURCE,
            event_type="t",
        )
        await uow.commit()
    for _ in range(4):
        await increment(pool, fine)
        await increment(pool, moving)
    rows = await pool.fetch("SELECT id FROM outbox ORDER BY id")
    relay = OutboxRelay(pool, lambda: kafka_producer({"bootstrap_servers": kafka_bootstrap}), ServiceMetrics("cut"))
    try:
        assert await relay.publish_batch() == 5  # `moving` 1 and the four of `fine`
        left = [row["id"] for row in await pool.fetch("SELECT id FROM outbox ORDER BY id")]
        assert left == [rows[1]["id"], *(row["id"] for row in rows[3::2])]
        assert await relay.drain() == 5
    finally:
        await relay.close()
    sequences = sequences_on_kafka(await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=1), [moving, fine])
    assert sequences == {moving: [1, 2, 3, 4, 5], fine: [1, 2, 3, 4]}
    assert [r.key for r in await read_topic(kafka_bootstrap, other_topic, at_least=1)] == [moving.encode()]
