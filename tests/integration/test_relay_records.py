"""The relay's records are byte for byte the CloudEvents SDK's binary-mode records of the outbox rows, and read back
as the envelopes that were committed, each with its row's id as `sequence`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.event import DATACONTENTTYPE, SPECVERSION
from buurtkracht_contracts.kafka import binary_record, from_kafka
from buurtkracht_kit import migrations, outbox
from buurtkracht_kit.db import create_pool
from buurtkracht_kit.outbox import _FETCH, _to_record

from .kit_domain import MIGRATIONS, SOURCE, CounterIncremented

pytestmark = pytest.mark.integration

AMSTERDAM_SUMMER = timezone(timedelta(hours=2))
TIMES = [
    datetime(2026, 11, 30, 11, 22, 37, 123456, tzinfo=UTC),
    datetime(2026, 11, 30, 11, 22, 37, tzinfo=UTC),  # no fraction: isoformat() leaves it out
    datetime(2026, 6, 1, 0, 0, 0, 500, tzinfo=AMSTERDAM_SUMMER),  # stored as UTC, published as UTC
    datetime(1999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
]
COUNTERS = ["wallet-ascii", "wallet-ë-ünïcode-€", str(uuid.uuid4())]


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    pool = await create_pool(scratch_database, 1, 3)
    yield pool
    await pool.close()


def sdk_record(row) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """What the relay made of a row through the SDK: attributes from the row as asyncpg decodes them."""
    attributes = {
        "id": str(row["event_id"]),
        "source": row["source"],
        "type": row["event_type"],
        "specversion": SPECVERSION,
        "time": row["occurred_at"],
        "subject": row["aggregate_id"],
        "datacontenttype": DATACONTENTTYPE,
        "sequence": f"{row['id']:020d}",
    }
    record = binary_record(attributes, row["payload"])
    return record.key, record.value, record.headers


async def test_records_are_the_sdks_binary_records_and_read_back_as_the_committed_envelopes(pool):
    envelopes = [
        Envelope.wrap(CounterIncremented(counter_id=counter, amount=amount, sequence=n), SOURCE, time=time)
        for n, (counter, time, amount) in enumerate(
            (counter, time, amount) for counter in COUNTERS for time in TIMES for amount in (1, -(2**40))
        )
    ]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, envelopes)
    async with pool.acquire() as conn, conn.transaction():
        fetched = await conn.fetch(_FETCH, 1000, [], 0)
        plain = await conn.fetch("SELECT *, payload::text AS payload FROM outbox ORDER BY id")
    assert [row["id"] for row in fetched] == [row["id"] for row in plain] and len(fetched) == len(envelopes)
    sequences = []
    for row, reference, envelope in zip(fetched, plain, envelopes, strict=True):
        record = _to_record(row)
        assert (record.key, record.value, record.headers) == sdk_record(reference)
        read = from_kafka(record.key, record.value, record.headers)
        assert read == envelope.model_copy(update={"sequence": f"{row['id']:020d}"})
        sequences.append(read.sequence)
    assert sequences == sorted(sequences) and len(set(map(len, sequences))) == 1  # strings in commit order


async def test_a_dead_letter_goes_out_with_the_original_headers_and_no_sequence_of_its_own(pool):
    original = [("ce_id", b"not-a-uuid"), ("ce_sequence", b"00000000000000000003"), ("dlq_reason", None)]
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add_verbatim(
            conn, topic="vouchers.dlq", key=b"k", value=b"{}", headers=original, source=SOURCE, event_type="dead"
        )
    async with pool.acquire() as conn, conn.transaction():
        (row,) = [row for row in await conn.fetch(_FETCH, 1000, [], 0) if row["topic"] == "vouchers.dlq"]
        await conn.execute("DELETE FROM outbox WHERE id = $1", row["id"])
    assert _to_record(row).headers == original
