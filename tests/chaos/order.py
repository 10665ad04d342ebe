"""Per-aggregate order on the event topics, as a consumer sees it: a pure check of records read back from Kafka.

Every event the relay publishes carries `ce_sequence`, its outbox row id zero-padded, so within one aggregate
(one producing service's events with one key on one topic) a later event has a larger sequence. A relay that
restarts after Kafka acknowledged a batch publishes that batch again, with the same event ids and sequences;
the consumer's inbox drops those copies, so only the first copy of an event id counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class OrderedRecord(NamedTuple):
    """One record of an event topic: where it is, and what the order check reads of its headers."""

    topic: str
    partition: int
    offset: int
    key: str
    event_id: str
    sequence: str | None  # `ce_sequence`, None when the record has none
    source: str  # `ce_source`: sequences of different producers are not comparable


def out_of_order(records: Iterable[OrderedRecord]) -> list[str]:
    """One line per violation of per-aggregate order; empty when there is none.

    Each partition is walked in offset order, as a consumer reads it, skipping a record whose event id was seen
    before (a copy the relay sent again after a restart). For every aggregate (topic, source, key) the sequences
    of those first copies must be strictly increasing; a record without a sequence is a violation ("no
    sequence"). An aggregate must also stay on one partition: every record counts for that, copies included.
    """
    partitions: dict[tuple[str, int], list[OrderedRecord]] = {}
    for record in records:
        partitions.setdefault((record.topic, record.partition), []).append(record)
    findings: list[str] = []
    seen: set[str] = set()
    homes: dict[tuple[str, str, str], dict[int, int]] = {}  # aggregate -> partition -> first offset there
    for (topic, partition), in_partition in sorted(partitions.items()):
        last: dict[tuple[str, str], tuple[int, str]] = {}  # (source, key) -> offset and sequence of its latest event
        for record in sorted(in_partition, key=lambda record: record.offset):
            homes.setdefault((topic, record.source, record.key), {}).setdefault(partition, record.offset)
            if record.event_id in seen:
                continue
            seen.add(record.event_id)
            where = f"{topic} partition {partition} key {record.key!r} (source {record.source})"
            if record.sequence is None:
                findings.append(f"{where}: offset {record.offset} (event {record.event_id}) has no sequence")
                continue
            before = last.get((record.source, record.key))
            if before is not None and record.sequence <= before[1]:
                findings.append(
                    f"{where}: offset {record.offset} has sequence {record.sequence}, not after offset "
                    f"{before[0]} with sequence {before[1]}"
                )
            else:
                last[(record.source, record.key)] = (record.offset, record.sequence)
    for (topic, source, key), offsets in sorted(homes.items()):
        if len(offsets) > 1:
            found = ", ".join(
                f"partition {partition} from offset {offset}" for partition, offset in sorted(offsets.items())
            )
            findings.append(f"{topic} key {key!r} (source {source}) is on {len(offsets)} partitions: {found}")
    return findings
