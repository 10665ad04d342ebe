"""Which outbox rows the relay may mark published after a partly failed batch."""

import pytest

from buurtkracht_kit.outbox import _Row, _split

pytestmark = pytest.mark.unit


def row(row_id, aggregate):
    return _Row(row_id, aggregate, "t", aggregate.encode(), b"{}", [])


def test_a_failed_row_holds_back_the_later_rows_of_its_aggregate_only():
    rows = [row(1, "a"), row(2, "b"), row(3, "a"), row(4, "b"), row(5, "c")]
    outcomes = [None, TimeoutError("broker"), None, None, None]
    published, failed, held_back = _split(rows, outcomes)
    assert published == [1, 3, 5]
    assert [row_id for row_id, _ in failed] == [2]
    assert held_back == 1


def test_all_acknowledged_rows_are_published():
    rows = [row(i, str(i % 3)) for i in range(1, 10)]
    assert _split(rows, [None] * 9) == (list(range(1, 10)), [], 0)
