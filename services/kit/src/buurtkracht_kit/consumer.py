"""The idempotent consumer: each Kafka message takes effect at most once per consumer group, and a
message that cannot take effect is parked on the group's dead-letter topic, once.

Messages are applied one at a time (`consume`) or as a batch: the next records of one partition
(`consume_batch`), applied together in one transaction — their inbox rows inserted in one statement,
the handlers run in offset order on the same unit of work (the events they record go to the outbox
together), one commit. When anything in a batch fails (a handler raises, the database errs, the batch
takes longer than a handler may), the batch is rolled back and its messages go through the one-at-a-time
path, so attempts, marks and dead letters are exactly those of that path.

Invariants:
- the inbox row (`INSERT ... ON CONFLICT DO NOTHING RETURNING`) and the handler's effects commit in
  one transaction (a message's own, or its batch's): a redelivered message, or a batch delivered again,
  finds its rows and changes nothing; a message twice in one batch takes effect once;
- the offset is committed only after that transaction (see `offsets`; an exception that escapes
  rewinds the partition to the first message not applied, so nothing behind it is committed past it);
- a message whose handler fails `max_attempts` times (attempts counted in the database, across
  restarts; a handler that hangs past its timeout fails; an attempt during which the process died
  counts too), or that is not a valid event at all, is dead-lettered: the inbox row marked
  `dead_lettered` and the original record put in the outbox for the dead-letter topic, in one
  transaction; the partition then moves on. A redelivery after that is a duplicate, so the dead
  letter is written once.
- a message that kills the process (out of memory, a crash in native code) cannot loop for ever: until
  a partition has had a message processed since this process got it, each attempt there is first
  marked `in_progress` in the database. After a restart the message that killed the process is the
  first one not yet processed on its partition, so it is marked, and a mark it finds from the attempt
  before counts as a failed attempt. A batch is applied only on a partition that has had a message
  processed, and its messages are first marked as being in a batch (a mark that is not an attempt:
  dying in a batch counts no more than dying outside one does). A message that finds a row of an
  earlier attempt or batch when its batch is marked sends that batch the one-at-a-time way, itself
  marked: after a death in a batch, the message that killed the process is marked before it runs again,
  as after a death outside one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import asyncpg
from opentelemetry import context as otel_context
from opentelemetry import trace

from buurtkracht_contracts import Envelope, Event, parse
from buurtkracht_contracts.kafka import from_kafka
from buurtkracht_contracts.registry import current_type
from buurtkracht_contracts.topics import dead_letter_topic

from . import outbox, tracing
from .db import UnitOfWork
from .logs import event_context
from .metrics import ServiceMetrics

logger = logging.getLogger(__name__)

Outcome = Literal["processed", "duplicate", "ignored", "dead_lettered"]
Handler = Callable[[UnitOfWork, Event, Envelope], Awaitable[None]]

TookEffect = Callable[["Record"], Awaitable[None]]
IN_A_BATCH = "in a batch that did not finish"  # `last_error` of a batch mark (attempts 0, not in progress)


class Record(Protocol):
    """What the consumer needs of a Kafka record (aiokafka's `ConsumerRecord` has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] | list[tuple[str, bytes]]


class EventConsumer:
    """Applies consumed events through `handlers`, keyed by event model; other event types are ignored."""

    def __init__(
        self,
        group: str,
        pool: asyncpg.Pool,
        source: str,
        metrics: ServiceMetrics,
        handlers: Mapping[type[Event], Handler],
        *,
        max_attempts: int = 5,
        backoff_seconds: float = 0.2,
        handler_timeout_seconds: float = 30.0,
        unit_of_work: Callable[[], UnitOfWork] | None = None,
    ) -> None:
        self.group = group
        self.dead_letter_topic = dead_letter_topic(group)
        self._pool = pool
        self._source = source
        self._metrics = metrics
        self._handlers = {model.event_type: handler for model, handler in handlers.items()}
        self._max_attempts = max_attempts
        self._backoff = backoff_seconds
        self._handler_timeout = handler_timeout_seconds
        self._unit_of_work = unit_of_work or (lambda: UnitOfWork(pool, source))
        self._confirmed: set[tuple[str, int]] = set()  # partitions with a message processed by this process
        self._interrupted: set[str] = set()  # messages this process gave up on for an outage, not a crash
        metrics.dead_letters.labels(group)  # the series from 0: the first dead letter is an increase Prometheus sees

    async def consume_batch(self, records: Sequence[Record], took_effect: TookEffect | None = None) -> list[Outcome]:
        """Apply `records`, the next records of one partition in offset order; returns their outcomes in order.

        Until the partition has had a message processed by this process its records go one at a time, each
        attempt marked; then the rest are applied together. `took_effect(record)` is awaited once a record
        and those before it took effect (committed or parked); an exception that escapes (the database away
        for long, a cancellation) leaves the partition to be rewound to the record after that one."""
        took_effect = took_effect or _nothing
        outcomes: list[Outcome] = []
        position = 0
        while position < len(records) and _partition(records[position]) not in self._confirmed:
            outcomes.append(await self.consume(records[position]))
            await took_effect(records[position])
            position += 1
        rest = records[position:]
        if len(rest) == 1:
            outcomes.append(await self.consume(rest[0]))
            await took_effect(rest[0])
        elif rest:
            outcomes += await self._consume_together(rest, took_effect)
        return outcomes

    async def _consume_together(self, records: Sequence[Record], took_effect: TookEffect) -> list[Outcome]:
        messages: list[_Message] = []
        for record in records:
            try:
                headers, traceparent = _event_headers(record)
                envelope = from_kafka(record.key, record.value or b"", headers)
                handler = self._handlers.get(current_type(envelope.type))
                event = parse(envelope) if handler is not None else None
            except Exception:  # unreadable or invalid: the one-at-a-time path parks it, in its place
                return await self._one_at_a_time(records, took_effect)
            messages.append(_Message(record, str(envelope.id), envelope, handler, event, traceparent))
        applicable = [message for message in messages if message.handler is not None]
        if len(applicable) < 2:
            return await self._one_at_a_time(records, took_effect)
        message_ids = list(dict.fromkeys(message.message_id for message in applicable))
        try:
            earlier = await self._mark_batch(message_ids)
            if not earlier:
                async with asyncio.timeout(self._handler_timeout), _BatchSpans(applicable) as traced:
                    outcomes = await self._apply_together(messages, message_ids, traced)
        except Exception as error:  # anything at all: the one-at-a-time path counts, retries and parks
            logger.warning(
                "batch of %d messages (%s to %s) rolled back, applying them one at a time: %r",
                len(records),
                messages[0].message_id,
                messages[-1].message_id,
                error,
            )
            return await self._one_at_a_time(records, took_effect)
        if earlier:
            return await self._one_at_a_time(records, took_effect, marked=earlier)
        self._confirmed.add(_partition(records[0]))
        self._interrupted.difference_update(message_ids)
        for message, outcome in zip(messages, outcomes, strict=True):
            self._count(message.envelope.type, outcome)
        await took_effect(records[-1])
        return outcomes

    async def _one_at_a_time(
        self, records: Sequence[Record], took_effect: TookEffect, marked: frozenset[str] = frozenset()
    ) -> list[Outcome]:
        outcomes: list[Outcome] = []
        for record in records:
            outcomes.append(await self.consume(record, marked=marked))
            await took_effect(record)
        return outcomes

    async def _mark_batch(self, message_ids: list[str]) -> frozenset[str]:
        """Mark the messages of a batch about to be applied; returns those that had a row of an earlier attempt
        or batch already (their own marks are left as they are)."""
        async with self._pool.acquire() as conn:
            fresh = await conn.fetch(
                """
                INSERT INTO consumer_failures (consumer, message_id, attempts, last_error, in_progress)
                SELECT $1, message_id, 0, $3, false FROM unnest($2::text[]) AS batch(message_id)
                ON CONFLICT (consumer, message_id) DO NOTHING
                RETURNING message_id
                """,
                self.group,
                message_ids,
                IN_A_BATCH,
            )
        return frozenset(message_ids) - {row["message_id"] for row in fresh}

    async def _apply_together(
        self, messages: list[_Message], message_ids: list[str], traced: _BatchSpans
    ) -> list[Outcome]:
        """One transaction: every inbox row, the handlers of the messages new to the inbox in offset order, the
        batch's marks removed. Raises whatever a handler raises, with nothing committed."""
        event_types = {message.message_id: message.envelope.type for message in reversed(messages)}
        async with self._unit_of_work() as uow:
            arguments = [self.group, message_ids, [event_types[message_id] for message_id in message_ids]]
            if traced.traceparents:  # each inbox row with the trace context of its message's span
                arguments.append([traced.traceparents.get(message_id) for message_id in message_ids])
            statement = _INBOX_BATCH_TRACED if traced.traceparents else _INBOX_BATCH
            inserted = await uow.connection.fetch(statement, *arguments)
            first_time = {row["message_id"] for row in inserted}
            outcomes: list[Outcome] = []
            for message in messages:
                if message.handler is None:
                    outcomes.append("ignored")
                elif message.message_id in first_time:
                    first_time.discard(message.message_id)  # the same message again in this batch is a duplicate
                    with event_context(message.message_id, message.envelope.type), traced.current(message):
                        await message.handler(uow, message.event, message.envelope)  # type: ignore[arg-type]
                    outcomes.append("processed")
                else:
                    outcomes.append("duplicate")
            await uow.connection.execute(
                "DELETE FROM consumer_failures WHERE consumer = $1 AND message_id = ANY($2::text[])",
                self.group,
                message_ids,
            )
            await uow.commit()
        return outcomes

    async def consume(self, record: Record, *, marked: frozenset[str] = frozenset()) -> Outcome:
        """Apply one record. Its attempts are marked in progress while its partition has had no message processed
        by this process, or when its id is in `marked`."""
        headers, traceparent = _event_headers(record)
        fallback_id = f"{record.topic}:{record.partition}:{record.offset}"
        try:
            envelope = from_kafka(record.key, record.value or b"", headers)
        except Exception as error:  # anything unreadable is parked, whatever the parser raised
            message_id = _header(record, "ce_id") or fallback_id
            with event_context(message_id), _processing(record, traceparent):
                logger.error("unreadable message: %s", error)
                return await self._dead_letter(record, message_id, "unknown", error, attempts=1)

        message_id = str(envelope.id)
        with event_context(message_id, envelope.type):
            handler = self._handlers.get(current_type(envelope.type))
            if handler is None:  # not for us (or of a type newer than our contracts): no effect, no parking, no span
                self._count(envelope.type, "ignored")
                return "ignored"
            with _processing(record, traceparent):
                try:
                    event = parse(envelope)
                except Exception as error:  # a type we handle, with data we cannot read
                    logger.error("invalid event data: %s", error)
                    return await self._dead_letter(record, message_id, envelope.type, error, attempts=1)
                mark = message_id in marked
                return await self._apply_with_retries(record, handler, envelope, event, message_id, mark=mark)

    async def _apply_with_retries(
        self, record: Record, handler: Handler, envelope: Envelope, event: Event, message_id: str, *, mark: bool
    ) -> Outcome:
        """Failures of the handler are counted in the database and end in the dead-letter topic; failures
        of the infrastructure (the database unreachable, a deadlock) are retried without counting, and
        after a while raised, so the message is redelivered instead of committed."""
        partition = _partition(record)
        outages = 0
        while True:
            try:
                if (mark or partition not in self._confirmed) and outages == 0:
                    unfinished = await self._begin_attempt(message_id)
                    if unfinished >= self._max_attempts:
                        error = ProcessDied(f"the process stopped while applying it, {unfinished} time(s)")
                        return await self._dead_letter(record, message_id, envelope.type, error, unfinished)
                async with asyncio.timeout(self._handler_timeout):
                    outcome = await self._apply(handler, envelope, event, message_id)
                if outcome == "processed":
                    self._confirmed.add(partition)
                self._interrupted.discard(message_id)
                return outcome
            except Exception as error:
                if _is_infrastructure(error):
                    outages += 1
                    logger.warning("infrastructure failure %d while applying: %r", outages, error)
                    await asyncio.sleep(min(5.0, self._backoff * 2**outages))
                    if outages >= 6:
                        self._interrupted.add(message_id)  # its mark is not a crash when it comes again
                        raise  # not this message's fault: rewind the partition and try again later
                    continue
                attempts = await self._record_failure(message_id, error)
                self._metrics.handler_failures.labels(self.group, envelope.type).inc()
                logger.warning("attempt %d of %d failed: %r", attempts, self._max_attempts, error)
                if attempts >= self._max_attempts:
                    return await self._dead_letter(record, message_id, envelope.type, error, attempts)
                await asyncio.sleep(self._backoff * 2 ** (attempts - 1))

    async def _begin_attempt(self, message_id: str) -> int:
        """Mark an attempt as in progress; an earlier mark still there counts as a failed attempt (the
        process applying it died), unless this process itself gave it up. Returns the failed attempts."""
        async with self._pool.acquire() as conn:
            return await conn.fetchval(
                """
                INSERT INTO consumer_failures (consumer, message_id, attempts, last_error, in_progress)
                VALUES ($1, $2, 0, '', true)
                ON CONFLICT (consumer, message_id) DO UPDATE SET
                  attempts = consumer_failures.attempts + (consumer_failures.in_progress AND $3)::int,
                  last_error = CASE WHEN consumer_failures.in_progress AND $3 THEN $4
                               ELSE consumer_failures.last_error END,
                  last_failed_at = CASE WHEN consumer_failures.in_progress AND $3 THEN now()
                                   ELSE consumer_failures.last_failed_at END,
                  in_progress = true
                RETURNING attempts
                """,
                self.group,
                message_id,
                message_id not in self._interrupted,
                "ProcessDied: the process stopped while applying it",
            )

    async def _apply(self, handler: Handler, envelope: Envelope, event: Event, message_id: str) -> Outcome:
        traceparent = tracing.current_traceparent()
        async with self._unit_of_work() as uow:
            first_time = await uow.connection.fetchval(
                """
                INSERT INTO inbox (consumer, message_id, event_type, outcome, traceparent)
                VALUES ($1, $2, $3, 'processed', $4)
                ON CONFLICT DO NOTHING RETURNING true
                """,
                self.group,
                message_id,
                envelope.type,
                traceparent,
            )
            if not first_time:
                await uow.connection.execute(  # an attempt mark of this redelivery
                    "DELETE FROM consumer_failures WHERE consumer = $1 AND message_id = $2", self.group, message_id
                )
                await uow.commit()
                self._count(envelope.type, "duplicate")
                return "duplicate"
            await handler(uow, event, envelope)
            await uow.connection.execute(
                "DELETE FROM consumer_failures WHERE consumer = $1 AND message_id = $2", self.group, message_id
            )
            await uow.commit()
        self._count(envelope.type, "processed")
        return "processed"

    async def _record_failure(self, message_id: str, error: BaseException) -> int:
        async with self._pool.acquire() as conn:
            return await conn.fetchval(
                """
                INSERT INTO consumer_failures (consumer, message_id, attempts, last_error) VALUES ($1, $2, 1, $3)
                ON CONFLICT (consumer, message_id) DO UPDATE
                  SET attempts = consumer_failures.attempts + 1, last_error = $3, last_failed_at = now(),
                      in_progress = false
                RETURNING attempts
                """,
                self.group,
                message_id,
                _describe(error),
            )

    async def _dead_letter(
        self, record: Record, message_id: str, event_type: str, error: BaseException, attempts: int
    ) -> Outcome:
        headers: list[tuple[str, bytes | None]] = [
            (name, value) for name, value in record.headers if not name.startswith("dlq_")
        ]
        headers += [
            ("dlq_consumer_group", self.group.encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_error", _describe(error).encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        async with self._pool.acquire() as conn, conn.transaction():
            first_time = await conn.fetchval(
                """
                INSERT INTO inbox (consumer, message_id, event_type, outcome) VALUES ($1, $2, $3, 'dead_lettered')
                ON CONFLICT DO NOTHING RETURNING true
                """,
                self.group,
                message_id,
                event_type,
            )
            if not first_time:
                self._count(event_type, "duplicate")
                return "duplicate"
            await outbox.add_verbatim(
                conn,
                topic=self.dead_letter_topic,
                key=record.key,
                value=record.value or b"",
                headers=headers,
                source=self._source,
                event_type=event_type,
            )
            await conn.execute(
                "DELETE FROM consumer_failures WHERE consumer = $1 AND message_id = $2", self.group, message_id
            )
        outbox.wake_relays()
        self._metrics.dead_letters.labels(self.group).inc()
        self._count(event_type, "dead_lettered")
        logger.error("message dead-lettered after %d attempt(s): %s", attempts, _describe(error))
        return "dead_lettered"

    def _count(self, event_type: str, outcome: Outcome) -> None:
        self._metrics.inbox_events.labels(self.group, event_type, outcome).inc()


@dataclass(frozen=True)
class _Message:
    """A record of a batch, read: its event and handler (none when the service does not handle its type)."""

    record: Record
    message_id: str
    envelope: Envelope
    handler: Handler | None
    event: Event | None
    traceparent: str | None = None  # of the record


_INBOX_BATCH = """
    INSERT INTO inbox (consumer, message_id, event_type, outcome)
    SELECT $1, message_id, event_type, 'processed' FROM unnest($2::text[], $3::text[]) AS batch(message_id, event_type)
    ON CONFLICT DO NOTHING RETURNING message_id
"""
_INBOX_BATCH_TRACED = """
    INSERT INTO inbox (consumer, message_id, event_type, outcome, traceparent)
    SELECT $1, message_id, event_type, 'processed', traceparent FROM unnest($2::text[], $3::text[], $4::text[])
      AS batch(message_id, event_type, traceparent)
    ON CONFLICT DO NOTHING RETURNING message_id
"""


class _BatchSpans:
    """While tracing: one CONSUMER span per message of a batch that has a handler (an ignored one has no work to
    show), continuing the message's trace, from the start of the batch's transaction to its end (they share it);
    each is current while its message's handler runs, so the outbox rows the handler writes carry it. Does nothing
    when tracing is off."""

    def __init__(self, messages: Sequence[_Message]) -> None:
        self._messages = messages
        self._spans: dict[str, trace.Span] = {}
        self.traceparents: dict[str, str | None] = {}

    async def __aenter__(self) -> _BatchSpans:
        if tracing.enabled():
            for message in self._messages:
                if message.message_id not in self._spans:
                    span = tracing.start_span(
                        message.traceparent,
                        f"{message.record.topic} process",
                        tracing.SpanKind.CONSUMER,
                        _attributes(message.record),
                        plain=True,
                    )
                    self._spans[message.message_id] = span
                    self.traceparents[message.message_id] = tracing.traceparent_of_span(span)
        return self

    async def __aexit__(self, error_type: Any, error: BaseException | None, traceback: Any) -> None:
        for span in self._spans.values():
            if error is not None:
                span.record_exception(error)
                tracing.fail(span, repr(error))
            span.end()

    @contextlib.contextmanager
    def current(self, message: _Message) -> Iterator[None]:
        span = self._spans.get(message.message_id)
        if span is None:
            yield
            return
        # made current by hand: `trace.use_span`'s layers cost more than the rest of a message's span
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            yield
        finally:
            otel_context.detach(token)


def _processing(record: Record, traceparent: str | None) -> contextlib.AbstractContextManager[object]:
    """The CONSUMER span of one record's processing, continuing the trace the record carries; nothing when off."""
    if not tracing.enabled():
        return contextlib.nullcontext()
    return tracing.span_from(traceparent, f"{record.topic} process", tracing.SpanKind.CONSUMER, _attributes(record))


def _event_headers(record: Record) -> tuple[list[tuple[str, bytes]], str | None]:
    """The record's CloudEvents headers, and the `traceparent` it carries. The relay puts it last; a record from
    elsewhere may carry it anywhere (or as the CloudEvents extension, `ce_traceparent`)."""
    headers = list(record.headers)
    if headers and headers[-1][0] == tracing.TRACEPARENT:
        value = headers.pop()[1]
        return headers, value.decode("latin-1") if value is not None else None
    if any(name in tracing.TRACE_HEADERS for name, _ in headers):
        return tracing.without_trace_headers(headers), tracing.traceparent_of(headers)
    return headers, None


def _attributes(record: Record) -> dict[str, Any]:
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": record.topic,
        "messaging.destination.partition.id": str(record.partition),
        "messaging.kafka.offset": record.offset,
    }


class ProcessDied(RuntimeError):
    """The process stopped (was killed, crashed) while applying the message, as often as attempts allow."""


_INFRASTRUCTURE = (
    OSError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


def _is_infrastructure(error: BaseException) -> bool:
    """Whether the failure is the infrastructure's (retried without counting) rather than the message's. The
    driver's own data and configuration errors are InterfaceErrors too, but ValueErrors: a value it cannot send
    is the message's fault, so it counts and ends in the dead-letter topic instead of being retried for ever."""
    return isinstance(error, _INFRASTRUCTURE) and not isinstance(error, TimeoutError | ValueError)


async def _nothing(record: Record) -> None:
    return None


def _partition(record: Record) -> tuple[str, int]:
    return record.topic, record.partition


def _header(record: Record, name: str) -> str | None:
    for header, value in record.headers:
        if header == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]
