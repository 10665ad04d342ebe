"""Tracing off costs nothing and changes nothing; on, the trace context is read from and written to Kafka headers
and log lines carry the trace id."""

import asyncio
import json
import logging
import random
import uuid
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from google.protobuf.json_format import MessageToDict
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import IdGenerator, RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON
from opentelemetry.trace import Link, SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import from_kafka, to_kafka
from buurtkracht_kit import logs, tracing
from buurtkracht_kit.consumer import _event_headers
from buurtkracht_kit.group_commit import GroupCommit
from tests.integration.kit_domain import SOURCE, CounterIncremented

pytestmark = pytest.mark.unit

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
OTHER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", None, exporter=exporter)
    yield exporter
    tracing.disable()


@pytest.fixture
def root_logger():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_without_an_endpoint_tracing_stays_off_and_its_hooks_do_nothing():
    assert not tracing.configure("test", None) and not tracing.enabled()
    with tracing.span_from(PARENT, "work") as span:
        assert span is None
        assert tracing.current_traceparent() is None and tracing.current_trace_id() is None


def test_a_span_continues_the_trace_its_traceparent_names(traced):
    with tracing.span_from(PARENT, "work") as span:
        assert span is not None
        assert tracing.current_trace_id() == "0af7651916cd43dd8448eb211c80319c"
        traceparent = tracing.current_traceparent()
    assert traceparent is not None and traceparent.startswith("00-0af7651916cd43dd8448eb211c80319c-")
    assert traceparent != PARENT and tracing.sampled(traceparent)
    tracing.flush()
    [finished] = traced.get_finished_spans()
    assert finished.parent is not None and format(finished.parent.span_id, "016x") == "b7ad6b7169203331"


def test_a_malformed_traceparent_starts_a_new_trace(traced):
    with tracing.span_from("00-not-a-trace-01", "work"):
        trace_id = tracing.current_trace_id()
    assert trace_id is not None and trace_id != "0af7651916cd43dd8448eb211c80319c"


def test_sampled_reads_the_flags():
    assert tracing.sampled(PARENT)
    assert not tracing.sampled(PARENT[:-2] + "00")
    assert not tracing.sampled("garbage")


def test_a_record_with_a_traceparent_is_read_as_the_same_cloudevent_on_the_fast_path():
    envelope = Envelope.wrap(CounterIncremented(counter_id="c-1", amount=3), SOURCE)
    record = to_kafka(envelope)

    class Record:
        key, value = record.key, record.value
        headers = (*record.headers, ("traceparent", PARENT.encode()))

    headers, traceparent = _event_headers(Record)
    assert traceparent == PARENT and headers == record.headers
    assert from_kafka(record.key, record.value, headers) == envelope


def test_the_cloudevents_extension_form_is_read_too():
    class Record:
        headers = (("ce_traceparent", PARENT.encode()), ("ce_id", b"1"))

    assert _event_headers(Record) == ([("ce_id", b"1")], PARENT)


def test_a_log_line_inside_a_trace_carries_its_id(capsys, root_logger, traced):
    logs.configure("vouchers", "INFO", "json")
    logger = logging.getLogger("vouchers.test")
    with tracing.span_from(PARENT, "work"):
        logger.info("inside")
    logger.info("outside")
    inside, outside = (json.loads(line) for line in capsys.readouterr().out.splitlines()[-2:])
    assert inside["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and len(inside["span_id"]) == 16
    assert "trace_id" not in outside


def test_a_text_log_line_inside_a_trace_ends_with_its_id(capsys, root_logger, traced):
    logs.configure("vouchers", "INFO", "text")
    with tracing.span_from(PARENT, "work"):
        logging.getLogger("vouchers.test").info("inside")
    assert capsys.readouterr().out.rstrip().endswith("inside trace_id=0af7651916cd43dd8448eb211c80319c")


async def test_a_lone_request_of_a_group_commit_stays_in_its_trace_and_a_batch_links_every_caller(traced):
    seen: list[str | None] = []

    async def process(items):
        seen.append(tracing.current_trace_id())
        await asyncio.sleep(0)
        return items

    desk = GroupCommit(process)
    with tracing.span_from(PARENT, "request"):
        assert await desk.submit(1) == 1
    assert seen == ["0af7651916cd43dd8448eb211c80319c"]

    others = [f"00-{n:032x}-{n:016x}-01" for n in (1, 2, 3)]

    async def call(traceparent: str, item: int) -> int:
        with tracing.span_from(traceparent, "request"):
            return await desk.submit(item)

    blocker = asyncio.Event()

    async def slow(items):
        await blocker.wait()
        return items

    desk = GroupCommit(slow)
    first = asyncio.ensure_future(call(others[0], 1))
    await asyncio.sleep(0.01)  # the first runs alone; the next two wait and go together
    rest = [asyncio.ensure_future(call(t, n)) for n, t in enumerate(others[1:], start=2)]
    await asyncio.sleep(0.01)
    blocker.set()
    assert await asyncio.gather(first, *rest) == [1, 2, 3]
    tracing.flush()
    [batch] = [span for span in traced.get_finished_spans() if span.name == "group commit of 2"]
    assert format(batch.context.trace_id, "032x") == f"{2:032x}"
    assert [format(link.context.trace_id, "032x") for link in batch.links] == [f"{3:032x}"]


def test_the_traceparent_written_is_the_one_the_propagator_writes(traced):
    propagator = TraceContextTextMapPropagator()
    for parent in (PARENT, PARENT[:-2] + "00"):
        with tracing.span_from(parent, "work") as span:
            carrier: dict[str, str] = {}
            propagator.inject(carrier)
            assert tracing.current_traceparent() == carrier["traceparent"] == tracing.traceparent_of_span(span)


@pytest.mark.parametrize(
    "traceparent",
    [
        PARENT,
        PARENT[:-2] + "00",
        PARENT.upper(),
        "00-" + "0" * 32 + PARENT[35:],
        PARENT[:36] + "0" * 16 + PARENT[52:],
        "ff" + PARENT[2:],
        "01" + PARENT[2:] + "-later",
        "00" + PARENT[2:] + "-later",
        " " + PARENT,
        PARENT[:-1],
        PARENT[:-2] + "0g",
        PARENT.replace("-", "_"),
    ],
)
def test_a_traceparent_names_the_span_the_propagator_reads_from_it(traceparent):
    extracted = trace.get_current_span(TraceContextTextMapPropagator().extract({"traceparent": traceparent}))
    expected = extracted.get_span_context() if extracted.get_span_context().is_valid else None
    assert tracing._span_context_of(traceparent) == expected


def test_a_malformed_traceparent_names_no_span():
    for malformed in ("", "00-" + "0" * 32 + "-b7ad6b7169203331-01", "ff" + PARENT[2:], PARENT + "-x", "junk"):
        assert tracing._span_context_of(malformed) is None, malformed


def traced_app() -> FastAPI:
    app = FastAPI()

    @app.get("/rounds/{round_id}")
    async def read_round(round_id: str) -> dict[str, str]:
        return {"trace": tracing.current_trace_id() or ""}

    @app.get("/broken")
    async def broken() -> None:
        raise RuntimeError("no")

    tracing.instrument_app(app)
    return app


async def test_a_request_continues_its_callers_trace_in_a_span_named_by_its_route_and_the_answer_names_it(traced):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=traced_app()), base_url="http://t") as http:
        answer = await http.get("/rounds/r-1", headers={"traceparent": PARENT})
        fresh = await http.get("/rounds/r-2")
        probe = await http.get("/healthz")
    assert answer.json() == {"trace": "0af7651916cd43dd8448eb211c80319c"}
    assert fresh.json()["trace"] not in ("", "0af7651916cd43dd8448eb211c80319c")
    assert "traceresponse" not in probe.headers
    tracing.flush()
    spans = {format(span.context.trace_id, "032x"): span for span in traced.get_finished_spans()}
    server = spans["0af7651916cd43dd8448eb211c80319c"]
    assert server.name == "GET /rounds/{round_id}" and server.kind == SpanKind.SERVER
    assert format(server.parent.span_id, "016x") == "b7ad6b7169203331"
    assert server.attributes["http.route"] == "/rounds/{round_id}"
    assert server.attributes["http.response.status_code"] == 200
    assert answer.headers["traceresponse"] == tracing.traceparent_of_span(server)
    assert fresh.headers["traceresponse"].split("-")[1] == fresh.json()["trace"]


async def test_a_request_that_fails_is_a_span_with_an_error(traced):
    transport = httpx.ASGITransport(app=traced_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
        answer = await http.get("/broken")
    assert answer.status_code == 500
    tracing.flush()
    [server] = [span for span in traced.get_finished_spans() if span.name == "GET /broken"]
    assert server.status.status_code == StatusCode.ERROR
    assert [event.name for event in server.events] == ["exception"]


def test_a_batch_span_is_a_child_of_its_first_sampled_item_and_links_at_most_max_links_of_the_others(traced):
    items = [f"00-{n:032x}-{n:016x}-{'01' if n % 2 else '00'}" for n in range(1, 2 * (2 * tracing.MAX_LINKS + 10))]
    span = tracing.batch_span([None, "malformed", *items], "send", tracing.SpanKind.PRODUCER)
    assert span is not None
    span.end()
    tracing.flush()
    [sent] = [s for s in traced.get_finished_spans() if s.name == "send"]
    assert sent.parent.trace_id == 1, "the first sampled item's span (odd numbers: sampled)"
    assert [link.context.trace_id for link in sent.links] == list(range(3, 2 * tracing.MAX_LINKS + 2, 2))
    assert tracing.batch_span([None, items[1]], "send", tracing.SpanKind.PRODUCER) is None, "none sampled"


def _recorded(span) -> None:
    """What a handler might do to its span, every call of the API that records something."""
    span.set_attributes({"n": 1, "ok": True, "ratio": 0.5, "resident": uuid.UUID(int=7)})
    span.set_attribute("step", "booked")
    span.add_event("retried", {"attempt": 2})
    span.set_status(StatusCode.ERROR, "refused")
    span.set_status(StatusCode.UNSET)
    span.record_exception(ValueError("no wallet"), {"wallet": "w-1"})
    span.update_name("renamed")
    span.end()
    span.end()


def _otlp(span) -> dict:
    """The span as the OTLP exporter sends it, without what differs from one recording to the next."""
    encoded = MessageToDict(encode_spans([span]))
    [[scope_spans]] = [resource["scopeSpans"] for resource in encoded["resourceSpans"]]
    [otlp] = scope_spans["spans"]
    for varying in ("spanId", "startTimeUnixNano", "endTimeUnixNano"):
        assert otlp.pop(varying)
    for event in otlp.get("events", ()):
        assert event.pop("timeUnixNano")
    return {"resource": encoded["resourceSpans"][0]["resource"], "scope": scope_spans["scope"], "span": otlp}


def test_a_span_the_kit_records_is_exported_as_the_sdk_records_one(traced):
    parent, other = (
        trace.set_span_in_context(trace.NonRecordingSpan(tracing._span_context_of(value))) for value in (PARENT, OTHER)
    )
    _recorded(tracing.linked_span([parent, other], "work", SpanKind.CONSUMER, {"topic": "vouchers.events"}))
    link = Link(trace.get_current_span(other).get_span_context())
    _recorded(
        tracing.tracer().start_span(
            "work", context=parent, kind=SpanKind.CONSUMER, attributes={"topic": "vouchers.events"}, links=[link]
        )
    )
    tracing.flush()
    kit, sdk = traced.get_finished_spans()
    assert isinstance(kit, ReadableSpan) and isinstance(sdk, ReadableSpan), "both handed to the processor as one"
    assert _otlp(kit) == _otlp(sdk)
    assert _otlp(kit)["span"]["status"] == {"code": "STATUS_CODE_ERROR", "message": "refused"}


def test_an_ended_span_changes_no_more(traced):
    """The kit's span is itself what the processor exports, so nothing done to it after `end` may reach that."""
    span = tracing.start_span(PARENT, "work", SpanKind.INTERNAL, {"n": 1})
    span.end()
    exported = _otlp(span)
    span.set_attributes({"n": 2, "late": True})
    span.set_attribute("later", "yes")
    span.add_event("too late")
    span.set_status(StatusCode.ERROR, "too late")
    span.record_exception(ValueError("too late"))
    span.update_name("renamed")
    span.end()
    tracing.flush()
    [finished] = traced.get_finished_spans()
    assert not span.is_recording() and _otlp(finished) == exported
    assert exported["span"]["name"] == "work" and exported["span"]["attributes"] == [
        {"key": "n", "value": {"intValue": "1"}}
    ]


def test_a_trace_its_parent_did_not_sample_is_passed_on_unrecorded():
    exporter = InMemorySpanExporter()
    assert tracing.configure("test", None, sample_ratio=0.0, exporter=exporter)
    try:
        with tracing.span_from(None, "new trace") as fresh:
            assert not fresh.is_recording() and not tracing.sampled(tracing.current_traceparent())
        with tracing.span_from(PARENT[:-2] + "00", "unsampled parent") as unsampled:
            traceparent = tracing.current_traceparent()
            assert not unsampled.is_recording() and traceparent.split("-")[1] == PARENT.split("-")[1]
            assert traceparent.split("-")[2] != PARENT.split("-")[2], "a span id of its own"
        with tracing.span_from(PARENT, "sampled parent") as sampled:
            assert sampled.is_recording()
        tracing.flush()
        assert [span.name for span in exporter.get_finished_spans()] == ["sampled parent"]
    finally:
        tracing.disable()


def test_a_span_context_made_without_its_checks_is_the_one_its_constructor_makes():
    flags, state = trace.TraceFlags(1), trace.TraceState([("vendor", "x")])
    made = tracing._span_context(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, flags, state)
    expected = trace.SpanContext(0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, True, flags, state)
    assert made == expected and type(made) is trace.SpanContext
    assert (made.trace_id, made.span_id, made.is_remote, made.trace_flags, made.trace_state, made.is_valid) == (
        expected.trace_id,
        expected.span_id,
        expected.is_remote,
        expected.trace_flags,
        expected.trace_state,
        True,
    )


class _Counting(IdGenerator):
    def __init__(self) -> None:
        self.next = 0

    def generate_span_id(self) -> int:
        self.next += 1
        return self.next

    def generate_trace_id(self) -> int:
        self.next += 1
        return self.next << 64


def _recorder(ids: IdGenerator) -> tracing._Recorder:
    provider = SimpleNamespace(id_generator=ids, resource=Resource.create({}))
    return tracing._Recorder(provider, ALWAYS_ON, SpanProcessor())


def test_the_kit_names_its_spans_with_the_providers_id_generator():
    recorder = _recorder(_Counting())
    root = recorder.start("root", None, SpanKind.SERVER, None).get_span_context()
    child = recorder.start("child", root, SpanKind.INTERNAL, None).get_span_context()
    assert (root.trace_id, root.span_id) == (1 << 64, 2)
    assert (child.trace_id, child.span_id) == (1 << 64, 3)


def test_a_random_id_drawn_zero_is_drawn_again_by_the_generator(monkeypatch):
    recorder = _recorder(RandomIdGenerator())
    drawn = iter([0, 0, 7 << 64, 5, 0, 9])
    monkeypatch.setattr(random, "getrandbits", lambda bits: next(drawn))
    root = recorder.start("root", None, SpanKind.SERVER, None).get_span_context()
    assert (root.trace_id, root.span_id) == (7 << 64, 5), "a zero draw is refused, as the SDK's generator does"
    child = recorder.start("child", root, SpanKind.INTERNAL, None).get_span_context()
    assert (child.trace_id, child.span_id) == (7 << 64, 9)


def test_a_span_takes_the_kits_plain_attributes_as_they_are_and_anyone_elses_checked(traced):
    plain = {"http.request.method": "GET"}
    taken = tracing.start_span(PARENT, "work", SpanKind.SERVER, plain, plain=True)
    checked = tracing.start_span(PARENT, "work", SpanKind.SERVER, {"kind": SpanKind.SERVER, "n": 1})
    assert taken._attributes is plain
    assert dict(checked.attributes) == {"kind": "SpanKind.SERVER", "n": 1}
