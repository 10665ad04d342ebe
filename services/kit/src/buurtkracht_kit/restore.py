"""A service's database restored to a point in time: what it forgot, Kafka still remembers. Run `resume` after
the restore and before the service starts on the restored database (`buurtkracht after-restore`).

Invariants it restores:
- a record the service had applied after the restore point takes effect again: the consumer group's offsets
  live in Kafka and stayed ahead of the restored inbox, so `resume` moves the group back to the first record at
  or after the restore point less a margin; the inbox makes each record the database still holds a duplicate;
- no new event carries a `ce_sequence` an earlier one had: the outbox's id sequence was restored too, and the
  events of the work the restore undid are on Kafka with the ids that follow, so `resume` moves the sequence
  past the highest sequence on the service's topics.

- an event is not published twice: the outbox rows the restore brought back were mostly on Kafka already (their
  deletion after the broker's acknowledgement came after the restore point); `resume` drops the rows whose event
  id it finds on the service's topics since the restore point less the margin. What it cannot find the relay
  publishes again, and consumers drop it by event id, as for any redelivery.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import CommitFailedError

REWIND_MARGIN = timedelta(minutes=5)  # records are stamped by their producer's clock: allow for its skew
MEMBERS_GONE_SECONDS = 120.0  # a killed instance stays a member of its group until its session times out


@dataclass(frozen=True)
class Resumed:
    rewound_to: dict[str, int]  # "topic/partition" -> the offset the group reads next
    outbox_rows_already_on_kafka: int  # dropped, not published twice
    highest_sequence_on_kafka: int
    outbox_sequence_was: int
    outbox_sequence_now: int


async def resume(
    database_url: str,
    kafka_options: dict[str, Any],
    group: str,
    subscribed: Sequence[str],
    published: Sequence[str],
    restored_to: datetime,
) -> Resumed:
    """Rewind `group` on the `subscribed` topics to `restored_to` less `REWIND_MARGIN`, drop the outbox rows whose
    event is on the `published` topics since then, and move the outbox's id sequence past the highest
    `ce_sequence` there. The group must have no members (the service is stopped): Kafka refuses the commit
    otherwise, so the rewind waits up to `MEMBERS_GONE_SECONDS` for the sessions of killed instances to expire."""
    since = restored_to - REWIND_MARGIN
    rewound = await _rewind(kafka_options, group, subscribed, since)
    on_kafka, highest = await _published(kafka_options, published, since)
    conn = await asyncpg.connect(database_url)
    try:
        async with conn.transaction():
            dropped = await conn.fetchval(
                "WITH gone AS (DELETE FROM outbox WHERE event_id = ANY($1::uuid[]) RETURNING 1) "
                "SELECT count(*) FROM gone",
                sorted(on_kafka),
            )
            sequence = await conn.fetchval("SELECT pg_get_serial_sequence('outbox', 'id')")
            was = await conn.fetchval(f"SELECT last_value FROM {sequence}")
            now = await conn.fetchval(
                "SELECT setval($1::regclass, greatest($2::bigint, $3::bigint))", sequence, was, highest
            )
    finally:
        await conn.close()
    return Resumed(rewound, dropped, highest, was, now)


async def _partitions(kafka_options: dict[str, Any], topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of `topics` (a consumer without a group, subscribed to them, learns them at its start)."""
    reader = AIOKafkaConsumer(*topics, **kafka_options, enable_auto_commit=False)
    await reader.start()
    try:
        missing = [t for t in topics if not reader.partitions_for_topic(t)]
        if missing:
            raise LookupError(f"no such topic on Kafka: {', '.join(missing)}")
        return [TopicPartition(t, p) for t in topics for p in sorted(reader.partitions_for_topic(t))]
    finally:
        await reader.stop()


async def _rewind(kafka_options: dict[str, Any], group: str, topics: Sequence[str], since: datetime) -> dict[str, int]:
    if not topics:
        return {}
    consumer = AIOKafkaConsumer(**kafka_options, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await _partitions(kafka_options, topics)
        consumer.assign(partitions)
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        offsets = {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in partitions}
        deadline = time.monotonic() + MEMBERS_GONE_SECONDS
        while True:
            try:
                await consumer.commit(offsets)
                break
            except CommitFailedError as refused:  # the group still has a member
                if time.monotonic() >= deadline:
                    raise RuntimeError(
                        f"consumer group {group} still has members after {MEMBERS_GONE_SECONDS:.0f} s: "
                        "stop every instance of the service first"
                    ) from refused
                await asyncio.sleep(1.0)
    finally:
        await consumer.stop()
    return {f"{tp.topic}/{tp.partition}": offset for tp, offset in sorted(offsets.items())}


async def _published(kafka_options: dict[str, Any], topics: Sequence[str], since: datetime) -> tuple[set[str], int]:
    """The event ids on `topics` from `since` on, and the highest `ce_sequence` there: the last record of each
    partition carries the partition's highest (a relay publishes in id order; relays of replicas take turns)."""
    if not topics:
        return set(), 0
    consumer = AIOKafkaConsumer(**kafka_options, enable_auto_commit=False)
    await consumer.start()
    ids: set[str] = set()
    highest = 0
    try:
        partitions = await _partitions(kafka_options, topics)
        consumer.assign(partitions)
        firsts, ends = await consumer.beginning_offsets(partitions), await consumer.end_offsets(partitions)
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        for tp in partitions:
            if ends[tp] <= firsts[tp]:
                continue
            start = min(found[tp].offset if found.get(tp) is not None else ends[tp], ends[tp] - 1)
            consumer.seek(tp, start)
            position = start
            while position < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=10_000)
                if not batch:
                    raise TimeoutError(f"{tp.topic}/{tp.partition}: no records at offset {position} of {ends[tp]}")
                for record in batch.get(tp, []):
                    position = record.offset + 1
                    headers = dict(record.headers or ())
                    if (ce_id := headers.get("ce_id")) is not None:
                        ids.add(ce_id.decode())
                    if (sequence := headers.get("ce_sequence")) is not None:
                        highest = max(highest, int(sequence))
    finally:
        await consumer.stop()
    return ids, highest
