"""Offset commits of the consumer group, in the background rather than one round trip per record.

Invariants:
- an offset is committed only after its record was applied (the consumer's transaction committed) or
  parked, and records of a partition are applied in order, so nothing is ever committed past a record
  that has not taken effect; a failed record rewinds its partition before anything behind it is applied;
- a record applied but not committed yet (the process died, the partition moved to another instance)
  comes again, and the inbox makes it a duplicate: committing less often costs redelivery, never loss;
- when the group takes partitions away, their offsets are committed first; when the service stops,
  every record applied from then on is committed at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener

logger = logging.getLogger(__name__)

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
