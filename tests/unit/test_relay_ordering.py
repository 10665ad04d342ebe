"""The relay sends an aggregate's events one after another, and a failure holds back only that aggregate."""

import asyncio

import pytest

from buurtkracht_kit.outbox import _Row, _send_in_order

pytestmark = pytest.mark.unit


class FlakyProducer:
    """Acknowledges every record except the ones named; remembers what reached 'Kafka' in which order."""

    def __init__(self, failing: set[int], raising: set[int] = frozenset()) -> None:
        self.failing, self.raising, self.sent = failing, raising, []

    async def send(self, topic, value, key=None, headers=None):
        row_id = int(value)
        if row_id in self.raising:
            raise ValueError("record too large")
        future = asyncio.get_running_loop().create_future()
        if row_id in self.failing:
            future.set_exception(TimeoutError("broker"))
        else:
            self.sent.append(row_id)
            future.set_result(None)
        return future


def row(row_id: int, aggregate: str) -> _Row:
    return _Row(row_id, aggregate, "t", aggregate.encode(), str(row_id).encode(), [])


ROWS = [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b"), row(5, "c"), row(6, "a")]


async def test_all_rows_are_sent_and_each_aggregate_in_order():
    producer = FlakyProducer(failing=set())
    published, failed = await _send_in_order(producer, ROWS)
    assert sorted(r.id for r in published) == [1, 2, 3, 4, 5, 6] and failed == []
    assert [i for i in producer.sent if i in (1, 3, 6)] == [1, 3, 6]


@pytest.mark.parametrize("failing, raising", [({2}, set()), (set(), {2})], ids=["not acknowledged", "send raises"])
async def test_a_failed_row_holds_back_the_later_rows_of_its_aggregate_only(failing, raising):
    producer = FlakyProducer(failing=failing, raising=raising)
    published, failed = await _send_in_order(producer, ROWS)
    assert sorted(r.id for r in published) == [1, 3, 5, 6]
    assert [r.id for r, _ in failed] == [2]
    assert 4 not in producer.sent, "a later event of the failed aggregate reached Kafka before the failed one"
