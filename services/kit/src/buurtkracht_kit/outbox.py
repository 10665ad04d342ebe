"""The transactional outbox: events are rows written in the business transaction, published later by the relay.

Invariants:
- an event reaches Kafka only if the transaction that recorded it committed (it is a row in it);
- a row is deleted only after the broker acknowledged it (`acks=all`, idempotent producer), in the
  transaction that claimed it, so a relay that dies at any point publishes it again: at least once,
  never lost (consumers deduplicate by event id);
- one aggregate's events are published in the order they were committed, also when sends fail: rows
  are read in `id` order, and an aggregate's rows go to one partition (the key is the aggregate id) in
  one Kafka record batch, which the broker writes or refuses as a whole; a partition's next batch is
  sent only after the previous one was acknowledged. A row that failed waits in backoff and holds back
  the later rows of its aggregate (and nothing else); and each batch runs under a transaction-scoped
  advisory lock, so relays of several replicas take turns and never overtake each other. Writers of one
  aggregate are serialised by the lock on the aggregate's row, so `id` order is commit order per aggregate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from buurtkracht_contracts import Envelope, model_for
from buurtkracht_contracts.event import DATACONTENTTYPE, SPECVERSION
from buurtkracht_contracts.kafka import binary_record

from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)

NOTIFY_CHANNEL = "outbox"
RELAY_LOCK_KEY = 0x6275757274  # one relay per database publishes a batch at a time
MAX_BACKOFF_SECONDS = 300


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
    value: bytes | None,
    headers: Sequence[tuple[str, bytes | None]],
    source: str,
    event_type: str,
) -> uuid.UUID:
    """Insert a record to be published byte for byte (a dead letter keeps the original record)."""
    row_id = uuid.uuid4()
    await conn.execute(
        """
        INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at,
                            payload, verbatim_key, verbatim_value, verbatim_headers)
        VALUES ($1, 'verbatim', $2, $3, $4, $5, now(), 'null'::jsonb, $6, $7, $8)
        """,
        row_id,
        (key or b"").decode("utf-8", "replace"),
        event_type,
        topic,
        source,
        key,
        value or b"",
        [[name, header.hex() if header is not None else None] for name, header in headers],
    )
    await conn.execute("SELECT pg_notify($1, '')", NOTIFY_CHANNEL)
    return row_id


@dataclass(frozen=True)
class _Row:
    id: int
    aggregate_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]


def _to_record(row: asyncpg.Record) -> _Row:
    if row["verbatim_value"] is not None:
        headers = [
            (name, bytes.fromhex(value) if value is not None else None) for name, value in row["verbatim_headers"]
        ]
        return _Row(row["id"], row["aggregate_id"], row["topic"], row["verbatim_key"], row["verbatim_value"], headers)
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
        linger_ms=0,  # the relay hands over whole record batches: lingering would only add latency
        max_batch_size=512 * 1024,  # one partition's share of a relay batch, usually in one record batch
        request_timeout_ms=30_000,
    )


ProducerFactory = Callable[[], AIOKafkaProducer]


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in batches and deletes them once acknowledged."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer_factory: ProducerFactory,
        metrics: ServiceMetrics,
        *,
        batch_size: int = 1000,
        poll_interval: float = 1.0,
    ) -> None:
        self._pool = pool
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    async def _started_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._producer_factory()
            await producer.start()
            self._producer = producer
        return self._producer

    async def _discard_producer(self) -> None:
        """After a failed send the producer may be unusable (a fatal idempotence error): start afresh."""
        producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def publish_batch(self) -> int:
        """Publish up to one batch; returns how many rows were acknowledged (and deleted)."""
        producer = await self._started_producer()
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                return 0  # another relay is publishing a batch of this database
            rows = await conn.fetch(
                """
                SELECT id, event_id, aggregate_id, event_type, topic, source, occurred_at, payload::text AS payload,
                       verbatim_key, verbatim_value, verbatim_headers
                FROM outbox o
                WHERE NOT EXISTS (SELECT 1 FROM outbox waiting
                                  WHERE waiting.retry_after > now() AND waiting.aggregate_id = o.aggregate_id
                                    AND waiting.id <= o.id)
                ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
                """,
                self._batch_size,
            )
            if not rows:
                return 0
            published, failed = await _send_in_order(producer, [_to_record(row) for row in rows])
            if published:
                await conn.execute("DELETE FROM outbox WHERE id = ANY($1::bigint[])", [r.id for r in published])
            if failed:
                await conn.executemany(
                    """
                    UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                        retry_after = now() + make_interval(secs => least($3::float8, 2 ^ attempts))
                    WHERE id = $1
                    """,
                    [(record.id, error, MAX_BACKOFF_SECONDS) for record, error in failed],
                )
        for record in published:
            self._metrics.outbox_published.labels(record.topic).inc()
        if published:
            self._metrics.outbox_last_publish.set_to_current_time()
        if failed:
            self._metrics.outbox_publish_failures.inc(len(failed))
            logger.warning("%d outbox rows not acknowledged by Kafka: %s", len(failed), failed[0][1])
            await self._discard_producer()
        return len(published)

    async def drain(self) -> int:
        """Publish until nothing publishable is left (or publishing fails); returns rows published."""
        total = 0
        while count := await self.publish_batch():
            total += count
        return total

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def close(self) -> None:
        await self._discard_producer()

    async def run(self) -> None:
        """Publish whenever a commit notifies or the poll interval passes, until stopped; then a last drain.

        Any failure (database or Kafka unreachable) is logged and retried with backoff: the relay never
        dies of it, and what is committed stays in the outbox until it is acknowledged.
        """
        backoff = self._poll_interval
        last_measured = 0.0
        while not self._stopping.is_set():
            try:
                async with self._pool.acquire() as listener:
                    await listener.add_listener(NOTIFY_CHANNEL, self._on_notify)
                    try:
                        while not self._stopping.is_set():
                            self._wake.clear()
                            published = await self.drain()
                            backoff = self._poll_interval
                            if time.monotonic() - last_measured > 5:
                                await self._measure_backlog()
                                last_measured = time.monotonic()
                            if not published:
                                await self._sleep(self._poll_interval)
                    finally:
                        with contextlib.suppress(Exception):
                            await listener.remove_listener(NOTIFY_CHANNEL, self._on_notify)
            except Exception as error:  # the relay must outlive any outage; it retries with backoff
                logger.error("outbox relay failed, retrying in %.1f s: %r", backoff, error)
                await self._discard_producer()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(backoff * 2, 30.0)
        with contextlib.suppress(Exception):
            await self.drain()  # publish what was committed while stopping
        await self._discard_producer()

    def _on_notify(self, *_: object) -> None:
        self._wake.set()

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


_PARTITIONER = DefaultPartitioner()  # murmur2 of the key, as `send(key=...)` and the Java client pick


async def _send_in_order(producer: AIOKafkaProducer, records: list[_Row]) -> tuple[list[_Row], list[tuple[_Row, str]]]:
    """Send the records as one Kafka record batch per partition (more when a partition's share outgrows the
    producer's batch size, sent one after another), every partition at once.

    A batch is acknowledged or fails as a whole. After a failed batch its partition sends nothing more in
    this round; an aggregate whose rows would go to a second partition or topic sends only the rows before
    that. Rows left out are neither published nor failed: the next round takes them, in order.
    Returns (acknowledged, failed).
    """
    groups: dict[tuple[str, int], list[_Row]] = {}
    home: dict[str, tuple[str, int]] = {}
    partitions: dict[str, list[int]] = {}
    unknown: dict[str, str] = {}  # topic -> why it has no partitions
    failed: list[tuple[_Row, str]] = []
    for record in records:
        if record.topic not in partitions and record.topic not in unknown:
            try:
                partitions[record.topic] = sorted(await producer.partitions_for(record.topic))
            except Exception as error:  # unknown topic, no metadata
                unknown[record.topic] = _describe(error)
        if record.topic in unknown:
            group = (record.topic, -1)
        else:
            key = record.key if record.key is not None else record.aggregate_id.encode()
            group = (record.topic, _PARTITIONER(key, partitions[record.topic], None))
        if home.setdefault(record.aggregate_id, group) != group:
            home[record.aggregate_id] = ("", -1)  # cut: this aggregate's later rows wait for the next round
        elif record.topic in unknown:
            failed.append((record, unknown[record.topic]))
        else:
            groups.setdefault(group, []).append(record)
    outcomes = await asyncio.gather(
        *(_send_partition(producer, topic, partition, rows) for (topic, partition), rows in groups.items())
    )
    published = [record for sent, _ in outcomes for record in sent]
    failed += [failure for _, failures in outcomes for failure in failures]
    return published, failed


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:1000]


async def _send_partition(
    producer: AIOKafkaProducer, topic: str, partition: int, records: list[_Row]
) -> tuple[list[_Row], list[tuple[_Row, str]]]:
    """One partition's records in record batches, each sent after the previous one was acknowledged."""
    published: list[_Row] = []
    pending = records
    while pending:
        batch, taken = producer.create_batch(), 0
        for record in pending:
            if batch.append(timestamp=None, key=record.key, value=record.value, headers=record.headers) is None:
                break
            taken += 1
        chunk, pending = pending[: max(taken, 1)], pending[max(taken, 1) :]
        try:
            if taken == 0:
                raise ValueError("the record does not fit in a record batch")
            await (await producer.send_batch(batch, topic, partition=partition))
        except Exception as error:  # not acknowledged, refused, too large, or a producer in a fatal state
            return published, [(record, _describe(error)) for record in chunk]
        published += chunk
    return published, []
