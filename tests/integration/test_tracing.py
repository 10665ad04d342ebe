"""One trace from the command through the outbox, the relay, Kafka and the consumer to the events the consumer
records, on the real stack; and nothing of it when tracing is off."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, topics, tracing
from buurtkracht_kit.consumer import EventConsumer
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer

from .kit_domain import MIGRATIONS, SOURCE, TEST_TOPIC, CounterIncremented, apply_increment, increment, read_topic

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def pool(scratch_database, kafka_bootstrap):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(TEST_TOPIC, 6, 3_600_000)])
    pool = await create_pool(scratch_database, 2, 10)
    yield pool
    await pool.close()


@pytest.fixture
async def relay(pool, kafka_bootstrap):
    relay = OutboxRelay(pool, lambda: kafka_producer({"bootstrap_servers": kafka_bootstrap}), ServiceMetrics("t"))
    yield relay
    await relay.close()


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    tracing.configure("kit-test", None, exporter=exporter)
    yield exporter
    tracing.disable()


async def apply_and_echo(uow: UnitOfWork, event: CounterIncremented, envelope: Envelope) -> None:
    await apply_increment(uow, event, envelope)
    uow.record(CounterIncremented(counter_id=f"{event.counter_id}-echo", amount=event.amount))


def consumer(pool, group: str) -> EventConsumer:
    return EventConsumer(group, pool, SOURCE, ServiceMetrics("t"), {CounterIncremented: apply_and_echo})


async def published(kafka: str, counter: str) -> list:
    return [r for r in await read_topic(kafka, TEST_TOPIC, at_least=1) if r.key == counter.encode()]


def trace_id(traceparent: str | bytes) -> str:
    value = traceparent.decode() if isinstance(traceparent, bytes) else traceparent
    return value.split("-")[1]


async def test_the_trace_goes_from_the_command_through_kafka_into_the_consumer_and_its_own_events(
    pool, relay, kafka_bootstrap, spans
):
    counter = f"c-{uuid.uuid4()}"
    with tracing.span_from(None, "POST /counters", SpanKind.SERVER):
        command_trace = tracing.current_trace_id()
        await increment(pool, counter, 2)
    stored = await pool.fetchval("SELECT traceparent FROM outbox WHERE aggregate_id = $1", counter)
    assert stored is not None and trace_id(stored) == command_trace

    await relay.drain()
    [record] = await published(kafka_bootstrap, counter)
    assert record.headers[-1] == ("traceparent", stored.encode()), "the context the event was recorded in"

    group = f"traced-{uuid.uuid4().hex[:8]}"
    assert await consumer(pool, group).consume(record) == "processed"
    inbox = await pool.fetchval("SELECT traceparent FROM inbox WHERE consumer = $1", group)
    echo = await pool.fetchval("SELECT traceparent FROM outbox WHERE aggregate_id = $1", f"{counter}-echo")
    assert trace_id(inbox) == command_trace and trace_id(echo) == command_trace

    tracing.flush()
    finished = {
        span.name: span for span in spans.get_finished_spans() if format(span.context.trace_id, "032x") == command_trace
    }
    command, publish, process = (
        finished["POST /counters"],
        finished[f"{TEST_TOPIC} publish"],
        finished[f"{TEST_TOPIC} process"],
    )
    assert publish.kind == SpanKind.PRODUCER and publish.parent.span_id == command.context.span_id
    assert publish.attributes["messaging.batch.message_count"] == 1
    assert process.kind == SpanKind.CONSUMER and process.parent.span_id == command.context.span_id
    assert format(process.context.span_id, "016x") == inbox.split("-")[2] == echo.split("-")[2]
    assert any(
        span.parent is not None
        and span.parent.span_id == process.context.span_id
        and span.attributes.get("db.system") == "postgresql"
        for span in spans.get_finished_spans()
    )


async def test_each_message_of_a_batch_continues_its_own_trace(pool, relay, kafka_bootstrap, spans):
    counter = f"c-{uuid.uuid4()}"
    traces = []
    for amount in (1, 2, 3):
        with tracing.span_from(None, "command"):
            traces.append(tracing.current_trace_id())
            await increment(pool, counter, amount)
    await relay.drain()
    records = sorted(await published(kafka_bootstrap, counter), key=lambda r: r.offset)
    assert len(records) == 3
    group = f"traced-batch-{uuid.uuid4().hex[:8]}"
    events = consumer(pool, group)
    assert await events.consume(records[0]) == "processed"  # the partition has had one processed: a batch follows
    assert await events.consume_batch(records[1:]) == ["processed", "processed"]
    rows = await pool.fetch("SELECT traceparent FROM outbox WHERE aggregate_id = $1 ORDER BY id", f"{counter}-echo")
    assert [trace_id(row["traceparent"]) for row in rows] == traces
    inbox = await pool.fetch("SELECT traceparent FROM inbox WHERE consumer = $1", group)
    assert sorted(trace_id(row["traceparent"]) for row in inbox) == sorted(traces)


async def test_a_record_batch_is_one_publish_span_in_its_first_trace_linked_to_the_others(
    pool, relay, kafka_bootstrap, spans
):
    await relay.drain()  # rows the earlier tests' consumers recorded would share our partition's record batch
    counter = f"c-{uuid.uuid4()}"  # one aggregate: its rows go to one partition, in one record batch
    commands = []
    for amount in (1, 2, 3):
        with tracing.span_from(None, "command") as command:
            commands.append(command.get_span_context())
            await increment(pool, counter, amount)
    await relay.drain()
    assert len(await published(kafka_bootstrap, counter)) == 3
    tracing.flush()
    ours = {context.trace_id for context in commands}
    [publish] = [
        span
        for span in spans.get_finished_spans()
        if span.name == f"{TEST_TOPIC} publish"
        and (span.context.trace_id in ours or {link.context.trace_id for link in span.links} & ours)
    ]
    assert publish.kind == SpanKind.PRODUCER and publish.attributes["messaging.batch.message_count"] == 3
    assert publish.parent.span_id == commands[0].span_id and publish.context.trace_id == commands[0].trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in publish.links] == [
        (context.trace_id, context.span_id) for context in commands[1:]
    ]


async def test_a_record_the_consumer_ignores_has_no_span(pool, relay, kafka_bootstrap, spans):
    counter = f"c-{uuid.uuid4()}"
    with tracing.span_from(None, "command"):
        command_trace = tracing.current_trace_id()
        await increment(pool, counter, 1)
    await relay.drain()
    [record] = await published(kafka_bootstrap, counter)
    deaf = EventConsumer(f"deaf-{uuid.uuid4().hex[:8]}", pool, SOURCE, ServiceMetrics("t"), {})
    assert await deaf.consume(record) == "ignored"
    assert await consumer(pool, f"hearing-{uuid.uuid4().hex[:8]}").consume(record) == "processed"
    tracing.flush()
    processed = [
        span
        for span in spans.get_finished_spans()
        if span.name == f"{TEST_TOPIC} process" and format(span.context.trace_id, "032x") == command_trace
    ]
    assert len(processed) == 1, "only the consumer that applied it"


async def test_an_unsampled_trace_goes_through_unrecorded(pool, relay, kafka_bootstrap, spans):
    counter = f"c-{uuid.uuid4()}"
    unsampled = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00"
    with tracing.span_from(unsampled, "command"):
        await increment(pool, counter, 1)
    stored = await pool.fetchval("SELECT traceparent FROM outbox WHERE aggregate_id = $1", counter)
    assert trace_id(stored) == unsampled.split("-")[1] and stored.endswith("-00")
    await relay.drain()
    [record] = await published(kafka_bootstrap, counter)
    assert record.headers[-1] == ("traceparent", stored.encode())  # passed on as it was stored
    tracing.flush()
    assert not [s for s in spans.get_finished_spans() if format(s.context.trace_id, "032x") == unsampled.split("-")[1]]


async def test_with_tracing_off_rows_and_records_carry_no_trace_context(pool, relay, kafka_bootstrap):
    assert not tracing.enabled()
    counter = f"c-{uuid.uuid4()}"
    await increment(pool, counter, 1)
    assert await pool.fetchval("SELECT traceparent FROM outbox WHERE aggregate_id = $1", counter) is None
    await relay.drain()
    [record] = await published(kafka_bootstrap, counter)
    assert "traceparent" not in dict(record.headers)
    group = f"untraced-{uuid.uuid4().hex[:8]}"
    assert await consumer(pool, group).consume(record) == "processed"
    assert await pool.fetchval("SELECT traceparent FROM inbox WHERE consumer = $1", group) is None
