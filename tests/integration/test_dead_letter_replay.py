"""Replaying a dead-letter topic after the bug is fixed: the message takes effect once, a rerun does nothing,
and a replay that crashes between its publish and its commit is repaired by running it again."""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_kit import dead_letters, migrations
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.outbox import kafka_producer

from .kit_domain import MIGRATIONS, SOURCE, CounterIncremented, PoisonError, read_topic
from .test_outbox_and_consumer import consuming_service, wait_for

pytestmark = pytest.mark.integration

BUG = {"fixed": False}  # the "deployment" of the fix: the handler reads it on every message


async def apply_unless_buggy(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
    """Like `kit_domain.apply_increment`, but negative amounts are fine once the bug is fixed."""
    if event.amount < 0 and not BUG["fixed"]:
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


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    return scratch_database


@pytest.fixture(scope="module")
async def pool(database):
    pool = await create_pool(database, 2, 10)
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def kafka(kafka_bootstrap):
    return kafka_bootstrap


async def run_cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "buurtkracht_kit.cli",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    return process.returncode, out.decode()


async def test_a_replayed_dead_letter_is_processed_once_and_a_second_replay_does_nothing(
    database, pool, kafka, tmp_path
):
    BUG["fixed"] = False
    group = f"kit-replay-{uuid.uuid4().hex[:8]}"
    service, topic, dlq = await consuming_service(database, kafka, group, tmp_path, apply_unless_buggy)
    counter = f"replay-{uuid.uuid4()}"
    good = Envelope.wrap(CounterIncremented(counter_id=counter, amount=5), SOURCE)
    poison = Envelope.wrap(CounterIncremented(counter_id=counter, amount=-2), SOURCE)
    poison_id = str(poison.id)

    async def outcome() -> str | None:
        return await pool.fetchval(
            "SELECT outcome FROM inbox WHERE consumer = $1 AND message_id = $2", group, poison_id
        )

    async def applied() -> int:
        return await pool.fetchval("SELECT count(*) FROM applied WHERE event_id = $1", poison.id)

    async def value() -> int | None:
        return await pool.fetchval("SELECT value FROM counters WHERE id = $1", counter)

    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        async with service._lifespan(service.app):
            for envelope in (good, poison):
                record = to_kafka(envelope)
                await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)

            async def parked() -> bool:
                return await value() == 5 and await outcome() == "dead_lettered"

            assert await wait_for(parked), "the good message was not applied or the poison not parked"
            assert len(await read_topic(kafka, dlq, at_least=1, timeout=30)) == 1
            listed = await dead_letters.read({"bootstrap_servers": kafka}, group)
            assert [(d.ce_id, d.original_topic, d.attempts) for d in listed] == [(poison_id, topic, 3)]
            assert b"PoisonError" in (listed[0].error or "").encode()
            assert [name for name, _ in listed[0].original_headers] == [name for name, _ in to_kafka(poison).headers]

            BUG["fixed"] = True  # the fix is deployed

            # A replay that crashes after publishing, before committing its delete: the consumer waits for
            # the row lock, then finds the row still 'dead_lettered' and drops the copy as a duplicate.
            duplicates = service.metrics.inbox_events.labels(group, CounterIncremented.event_type, "duplicate")
            before = duplicates._value.get()
            crash_producer = kafka_producer({"bootstrap_servers": kafka})
            await crash_producer.start()
            try:
                async with pool.acquire() as conn:
                    with pytest.raises(ConnectionAbortedError):
                        async with conn.transaction():
                            assert await conn.fetchval(
                                "DELETE FROM inbox WHERE consumer = $1 AND message_id = $2 "
                                "AND outcome = 'dead_lettered' RETURNING true",
                                group,
                                poison_id,
                            )
                            await crash_producer.send_and_wait(
                                topic, listed[0].value, key=listed[0].key, headers=listed[0].original_headers
                            )
                            await asyncio.sleep(1)  # the consumer reads the copy and waits on the row lock
                            raise ConnectionAbortedError("the replay dies before its commit")
            finally:
                await crash_producer.stop()

            async def dropped_as_duplicate() -> bool:
                return duplicates._value.get() > before

            assert await wait_for(dropped_as_duplicate), "the consumer did not see the copy of the crashed replay"
            assert await outcome() == "dead_lettered" and await applied() == 0

            # Running the replay (again) repairs it: processed exactly once.
            report = await dead_letters.replay({"bootstrap_servers": kafka}, database, group)
            assert report.replayed == [poison_id] and report.skipped == [] and report.not_found == []

            async def processed() -> bool:
                return await outcome() == "processed"

            assert await wait_for(processed), "the replayed message was not processed"
            assert await applied() == 1 and await value() == 3

            # A second run, through the command line: nothing left to replay.
            code, out = await run_cli("dlq", "replay", "--group", group, "--database-url", database, "--all")
            assert code == 0, out
            assert f"skipped {poison_id}: inbox row is processed" in out and "0 replayed" in out, out
            code, out = await run_cli("dlq", "list", "--group", group)
            assert code == 0 and poison_id in out and "1 dead letter(s)" in out, out
            code, out = await run_cli(
                "dlq", "replay", "--group", group, "--database-url", database, "--event-id", "no-such-id"
            )
            assert code == 1 and "not on" in out, out
            await asyncio.sleep(1)
            assert await applied() == 1 and await value() == 3
    finally:
        await producer.stop()
        BUG["fixed"] = False
