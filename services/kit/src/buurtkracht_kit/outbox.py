"""The transactional outbox: events are rows written in the business transaction, published later by the relay.

Invariants:
- an event reaches Kafka only if the transaction that recorded it committed (it is a row in it);
- a row is deleted only after the broker acknowledged it (`acks=all`, idempotent producer), in the
  transaction that claimed it, so a relay that dies at any point publishes it again: at least once,
  never lost (consumers deduplicate by event id);
- one aggregate's events are published in the order they were committed: rows are read in `id`
  order, a failed row holds back the later rows of its aggregate, and only one relay per database
  publishes at a time (a PostgreSQL advisory lock), so concurrent relays cannot overtake each other.
  Writers of one aggregate are serialised by the lock on the aggregate's row, so `id` order is commit
  order per aggregate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope, model_for
from buurtkracht_contracts.event import DATACONTENTTYPE, SPECVERSION
from buurtkracht_contracts.kafka import binary_record

from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
RELAY_LOCK_KEY = 0x6275757274  # one relay per database publishes at a time


async def add(conn: asyncpg.Connection, envelopes: Sequence[Envelope]) -> None:
    """Insert event rows in the caller's transaction and wake the relay when it commits."""
    models = [model_for(envelope.type) for envelope in envelopes]
    await conn.execute(
        """
        INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at, payload)
        SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                             $7::timestamptz[], $8::jsonb[])
        """,
        [envelope.id for envelope in envelopes],
        [model.aggregate_type for model in models],
        [envelope.subject for envelope in envelopes],
        [envelope.type for envelope in envelopes],
        [model.topic for model in models],
        [envelope.source for envelope in envelopes],
        [envelope.time for envelope in envelopes],
        [envelope.data for envelope in envelopes],
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)


async def add_verbatim(
    conn: asyncpg.Connection,
    *,
    topic: str,
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    source: str,
    event_type: str,
) -> uuid.UUID:
    """Insert a record to be published byte for byte (a dead letter keeps the original record)."""
    row_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at,
                            payload, verbatim_value, verbatim_headers)
        VALUES ($1, 'verbatim', $2, $3, $4, $5, now(), 'null'::jsonb, $6, $7)
        """,
        row_id,
        (key or b"").decode("utf-8", "replace"),
        event_type,
        topic,
        source,
        value,
        [[name, header.hex()] for name, header in headers],
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return row_id


@dataclass(frozen=True)
class _Row:
    id: int
    aggregate_id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def _to_record(row: asyncpg.Record) -> _Row:
    if row["verbatim_value"] is not None:
        headers = [(name, bytes.fromhex(value)) for name, value in row["verbatim_headers"]]
        key = row["aggregate_id"].encode()
        return _Row(row["id"], row["aggregate_id"], row["topic"], key, row["verbatim_value"], headers)
    attributes = {
        "id": str(row["event_id"]),
        "source": row["source"],
        "type": row["event_type"],
        "specversion": SPECVERSION,
        "time": row["occurred_at"],
        "subject": row["aggregate_id"],
        "datacontenttype": DATACONTENTTYPE,
    }
    record = binary_record(attributes, row["payload"])
    return _Row(row["id"], row["aggregate_id"], row["topic"], record.key, record.value, record.headers)


def kafka_producer(client_options: dict[str, object]) -> AIOKafkaProducer:
    """An idempotent producer: every acknowledged record is on all in-sync replicas, written once per send."""
    return AIOKafkaProducer(
        **client_options,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=512 * 1024,
        request_timeout_ms=30_000,
    )


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in batches and deletes them once acknowledged."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer: AIOKafkaProducer,
        metrics: ServiceMetrics,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self.is_leader = False

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many rows were acknowledged (and deleted)."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                """
                SELECT id, event_id, aggregate_id, event_type, topic, source, occurred_at, payload::text AS payload,
                       verbatim_value, verbatim_headers
                FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                self._batch_size,
            )
            if not rows:
                return 0
            records = [_to_record(row) for row in rows]
            deliveries = [
                await self._producer.send(record.topic, record.value, key=record.key, headers=record.headers)
                for record in records
            ]
            outcomes = await asyncio.gather(*deliveries, return_exceptions=True)
            published, failed, held_back = _split(records, outcomes)
            if published:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", published)
            if failed:
                await conn.executemany(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1",
                    failed,
                )
        published_ids = set(published)
        for record in records:
            if record.id in published_ids:
                self._metrics.outbox_published.labels(record.topic).inc()
        if failed:
            self._metrics.outbox_publish_failures.inc(len(failed))
            logger.warning("outbox rows not acknowledged by Kafka", extra={"rows": len(failed), "held_back": held_back})
        return len(published)

    async def drain(self) -> int:
        """Publish until nothing committed is left (or publishing fails); returns rows published."""
        total = 0
        while count := await self.publish_batch():
            total += count
        return total

    def wake(self) -> None:
        self._wake.set()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        """Hold the relay lock, then publish whenever woken by a commit or the poll interval passes."""
        while not self._stopping.is_set():
            try:
                async with self._pool.acquire() as lock_conn:
                    if not await lock_conn.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LOCK_KEY):
                        await self._sleep(5 * self._poll_interval)
                        continue
                    self.is_leader = True
                    await lock_conn.add_listener(NOTIFY_CHANNEL, self._on_notify)
                    try:
                        await self._publish_loop()
                    finally:
                        self.is_leader = False
                        with contextlib.suppress(Exception):
                            await lock_conn.remove_listener(NOTIFY_CHANNEL, self._on_notify)
                            await lock_conn.execute("SELECT pg_advisory_unlock($1)", RELAY_LOCK_KEY)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                logger.error("outbox relay lost its database connection: %s", error)
                await self._sleep(self._poll_interval)

    async def _publish_loop(self) -> None:
        last_measured = 0.0
        while True:
            self._wake.clear()
            published = await self.drain()
            if time.monotonic() - last_measured > 5:
                await self._measure_backlog()
                last_measured = time.monotonic()
            if self._stopping.is_set():
                return
            if not published:
                await self._sleep(self._poll_interval)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _measure_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            backlog, oldest = await conn.fetchrow(
                "SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM outbox"
            )
        self._metrics.outbox_backlog.set(backlog)
        self._metrics.outbox_oldest_age.set(float(oldest or 0))


def _split(records: list[_Row], outcomes: list[object]) -> tuple[list[int], list[tuple[int, str]], int]:
    """Which rows to mark published and which failed; after a failure, later rows of that aggregate wait."""
    published: list[int] = []
    failed: list[tuple[int, str]] = []
    blocked: set[str] = set()
    held_back = 0
    for record, outcome in zip(records, outcomes, strict=True):
        if isinstance(outcome, BaseException):
            failed.append((record.id, f"{type(outcome).__name__}: {outcome}"[:1000]))
            blocked.add(record.aggregate_id)
        elif record.aggregate_id in blocked:
            held_back += 1
        else:
            published.append(record.id)
    return published, failed, held_back
