"""The relay hands each partition its rows as whole record batches, in order; a failure holds back only the
rows of its partition, and no aggregate's later row ever reaches Kafka before an earlier one."""

import asyncio

import pytest
from aiokafka.partitioner import DefaultPartitioner

from buurtkracht_kit.outbox import _Row, _send_in_order

pytestmark = pytest.mark.unit

PARTITIONS = [0, 1, 2]


class Batch:
    def __init__(self, capacity: int) -> None:
        self.capacity, self.rows = capacity, []

    def append(self, *, timestamp, key, value, headers):
        if len(self.rows) >= self.capacity:
            return None
        self.rows.append(int(value))
        return object()


class FlakyProducer:
    """A stand-in for aiokafka's batch API: acknowledges every batch except those holding a row named in
    `failing` (not acknowledged) or `raising` (refused at once); remembers what reached 'Kafka' in which order."""

    def __init__(self, failing=frozenset(), raising=frozenset(), capacity=100, topics=("t",)) -> None:
        self.failing, self.raising, self.capacity, self.topics = failing, raising, capacity, topics
        self.sent: list[int] = []
        self.batches: list[tuple[str, int, list[int]]] = []

    async def partitions_for(self, topic):
        if topic not in self.topics:
            raise LookupError(f"unknown topic {topic}")
        return set(PARTITIONS)

    def create_batch(self) -> Batch:
        return Batch(self.capacity)

    async def send_batch(self, batch, topic, *, partition):
        if self.raising & set(batch.rows):
            raise ValueError("record too large")
        self.batches.append((topic, partition, batch.rows))
        future = asyncio.get_running_loop().create_future()
        if self.failing & set(batch.rows):
            future.set_exception(TimeoutError("broker"))
        else:
            self.sent += batch.rows
            future.set_result(None)
        return future


def row(row_id: int, aggregate: str, topic: str = "t") -> _Row:
    return _Row(row_id, aggregate, topic, aggregate.encode(), str(row_id).encode(), [])


def partition_of(aggregate: str) -> int:
    return DefaultPartitioner()(aggregate.encode(), PARTITIONS, None)


def aggregate_on(prefix: str, partition: int) -> str:
    return next(f"{prefix}{n}" for n in range(1000) if partition_of(f"{prefix}{n}") == partition)


# three aggregates on three different partitions, a fourth sharing the first one's partition
A, B, C, D = aggregate_on("a", 0), aggregate_on("b", 1), aggregate_on("c", 2), aggregate_on("d", 0)
ROWS = [row(1, A), row(2, B), row(3, A), row(4, B), row(5, C), row(6, A), row(7, D)]


async def test_each_partition_gets_its_rows_in_one_batch_in_order():
    producer = FlakyProducer()
    published, failed = await _send_in_order(producer, ROWS)
    assert sorted(r.id for r in published) == [1, 2, 3, 4, 5, 6, 7] and failed == []
    batches = {partition: rows for _, partition, rows in producer.batches}
    assert len(producer.batches) == 3
    assert batches == {partition_of(A): [1, 3, 6, 7], partition_of(B): [2, 4], partition_of(C): [5]}


async def test_the_same_partition_as_aiokafka_send_with_the_key_picks():
    producer = FlakyProducer()
    await _send_in_order(producer, [row(1, "r-123")])
    ((_, partition, _),) = producer.batches
    assert partition == partition_of("r-123")


@pytest.mark.parametrize("failing, raising", [({3}, set()), (set(), {3})], ids=["not acknowledged", "refused at once"])
async def test_a_failed_batch_fails_its_rows_and_holds_back_only_its_partition(failing, raising):
    producer = FlakyProducer(failing=failing, raising=raising)
    published, failed = await _send_in_order(producer, ROWS)
    assert sorted(r.id for r in published) == [2, 4, 5]
    assert sorted(r.id for r, _ in failed) == [1, 3, 6, 7]  # the whole batch: Kafka wrote none of it
    assert not {1, 3, 6, 7} & set(producer.sent)


async def test_a_partition_outgrowing_a_batch_sends_its_batches_one_after_another_and_stops_at_a_failure():
    producer = FlakyProducer(failing={3}, capacity=1)
    published, failed = await _send_in_order(producer, ROWS)
    assert [rows for _, partition, rows in producer.batches if partition == partition_of(A)] == [[1], [3]]
    assert sorted(r.id for r in published) == [1, 2, 4, 5]
    assert [r.id for r, _ in failed] == [3]  # 6 and 7 were not sent: the next round takes them, after 3
    assert 6 not in producer.sent and 7 not in producer.sent


async def test_an_aggregate_moving_to_another_topic_sends_only_the_rows_before_the_move():
    producer = FlakyProducer(topics=("t", "u"))
    rows = [row(1, A), row(2, A, topic="u"), row(3, A), row(4, B)]
    published, failed = await _send_in_order(producer, rows)
    assert sorted(r.id for r in published) == [1, 4] and failed == []  # 2 and 3 wait for the next round


async def test_rows_for_an_unknown_topic_fail_and_hold_back_their_aggregate_only():
    producer = FlakyProducer(topics=("t",))
    rows = [row(1, A, topic="missing"), row(2, A), row(3, B), row(4, C, topic="missing")]
    published, failed = await _send_in_order(producer, rows)
    assert [r.id for r in published] == [3]
    assert sorted(r.id for r, _ in failed) == [1, 4] and "unknown topic missing" in failed[0][1]
    assert 2 not in producer.sent
