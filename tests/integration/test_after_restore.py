"""After a point-in-time restore of a service's database, `restore.resume` on the real broker and database: the
group reads again from the restore point less the margin, the outbox drops what Kafka holds already, and no new
event repeats a `ce_sequence` that is on Kafka."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import CommitFailedError
from typer.testing import CliRunner

from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, restore, topics
from buurtkracht_kit.cli import app
from buurtkracht_kit.restore import REWIND_MARGIN, Resumed, resume

from .kit_domain import committed

pytestmark = pytest.mark.integration

# In whole milliseconds, as Kafka stamps records, and in the past: the broker refuses records stamped far ahead.
RESTORED_TO = (datetime.now(UTC) - timedelta(minutes=30)).replace(microsecond=0)
SINCE = RESTORED_TO - REWIND_MARGIN

# The subscribed topic, per partition: the records' times relative to SINCE, and the offset the group reads next.
SUBSCRIBED = {
    0: ([-timedelta(minutes=10), -timedelta(milliseconds=1), timedelta(0), REWIND_MARGIN, timedelta(minutes=20)], 2),
    1: ([-timedelta(hours=1), -timedelta(milliseconds=1)], 2),  # nothing since: the end
    2: ([], 0),
    3: ([timedelta(milliseconds=1), timedelta(minutes=25)], 0),  # everything since
}

# The published topic, per partition: (time relative to SINCE, ce_sequence) of the records the relay wrote.
PUBLISHED = {
    0: [(-timedelta(minutes=20), 100), (-timedelta(minutes=1), 200), (timedelta(minutes=1), 300)],
    1: [(timedelta(seconds=30), 410), (timedelta(minutes=6), 450)],
    2: [(-timedelta(minutes=2), 500)],  # a relay whose clock lags: the highest sequence, stamped before the window
}
HIGHEST = 500
EVENT_IDS = {sequence: uuid.uuid4() for records in PUBLISHED.values() for _, sequence in records} | {
    sequence: uuid.uuid4() for sequence in (420, 425)
}

# The restored outbox: ids as the rows had them, and the id sequence as it was at the restore point.
ON_KAFKA_SINCE = [300, 410]  # deleted after the restore point, once Kafka acknowledged them: dropped
ON_KAFKA_BEFORE = [200]  # on Kafka before the window, which `resume` does not read: published again
NOT_ON_KAFKA = [420, 425]  # not published at the restore point: published as usual
RESTORED_SEQUENCE = 430  # below HIGHEST: the ids after it went out with the events the restore undid


def millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class Topics:
    subscribed: str
    published: str
    ends: dict[TopicPartition, int]  # of the subscribed topic


@pytest.fixture(scope="module")
async def database(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database)
    return scratch_database


@pytest.fixture(scope="module")
async def kafka_topics(kafka_bootstrap):
    """A subscribed and a published topic of this module's own, with records stamped around the restore point;
    deleted afterwards."""
    suffix = uuid.uuid4().hex[:8]
    subscribed, published = f"after-restore.{suffix}.subscribed", f"after-restore.{suffix}.published"
    options = {"bootstrap_servers": kafka_bootstrap}
    await topics.ensure(options, [TopicSpec(subscribed, len(SUBSCRIBED)), TopicSpec(published, len(PUBLISHED))])
    try:
        producer = AIOKafkaProducer(**options, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            for partition, (times, _) in SUBSCRIBED.items():
                for n, shift in enumerate(times):
                    sent = await producer.send_and_wait(
                        subscribed, b"{}", partition=partition, timestamp_ms=millis(SINCE + shift)
                    )
                    assert (sent.offset, sent.timestamp) == (n, millis(SINCE + shift))  # stamped as given
            for partition, records in PUBLISHED.items():
                for shift, sequence in records:
                    headers = [("ce_id", str(EVENT_IDS[sequence]).encode()), ("ce_sequence", b"%020d" % sequence)]
                    sent = await producer.send_and_wait(
                        published, b"{}", partition=partition, timestamp_ms=millis(SINCE + shift), headers=headers
                    )
                    assert sent.timestamp == millis(SINCE + shift)
        finally:
            await producer.stop()
        ends = {TopicPartition(subscribed, partition): len(times) for partition, (times, _) in SUBSCRIBED.items()}
        yield Topics(subscribed, published, ends)
    finally:
        admin = AIOKafkaAdminClient(**options)
        await admin.start()
        try:
            await admin.delete_topics([subscribed, published])
        finally:
            await admin.close()


async def restored_outbox(database: str, topic: str, last_id: int) -> None:
    """The outbox as the restore left it: rows of every kind, the id sequence at `last_id`."""
    conn = await asyncpg.connect(database)
    try:
        await conn.execute("TRUNCATE outbox")
        await conn.execute(
            """
            INSERT INTO outbox (id, event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at,
                                payload)
            SELECT id, event_id, 'wallet', 'wallet-' || id, 'nl.buurtkracht.test.happened.v1', $3, 'urn:test', now(),
                   '{}'::jsonb
            FROM unnest($1::bigint[], $2::uuid[]) AS row(id, event_id)
            """,
            [*ON_KAFKA_SINCE, *ON_KAFKA_BEFORE, *NOT_ON_KAFKA],
            [EVENT_IDS[sequence] for sequence in (*ON_KAFKA_SINCE, *ON_KAFKA_BEFORE, *NOT_ON_KAFKA)],
            topic,
        )
        await conn.execute("SELECT setval(pg_get_serial_sequence('outbox', 'id'), $1)", last_id)
    finally:
        await conn.close()


async def outbox_state(database: str) -> tuple[set[uuid.UUID], int]:
    """The event ids left in the outbox, and the id the next row gets (the sequence is not advanced)."""
    conn = await asyncpg.connect(database)
    try:
        left = {row["event_id"] for row in await conn.fetch("SELECT event_id FROM outbox")}
        last_value, is_called = await conn.fetchrow("SELECT last_value, is_called FROM outbox_id_seq")
    finally:
        await conn.close()
    return left, last_value + 1 if is_called else last_value


async def commit(kafka: str, group: str, offsets: dict[TopicPartition, int]) -> None:
    """The group's offsets as a service that consumed up to `offsets` and stopped left them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def rewound(subscribed: str) -> dict[TopicPartition, int]:
    return {TopicPartition(subscribed, partition): offset for partition, (_, offset) in SUBSCRIBED.items()}


async def test_the_group_reads_again_from_the_restore_point_and_the_outbox_drops_what_kafka_holds(
    database, kafka_bootstrap, kafka_topics
):
    group = f"after-restore-{uuid.uuid4().hex[:8]}"
    await commit(kafka_bootstrap, group, kafka_topics.ends)
    await restored_outbox(database, kafka_topics.published, RESTORED_SEQUENCE)

    resumed = await resume(
        database,
        {"bootstrap_servers": kafka_bootstrap},
        group,
        [kafka_topics.subscribed],
        [kafka_topics.published],
        RESTORED_TO,
    )

    expected = rewound(kafka_topics.subscribed)
    assert await committed(kafka_bootstrap, group, kafka_topics.subscribed) == expected
    left, next_id = await outbox_state(database)
    assert left == {EVENT_IDS[sequence] for sequence in (*ON_KAFKA_BEFORE, *NOT_ON_KAFKA)}
    assert next_id == HIGHEST + 1
    assert resumed == Resumed(
        rewound_to={f"{tp.topic}/{tp.partition}": offset for tp, offset in expected.items()},
        outbox_rows_already_on_kafka=len(ON_KAFKA_SINCE),
        highest_sequence_on_kafka=HIGHEST,
        outbox_sequence_was=RESTORED_SEQUENCE,
        outbox_sequence_now=HIGHEST,
    )


async def test_a_sequence_already_past_kafka_stays_and_resuming_again_changes_nothing(
    database, kafka_bootstrap, kafka_topics
):
    group = f"after-restore-{uuid.uuid4().hex[:8]}"  # never committed anything
    await restored_outbox(database, kafka_topics.published, 900)
    options = {"bootstrap_servers": kafka_bootstrap}
    topic_lists = ([kafka_topics.subscribed], [kafka_topics.published])

    first = await resume(database, options, group, *topic_lists, RESTORED_TO)
    again = await resume(database, options, group, *topic_lists, RESTORED_TO)

    assert await committed(kafka_bootstrap, group, kafka_topics.subscribed) == rewound(kafka_topics.subscribed)
    left, next_id = await outbox_state(database)
    assert left == {EVENT_IDS[sequence] for sequence in (*ON_KAFKA_BEFORE, *NOT_ON_KAFKA)}
    assert next_id == 901
    assert (first.outbox_rows_already_on_kafka, first.outbox_sequence_was, first.outbox_sequence_now) == (2, 900, 900)
    assert again == Resumed(first.rewound_to, 0, HIGHEST, 900, 900)


async def test_a_group_with_an_active_member_is_refused_and_nothing_changes(
    database, kafka_bootstrap, kafka_topics, monkeypatch
):
    monkeypatch.setattr(restore, "MEMBERS_GONE_SECONDS", 3.0)
    group = f"after-restore-{uuid.uuid4().hex[:8]}"
    await commit(kafka_bootstrap, group, kafka_topics.ends)
    await restored_outbox(database, kafka_topics.published, RESTORED_SEQUENCE)
    before = await outbox_state(database)
    member = AIOKafkaConsumer(
        kafka_topics.subscribed, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        async with asyncio.timeout(30):
            while not member.assignment():
                await member.getmany(timeout_ms=100)
        with pytest.raises(RuntimeError, match="still has members") as refused:
            await resume(
                database,
                {"bootstrap_servers": kafka_bootstrap},
                group,
                [kafka_topics.subscribed],
                [kafka_topics.published],
                RESTORED_TO,
            )
        assert isinstance(refused.value.__cause__, CommitFailedError)
        assert await committed(kafka_bootstrap, group, kafka_topics.subscribed) == kafka_topics.ends
        assert await outbox_state(database) == before
    finally:
        await member.stop()


async def test_the_rewind_waits_for_a_member_that_goes_away(database, kafka_bootstrap, kafka_topics):
    """An instance that was killed stays a member until its session expires: the rewind waits for it to be gone."""
    group = f"after-restore-{uuid.uuid4().hex[:8]}"
    await commit(kafka_bootstrap, group, kafka_topics.ends)
    await restored_outbox(database, kafka_topics.published, RESTORED_SEQUENCE)
    member = AIOKafkaConsumer(
        kafka_topics.subscribed, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False
    )
    await member.start()
    try:
        async with asyncio.timeout(30):
            while not member.assignment():
                await member.getmany(timeout_ms=100)
        resuming = asyncio.create_task(
            resume(
                database,
                {"bootstrap_servers": kafka_bootstrap},
                group,
                [kafka_topics.subscribed],
                [kafka_topics.published],
                RESTORED_TO,
            )
        )
        await asyncio.sleep(2.5)
        assert not resuming.done(), "the rewind must not commit while the group has a member"
    finally:
        await member.stop()
    async with asyncio.timeout(60):
        await resuming
    assert await committed(kafka_bootstrap, group, kafka_topics.subscribed) == rewound(kafka_topics.subscribed)


def test_after_restore_refuses_a_time_without_its_utc_offset():
    naive = ["after-restore", "vouchers", "--restored-to", "2026-11-30T21:15:00"]
    unreachable = ["--database-url", "postgresql://nobody@127.0.0.1:1/none", "--bootstrap", "127.0.0.1:1"]
    result = CliRunner().invoke(app, [*naive, *unreachable])
    assert result.exit_code != 0
    assert "give the time with its UTC offset" in " ".join(result.output.replace("│", " ").split())
