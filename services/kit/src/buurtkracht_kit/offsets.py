"""Offset commits of the consumer group, in the background rather than one round trip per record.

Invariants:
- an offset is committed only after its record was applied (the consumer's transaction committed) or
  parked, and records of a partition are applied in order, so nothing is ever committed past a record
  that has not taken effect; a failed record rewinds its partition before anything behind it is applied;
- a polled batch (`apply_batch`) is applied per partition, each partition's records in order (several
  partitions at once, as several instances would); a record is marked applied once it and those before
  it took effect, and when applying a partition fails, it is rewound to the record after the last one
  that took effect; the other partitions go on or are rewound the same way;
- a record applied but not committed yet (the process died, the partition moved to another instance)
  comes again, and the inbox makes it a duplicate: committing less often costs redelivery, never loss;
- when the group takes partitions away, their offsets are committed first; when the service stops,
  every record applied from then on is committed at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

logger = logging.getLogger(__name__)

PARTITIONS_AT_ONCE = 4  # partitions of one poll applied concurrently, each in its own transaction
STOP_FLUSH_SECONDS = 2.0  # a commit while stopping waits no longer (what it misses comes again, as a duplicate)


class OffsetCommitter(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._pending: dict[TopicPartition, int] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._at_once = False

    async def applied(self, record: Any, consumer: AIOKafkaConsumer) -> None:
        """`record` took effect: the group may move past it."""
        self._pending[TopicPartition(record.topic, record.partition)] = record.offset + 1
        self._consumer = consumer
        if self._at_once:
            await self._flush_before_stop()

    async def apply_batch(
        self,
        records: Sequence[Any],
        consumer: AIOKafkaConsumer,
        apply: Callable[[Sequence[Any], Callable[[Any], Awaitable[None]]], Awaitable[object]],
        *,
        partitions_at_once: int = PARTITIONS_AT_ONCE,
    ) -> None:
        """Apply a polled batch with `apply(records, took_effect)`, one call per partition with that partition's
        records in offset order (up to `partitions_at_once` partitions at a time, as that many instances of the
        service would); `apply` awaits `took_effect(record)` once a record and those before it took effect. A
        partition whose call raised or did not finish is rewound to the record after the last one that took
        effect; then the first error goes on."""
        by_partition: dict[TopicPartition, list[Any]] = {}
        for record in records:
            by_partition.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
        resume = {tp: partition_records[0].offset for tp, partition_records in by_partition.items()}
        turns = asyncio.Semaphore(partitions_at_once)
        done: set[TopicPartition] = set()

        async def took_effect(record: Any) -> None:
            resume[TopicPartition(record.topic, record.partition)] = record.offset + 1
            await self.applied(record, consumer)

        async def apply_partition(tp: TopicPartition, partition_records: list[Any]) -> None:
            async with turns:
                await apply(partition_records, took_effect)
            await took_effect(partition_records[-1])
            done.add(tp)

        tasks = [asyncio.create_task(apply_partition(tp, rs)) for tp, rs in by_partition.items()]
        try:
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        finally:  # also when cancelled: what did not finish is stopped and rewound
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for tp in by_partition.keys() - done:  # nothing behind a record not applied is applied or committed
                consumer.seek(tp, resume[tp])
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    async def flush(self, partitions: set[TopicPartition] | None = None) -> None:
        """Commit what is pending (for `partitions`, or all); what fails stays pending while still ours."""
        consumer = self._consumer
        chosen = {tp: offset for tp, offset in self._pending.items() if partitions is None or tp in partitions}
        if consumer is None or not chosen:
            return
        for tp in chosen:
            del self._pending[tp]
        try:
            await consumer.commit(chosen)
        except Exception as error:  # a rebalance, the coordinator away: the next flush tries again
            assigned = consumer.assignment()
            for tp, offset in chosen.items():
                if tp in assigned and offset > self._pending.get(tp, -1):
                    self._pending[tp] = offset
            logger.warning("offset commit failed, retried at the next flush: %r", error)

    async def run(self) -> None:
        """Flush every interval until cancelled."""
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def stopping(self) -> None:
        """From now on every applied record is committed at once; what is pending is committed now."""
        self._at_once = True
        await self._flush_before_stop()

    async def _flush_before_stop(self) -> None:
        try:
            await asyncio.wait_for(self.flush(), STOP_FLUSH_SECONDS)
        except TimeoutError:
            logger.warning("offset commit while stopping took over %g s; those records come again", STOP_FLUSH_SECONDS)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.flush(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        return None
