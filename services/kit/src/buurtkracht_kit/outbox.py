"""The transactional outbox: events are rows written in the business transaction, published later by the relay.

Invariants:
- an event reaches Kafka only if the transaction that recorded it committed (it is a row in it);
- a row is deleted only after the broker acknowledged it (`acks=all`, idempotent producer), in the
  transaction that claimed it, so a relay that dies at any point publishes it again: at least once,
  never lost (consumers deduplicate by event id);
- one aggregate's events are published in the order they were committed, also when sends fail: rows
  are read in `id` order, and an aggregate's rows go to one partition (the key is the aggregate id) in
  one Kafka record batch, which the broker writes or refuses as a whole; a partition's next batch is
  sent only after the previous one was acknowledged (a relay's batch goes out in chunks, a record batch
  per partition each; the next chunk is fetched while one is in flight, and sent only after it was
  acknowledged, without the rows of an aggregate left unpublished before). A row that failed waits in
  backoff and holds back the later rows of its aggregate (and nothing else); and each batch runs under a
  transaction-scoped advisory lock, so relays of several replicas take turns and never overtake each
  other. Writers of one aggregate are serialised by the lock on the aggregate's row, so `id` order is
  commit order per aggregate.

Nothing on the writers' commit path but the insert: no NOTIFY (a transaction that notifies holds a
database-wide lock through its WAL flush, so every notifying commit would wait for the one before). A
writer in the relay's own process wakes it after the commit (`wake_relays`); rows committed by any other
process are found by the relay's poll, a cheap probe every `poll_interval` seconds while it is idle.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import struct
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from typing import NamedTuple

import asyncpg
from aiokafka import AIOKafkaProducer
from opentelemetry.trace import Span

from buurtkracht_contracts import Envelope, model_for
from buurtkracht_contracts.event import DATACONTENTTYPE, SPECVERSION

from . import tracing
from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)

RELAY_LOCK_KEY = 0x6275757274  # one relay per database publishes a batch at a time
MAX_BACKOFF_SECONDS = 300


async def add(
    conn: asyncpg.Connection, envelopes: Sequence[Envelope], traceparents: Sequence[str | None] | None = None
) -> None:
    """Insert event rows in the caller's transaction. After its commit the caller calls `wake_relays()` (the unit
    of work does); without that, the relay's poll finds the rows. Each row keeps the `traceparent` of the span that
    recorded its event (`traceparents`, one per envelope; by default the current span's), while tracing is on."""
    models = [model_for(envelope.type) for envelope in envelopes]
    if traceparents is None and tracing.enabled():
        traceparents = [tracing.current_traceparent()] * len(envelopes)
    await conn.execute(
        _INSERT if traceparents is None else _INSERT_TRACED,
        [envelope.id for envelope in envelopes],
        [model.aggregate_type for model in models],
        [envelope.subject for envelope in envelopes],
        [envelope.type for envelope in envelopes],
        [model.topic for model in models],
        [envelope.source for envelope in envelopes],
        [envelope.time for envelope in envelopes],
        [envelope.data for envelope in envelopes],
        *([] if traceparents is None else [list(traceparents)]),
    )


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
    return row_id


_INSERT = """
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at, payload)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::jsonb[])
"""
# the same, every row with the `traceparent` of the span that recorded it
_INSERT_TRACED = """
    INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at, payload,
                        traceparent)
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::jsonb[], $9::text[])
"""

_running: weakref.WeakSet[OutboxRelay] = weakref.WeakSet()
_running_lock = threading.Lock()


def wake_relays() -> None:
    """Outbox rows were just committed in this process: its running relays publish them now instead of at their
    next poll. Safe from any thread; a relay in another process finds the rows by polling."""
    with _running_lock:
        relays = tuple(_running)
    for relay in relays:
        relay.wake()


class _Row(NamedTuple):
    id: int
    aggregate_id: str
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes | None]]
    traceparent: str | None = None  # of the span that recorded the row; the relay adds the record's header


_SPECVERSION_HEADER = ("ce_specversion", SPECVERSION.encode())
_CONTENT_TYPE_HEADER = ("content-type", DATACONTENTTYPE.encode())


def _to_record(row: asyncpg.Record) -> _Row:
    """The Kafka record of an outbox row as `_FETCH` reads it: byte for byte what
    `buurtkracht_contracts.kafka.binary_record` makes of the row's attributes and data (a binary-mode CloudEvent
    keyed by its subject), with the attribute values encoded by PostgreSQL and without the SDK's per-event
    validation, which the envelope passed when the row was written. The attributes include the CloudEvents
    `sequence` extension, the row's id zero-padded to 20 digits: id order is commit order within an aggregate, so
    a later event of an aggregate has a larger sequence. Verbatim rows go out as they were stored."""
    row_id, aggregate_id, topic, ce_id, ce_source, ce_type, ce_time, key, data, *verbatim = row
    verbatim_key, verbatim_value, verbatim_headers, traceparent = verbatim
    if verbatim_value is not None:
        headers = [(name, bytes.fromhex(value) if value is not None else None) for name, value in verbatim_headers]
        return _Row(row_id, aggregate_id, topic, verbatim_key, verbatim_value, headers)
    headers = [
        ("ce_id", ce_id),
        ("ce_source", ce_source),
        ("ce_type", ce_type),
        _SPECVERSION_HEADER,
        ("ce_time", ce_time),
        ("ce_subject", key),
        _CONTENT_TYPE_HEADER,
        ("ce_sequence", b"%020d" % row_id),
    ]
    return _Row(row_id, aggregate_id, topic, key, data, headers, traceparent)


def kafka_producer(client_options: dict[str, object]) -> AIOKafkaProducer:
    """An idempotent producer: every acknowledged record is on all in-sync replicas, written once per send."""
    return AIOKafkaProducer(
        **client_options,
        acks="all",
        enable_idempotence=True,
        linger_ms=0,  # the relay hands over whole record batches: lingering would only add latency
        # one partition's share of a chunk in one record batch, under Kafka's default limit (message.max.bytes, ~1 MiB)
        max_batch_size=1024 * 1024 - 64 * 1024,
        request_timeout_ms=30_000,
    )


ProducerFactory = Callable[[], AIOKafkaProducer]

# A chunk of rows in `id` order, none behind a row of its aggregate that waits in backoff, and none of those the batch
# already fetched and still holds ($2; $3 is the largest id it fetched). The CloudEvent attributes come as the bytes
# of their headers, `ce_time` as Python's `isoformat()` writes a UTC time, with `Z` for +00:00; `ce_sequence` is
# formatted from the id by `_to_record`.
_FETCH = """
    SELECT id, aggregate_id, topic,  -- in the order `_to_record` unpacks them
           convert_to(event_id::text, 'UTF8') AS ce_id,
           convert_to(source, 'UTF8') AS ce_source,
           convert_to(event_type, 'UTF8') AS ce_type,
           convert_to(to_char(occurred_at AT TIME ZONE 'UTC',
                              CASE WHEN date_trunc('second', occurred_at) = occurred_at
                                   THEN 'YYYY-MM-DD"T"HH24:MI:SS"Z"' ELSE 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' END),
                      'UTF8') AS ce_time,
           convert_to(aggregate_id, 'UTF8') AS subject,
           convert_to(payload::text, 'UTF8') AS data,
           verbatim_key, verbatim_value, verbatim_headers, traceparent
    FROM outbox o
    WHERE (o.id > $3 OR o.id <> ALL($2::bigint[]))
      AND NOT EXISTS (SELECT 1 FROM outbox waiting
                      WHERE waiting.retry_after > now() AND waiting.aggregate_id = o.aggregate_id
                        AND waiting.id <= o.id)
    ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED
"""

_DELETE = "DELETE FROM outbox WHERE id = ANY($1::bigint[])"

_BACK_OFF = """
    UPDATE outbox SET attempts = attempts + 1, last_error = $2,
        retry_after = now() + make_interval(secs => least($3::float8, 2 ^ attempts))
    WHERE id = $1
"""

CHUNK_ROWS = 1000  # rows sent at once (a record batch per partition); the next chunk is fetched meanwhile

# The first row a batch would take, if any: with an empty outbox one descent of the primary key's index.
_PROBE = """
    SELECT id FROM outbox o
    WHERE NOT EXISTS (SELECT 1 FROM outbox waiting
                      WHERE waiting.retry_after > now() AND waiting.aggregate_id = o.aggregate_id
                        AND waiting.id <= o.id)
    ORDER BY id LIMIT 1
"""


class OutboxRelay:
    """Publishes committed outbox rows to Kafka in batches and deletes them once acknowledged.

    Running, it publishes at once when a commit of its process calls `wake_relays` (or `wake`), and otherwise
    probes the outbox every `poll_interval` seconds for rows other processes committed.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        producer_factory: ProducerFactory,
        metrics: ServiceMetrics,
        *,
        batch_size: int = 5000,
        poll_interval: float = 0.05,
    ) -> None:
        self._pool = pool
        self._producer_factory = producer_factory
        self._producer: AIOKafkaProducer | None = None
        self._metrics = metrics
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

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
        """Publish up to one batch (`batch_size` rows, one transaction); returns how many rows were acknowledged (and
        deleted).

        The batch goes to Kafka in chunks of up to `CHUNK_ROWS` rows. While one chunk is in flight, the rows of the
        one before are deleted and the next one is fetched; a chunk is sent only after the one before it was
        acknowledged, and without the rows of any aggregate that has a row left unpublished in this batch (failed,
        or cut by `_send_in_order`). A failed chunk ends the batch.
        """
        producer = await self._started_producer()
        published: collections.Counter[str] = collections.Counter()  # acknowledged rows per topic
        failed: list[tuple[_Row, str]] = []
        async with self._pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", RELAY_LOCK_KEY):
                return 0  # another relay is publishing a batch of this database
            wanted = min(self._batch_size, CHUNK_ROWS)
            rows = await conn.fetch(_FETCH, wanted, [], 0)
            fetched, more, highest = len(rows), len(rows) == wanted, max((row["id"] for row in rows), default=0)
            chunk = [_to_record(row) for row in rows]
            held: set[str] = set()  # aggregates with a row left unpublished: their later rows wait for the next batch
            passed_over: list[int] = []  # rows of this batch left unpublished: not fetched again
            acknowledged: list[int] = []  # acknowledged, not yet deleted
            while chunk:
                sending = asyncio.ensure_future(_send_in_order(producer, chunk))
                try:
                    if acknowledged:
                        await conn.execute(_DELETE, acknowledged)
                        acknowledged = []
                    following: list[_Row] = []
                    if more and fetched < self._batch_size:
                        wanted = min(self._batch_size - fetched, CHUNK_ROWS)
                        seen = [record.id for record in chunk] + passed_over
                        rows = await conn.fetch(_FETCH, wanted, seen, highest)
                        fetched, more = fetched + len(rows), len(rows) == wanted
                        highest = max((row["id"] for row in rows), default=highest)
                        following = [_to_record(row) for row in rows]
                except BaseException:  # the batch rolls back: whatever the chunk in flight reaches, is sent again
                    sending.cancel()
                    await asyncio.gather(sending, return_exceptions=True)
                    raise
                sent, refused = await sending
                published.update(record.topic for record in sent)
                acknowledged += [record.id for record in sent]
                if refused:
                    failed += refused
                    break
                if len(sent) < len(chunk):
                    sent_ids = {record.id for record in sent}
                    left = [record for record in chunk if record.id not in sent_ids]
                    held.update(record.aggregate_id for record in left)
                    passed_over += [record.id for record in left]
                chunk = []
                for record in following:
                    if record.aggregate_id in held:
                        passed_over.append(record.id)
                    else:
                        chunk.append(record)
            if acknowledged:
                await conn.execute(_DELETE, acknowledged)
            if failed:
                await conn.executemany(_BACK_OFF, [(record.id, error, MAX_BACKOFF_SECONDS) for record, error in failed])
        for topic, count in published.items():
            self._metrics.outbox_published.labels(topic).inc(count)
        if published:
            self._metrics.outbox_last_publish.set_to_current_time()
        if failed:
            self._metrics.outbox_publish_failures.inc(len(failed))
            logger.warning("%d outbox rows not acknowledged by Kafka: %s", len(failed), failed[0][1])
            await self._discard_producer()
        return published.total()

    async def drain(self) -> int:
        """Publish until nothing publishable is left (or publishing fails); returns rows published."""
        total = 0
        while count := await self.publish_batch():
            total += count
        return total

    def wake(self) -> None:
        """Publish now rather than at the next poll; safe from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._wake.set()
            return
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def close(self) -> None:
        await self._discard_producer()

    async def run(self) -> None:
        """Publish whenever a commit of this process wakes the relay or the poll finds rows, until stopped; then a
        last drain.

        Any failure (database or Kafka unreachable) is logged and retried with backoff: the relay never
        dies of it, and what is committed stays in the outbox until it is acknowledged.
        """
        self._loop = asyncio.get_running_loop()
        with _running_lock:
            _running.add(self)
        try:
            await self._publish_until_stopped()
        finally:
            with _running_lock:
                _running.discard(self)
        with contextlib.suppress(Exception):
            await self.drain()  # publish what was committed while stopping
        await self._discard_producer()

    async def _publish_until_stopped(self) -> None:
        backoff = self._poll_interval
        last_measured = 0.0
        while not self._stopping.is_set():
            try:
                self._wake.clear()  # a wake from here on (a commit during the drain) makes the next round start at once
                published = await self.drain()
                backoff = self._poll_interval
                if time.monotonic() - last_measured > 5:
                    await self._measure_backlog()
                    last_measured = time.monotonic()
                if not published:
                    await self._idle()
            except Exception as error:  # the relay must outlive any outage; it retries with backoff
                logger.error("outbox relay failed, retrying in %.1f s: %r", backoff, error)
                await self._discard_producer()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                backoff = min(max(backoff, 0.5) * 2, 30.0)

    async def _idle(self) -> None:
        """Wait until woken, or until a poll finds a row a batch would take."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._poll_interval)
                return
            if await self._pool.fetchval(_PROBE) is not None:
                return

    async def _measure_backlog(self) -> None:
        async with self._pool.acquire() as conn:
            backlog, oldest = await conn.fetchrow(
                "SELECT count(*), extract(epoch FROM now() - min(created_at)) FROM outbox"
            )
        self._metrics.outbox_backlog.set(backlog)
        self._metrics.outbox_oldest_age.set(float(oldest or 0))


_WORD = struct.Struct("<I")
_hashes: dict[bytes, int] = {}  # key -> murmur2 & 0x7FFFFFFF, for the keys seen lately
_HASHES_KEPT = 100_000


def _murmur2(key: bytes) -> int:
    """Kafka's murmur2 of a key (as aiokafka's `DefaultPartitioner` and the Java client compute it), non-negative."""
    m = 0x5BD1E995
    length = len(key)
    whole = length & ~3
    h = 0x9747B28C ^ length
    for (k,) in _WORD.iter_unpack(key[:whole]):
        k = (k * m) & 0xFFFFFFFF
        k = ((k ^ (k >> 24)) * m) & 0xFFFFFFFF
        h = ((h * m) & 0xFFFFFFFF) ^ k
    extra = length & 3
    if extra:
        if extra == 3:
            h ^= key[whole + 2] << 16
        if extra >= 2:
            h ^= key[whole + 1] << 8
        h = ((h ^ key[whole]) * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h & 0x7FFFFFFF


def _partition(key: bytes, partitions: list[int]) -> int:
    """The partition `send(key=...)` would pick: murmur2 of the key modulo the sorted partitions."""
    hashed = _hashes.get(key)
    if hashed is None:
        if len(_hashes) >= _HASHES_KEPT:
            _hashes.clear()
        hashed = _hashes[key] = _murmur2(key)
    return partitions[hashed % len(partitions)]


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
            group = (record.topic, _partition(key, partitions[record.topic]))
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
            if batch.append(timestamp=None, key=record.key, value=record.value, headers=_headers(record)) is None:
                break
            taken += 1
        chunk, pending = pending[: max(taken, 1)], pending[max(taken, 1) :]
        span = _publish_span(topic, partition, chunk[:taken])
        try:
            if taken == 0:
                raise ValueError("the record does not fit in a record batch")
            await (await producer.send_batch(batch, topic, partition=partition))
        except Exception as error:  # not acknowledged, refused, too large, or a producer in a fatal state
            if span is not None:
                tracing.fail(span, _describe(error))
                span.end()
            return published, [(record, _describe(error)) for record in chunk]
        if span is not None:
            span.end()
        published += chunk
    return published, []


def _headers(record: _Row) -> list[tuple[str, bytes | None]]:
    """The record's headers; a row recorded while tracing was on also carries the `traceparent` it was recorded
    with, the context its event was created in, which consumers continue (sampled or not, as it was decided)."""
    if record.traceparent is None:
        return record.headers
    return [*record.headers, (tracing.TRACEPARENT, record.traceparent.encode())]


def _publish_span(topic: str, partition: int, records: list[_Row]) -> Span | None:
    """One PRODUCER span for a record batch, from send to acknowledgement: in the trace of its first sampled record,
    linked to the others' (OpenTelemetry's messaging conventions for a batch sent at once). None when tracing is
    off or no record is of a sampled trace; the caller ends it."""
    if not tracing.enabled():
        return None
    return tracing.batch_span(
        [record.traceparent for record in records],
        f"{topic} publish",
        tracing.SpanKind.PRODUCER,
        {
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "messaging.destination.partition.id": str(partition),
            "messaging.batch.message_count": len(records),
        },
    )
