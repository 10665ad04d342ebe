"""Reading a consumer group's dead-letter topic, and replaying its records once the cause is fixed.

A dead letter (see `buurtkracht_kit.consumer`) is the original Kafka record, byte for byte (key, value,
`ce_*` headers), plus `dlq_*` headers saying where it came from and why it failed, on `<group>.dlq`.
The group's inbox holds a row `(group, message id)` with outcome `dead_lettered` for it, so the
consumer treats any redelivery of that message as a duplicate. Replaying a message therefore means
two things: remove that inbox row from the service's database, and publish the original record
(without the `dlq_*` headers) to its original topic again.

The order, and why a rerun repairs any partial run:

    BEGIN
      DELETE FROM inbox WHERE consumer = $group AND message_id = $id AND outcome = 'dead_lettered'
      -- no row deleted: the message was replayed already (or processed): skip it, roll back
      publish the original record and wait for Kafka's acknowledgement (acks=all)
    COMMIT

The delete takes the row lock and stays uncommitted while the record is published. Whatever the
consumer does with the republished record meanwhile, its `INSERT INTO inbox ... ON CONFLICT DO NOTHING`
waits for this transaction (PostgreSQL waits on a unique key held by an uncommitted delete), so:

- crash (or error) before the publish: the transaction rolls back; the row is still `dead_lettered`,
  nothing was published; a rerun replays the message.
- crash after the publish, before the commit: the row is still `dead_lettered`, so the consumer counts
  the republished copy as a duplicate and skips it; the record is still on the dead-letter topic and
  the row still `dead_lettered`, so a rerun replays it again.
- commit done: the consumer's insert goes through and the handler runs, exactly once; a rerun finds
  no `dead_lettered` row (it is gone, or `processed`) and skips the message.

The two simpler orders each lose a message: "publish, then delete" races the consumer (it may read
the copy before the delete, see the old row and drop it, while the replay reports success); "delete,
commit, then publish" loses it on a crash between commit and publish, and a rerun would skip it
because the row is no longer `dead_lettered`. A message that fails again after a replay is
dead-lettered again (a new record on the dead-letter topic, the row `dead_lettered` again).

Within one run each message id is replayed at most once (the last of its dead letters on the topic),
so a message that fails again at once is not replayed in a loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import UnknownTopicOrPartitionError

from buurtkracht_contracts.topics import dead_letter_topic

from .outbox import kafka_producer

logger = logging.getLogger(__name__)

Header = tuple[str, bytes | None]
ReplayOutcome = Literal["replayed", "skipped"]


@dataclass(frozen=True)
class DeadLetter:
    """One record on a dead-letter topic, with its `dlq_*` headers read out."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    ce_id: str | None
    ce_type: str | None
    consumer_group: str | None
    original_topic: str | None
    original_partition: int | None
    original_offset: int | None
    attempts: int | None
    error: str | None
    failed_at: str | None

    @property
    def message_id(self) -> str:
        """The inbox key the consumer used: the CloudEvent id, or where the record was if it had none."""
        if self.ce_id:
            return self.ce_id
        return f"{self.original_topic}:{self.original_partition}:{self.original_offset}"

    @property
    def original_headers(self) -> list[Header]:
        """The headers of the original record: everything but the `dlq_*` headers, in order."""
        return [(name, value) for name, value in self.headers if not name.startswith("dlq_")]

    @classmethod
    def from_record(cls, record) -> DeadLetter:
        headers = tuple((name, value) for name, value in record.headers)

        def text(name: str) -> str | None:
            for header, value in headers:
                if header == name and value is not None:
                    return value.decode("utf-8", "replace")
            return None

        def number(name: str) -> int | None:
            value = text(name)
            return int(value) if value is not None and value.lstrip("-").isdigit() else None

        return cls(
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=headers,
            ce_id=text("ce_id"),
            ce_type=text("ce_type"),
            consumer_group=text("dlq_consumer_group"),
            original_topic=text("dlq_original_topic"),
            original_partition=number("dlq_original_partition"),
            original_offset=number("dlq_original_offset"),
            attempts=number("dlq_attempts"),
            error=text("dlq_error"),
            failed_at=text("dlq_failed_at"),
        )


@dataclass
class ReplayReport:
    replayed: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (message id, why)
    not_found: list[str] = field(default_factory=list)  # asked-for ids with no dead letter on the topic


async def read(client_options: dict[str, object], group: str, *, within_seconds: float = 10.0) -> list[DeadLetter]:
    """Every record on `group`'s dead-letter topic, from the beginning up to its end now, in (partition, offset)
    order. Reads without a consumer group: nothing is committed, nobody else's position moves."""
    topic = dead_letter_topic(group)
    # without a group id, subscribing assigns every partition of the topic to this one reader
    consumer = AIOKafkaConsumer(topic, **client_options, enable_auto_commit=False, auto_offset_reset="earliest")
    try:
        await consumer.start()
    except UnknownTopicOrPartitionError as error:
        await consumer.stop()
        raise LookupError(f"topic {topic} does not exist") from error
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or [])]
        if not partitions:
            raise LookupError(f"topic {topic} does not exist")
        end = await consumer.end_offsets(partitions)
        records: list = []
        deadline = asyncio.get_running_loop().time() + within_seconds
        while True:
            positions = {tp: await consumer.position(tp) for tp in partitions}
            if all(positions[tp] >= end[tp] for tp in partitions):
                break
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {within_seconds} s")
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, partition_records in batch.items():
                records += [r for r in partition_records if r.offset < end[tp]]
        return [DeadLetter.from_record(r) for r in sorted(records, key=lambda r: (r.partition, r.offset))]
    finally:
        await consumer.stop()


def select(dead_letters: Iterable[DeadLetter], event_ids: Sequence[str] | None) -> list[DeadLetter]:
    """The dead letters to replay: all (`event_ids` None) or those ids; one per message id, the last on the topic."""
    latest: dict[str, DeadLetter] = {}
    for dead_letter in dead_letters:
        if event_ids is None or dead_letter.message_id in event_ids:
            latest[dead_letter.message_id] = dead_letter  # records of one key share a partition: later offset wins
    return list(latest.values())


async def replay(
    client_options: dict[str, object],
    database_url: str,
    group: str,
    event_ids: Sequence[str] | None = None,
) -> ReplayReport:
    """Replay `group`'s dead letters (all, or those with `event_ids`) whose inbox row is still 'dead_lettered'."""
    chosen = select(await read(client_options, group), event_ids)
    report = ReplayReport()
    if event_ids is not None:
        found = {dead_letter.message_id for dead_letter in chosen}
        report.not_found = [event_id for event_id in dict.fromkeys(event_ids) if event_id not in found]
    if not chosen:
        return report
    producer = kafka_producer(client_options)
    await producer.start()
    connection = await asyncpg.connect(database_url)
    try:
        for dead_letter in chosen:
            outcome, why = await _replay_one(connection, producer, group, dead_letter)
            if outcome == "replayed":
                report.replayed.append(dead_letter.message_id)
            else:
                report.skipped.append((dead_letter.message_id, why))
    finally:
        await connection.close()
        await producer.stop()
    return report


async def _replay_one(connection, producer, group: str, dead_letter: DeadLetter) -> tuple[ReplayOutcome, str]:
    message_id = dead_letter.message_id
    if not dead_letter.original_topic:
        return "skipped", "no dlq_original_topic header"
    async with connection.transaction():
        deleted = await connection.fetchval(
            "DELETE FROM inbox WHERE consumer = $1 AND message_id = $2 AND outcome = 'dead_lettered' RETURNING true",
            group,
            message_id,
        )
        if not deleted:
            outcome = await connection.fetchval(
                "SELECT outcome FROM inbox WHERE consumer = $1 AND message_id = $2", group, message_id
            )
            return "skipped", f"inbox row is {outcome}" if outcome else "no inbox row (replayed already)"
        # The row stays locked until the broker acknowledged the record: see the module docstring.
        await producer.send_and_wait(
            dead_letter.original_topic,
            dead_letter.value,
            key=dead_letter.key,
            headers=dead_letter.original_headers,
        )
    logger.info("replayed %s to %s", message_id, dead_letter.original_topic)
    return "replayed", ""
