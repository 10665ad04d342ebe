"""The chaos run's check of per-aggregate order finds events out of sequence, events without one, and aggregates
spread over partitions, and nothing in the redelivered copies a relay restart leaves on a topic."""

import pytest

from tests.chaos.order import OrderedRecord, out_of_order

pytestmark = pytest.mark.unit

TOPIC = "vouchers.events"
SOURCE = "urn:nld:oin:00000001002564440000:systeem:buurtkracht-vouchers"


def published(*events: tuple[str, int | None], partition: int = 0, first_offset: int = 0) -> list[OrderedRecord]:
    """Records of (key, sequence) at consecutive offsets of one partition; the event id is key and sequence."""
    return [
        OrderedRecord(
            topic=TOPIC,
            partition=partition,
            offset=first_offset + position,
            key=key,
            event_id=f"{key}-{sequence}",
            sequence=None if sequence is None else f"{sequence:020d}",
            source=SOURCE,
        )
        for position, (key, sequence) in enumerate(events)
    ]


def test_an_aggregate_in_order_has_no_finding():
    assert out_of_order(published(("wallet-1", 1), ("wallet-1", 2), ("wallet-1", 3))) == []


def test_a_batch_published_again_after_a_relay_restart_has_no_finding():
    batch = [("wallet-1", 1), ("wallet-1", 2), ("wallet-1", 3)]
    assert out_of_order(published(*batch, *batch)) == []


def test_a_later_event_before_an_earlier_one_is_one_finding():
    (finding,) = out_of_order(published(("wallet-1", 2), ("wallet-1", 1)))
    assert "wallet-1" in finding and "offset 1" in finding and "offset 0" in finding
    assert f"{1:020d}" in finding and f"{2:020d}" in finding


def test_one_aggregate_on_two_partitions_is_a_finding():
    records = published(("wallet-1", 1)) + published(("wallet-1", 2), partition=1)
    (finding,) = out_of_order(records)
    assert "wallet-1" in finding and "partition 0" in finding and "partition 1" in finding


def test_interleaved_aggregates_each_in_order_have_no_finding():
    records = published(("wallet-1", 1), ("wallet-2", 2), ("wallet-1", 4), ("wallet-2", 3), ("wallet-2", 5))
    assert out_of_order(records) == []


def test_records_are_taken_in_offset_order_whatever_order_they_come_in():
    assert out_of_order(reversed(published(("wallet-1", 1), ("wallet-1", 2)))) == []


def test_the_same_key_from_two_sources_is_two_aggregates():
    records = published(("wallet-1", 5), ("wallet-1", 1))
    other = records[1]._replace(source="urn:nld:oin:00000001002564440000:systeem:buurtkracht-initiatives")
    assert out_of_order([records[0], other]) == []


def test_a_record_without_a_sequence_is_a_finding():
    (finding,) = out_of_order(published(("wallet-1", 1), ("wallet-1", None), ("wallet-1", 3)))
    assert "no sequence" in finding and "offset 1" in finding
