"""Spans exported by a process of their own: what the child sends is what the service would have sent itself, a
flush waits for the child, and a child that died or was signalled loses no batch it took."""

import enum
import http.server
import logging
import marshal
import os
import signal
import threading
import time

import pytest
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from buurtkracht_kit import span_export

from .test_otlp import _kit_spans, _spans_of_every_shape

pytestmark = pytest.mark.unit


class Colour(str, enum.Enum):  # noqa: UP042  # a str-mixin Enum: its `str()` is "Colour.RED", its content "red"
    RED = "red"


class Level(enum.IntEnum):
    HIGH = 3


def _spans_of_subclassed_values():
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "vouchers"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("buurtkracht_kit").start_span(
        "enum values", attributes={"colour": Colour.RED, "level": Level.HIGH, "colours": (Colour.RED, "blue")}
    )
    span.end()
    return exporter.get_finished_spans()


def _through_the_pipe(spans, rebuilder=None):
    """What the child rebuilds from the bytes the service writes for `spans`."""
    kind, payload = marshal.loads(span_export._encoded((span_export.SPANS, span_export.compact(spans))))
    assert kind == span_export.SPANS
    return (rebuilder or span_export.Rebuilder()).spans(*payload)


@pytest.mark.parametrize(
    "spans",
    [_spans_of_every_shape, _kit_spans, _spans_of_subclassed_values],
    ids=["sdk spans", "kit spans", "subclassed values"],
)
def test_a_span_handed_over_encodes_to_the_bytes_of_the_span_itself(spans):
    finished = spans()
    assert finished
    expected = encode_spans(finished).SerializeToString()
    rebuilder = span_export.Rebuilder()
    assert encode_spans(_through_the_pipe(finished, rebuilder)).SerializeToString() == expected
    assert encode_spans(_through_the_pipe(finished, rebuilder)).SerializeToString() == expected, "a second frame"
    assert [span.name for span in _through_the_pipe(finished[:1])] == [finished[0].name]


class Collector:
    """An OTLP/HTTP traces endpoint on a free port, keeping each request's body; `refuse` answers 503 meanwhile."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.refuse = False
        collector = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if collector.refuse:
                    self.send_response(503)
                else:
                    collector.bodies.append(body)
                    self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/v1/traces"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def requests(self) -> list[ExportTraceServiceRequest]:
        return [ExportTraceServiceRequest.FromString(body) for body in self.bodies]


@pytest.fixture
def collector():
    collector = Collector()
    yield collector
    collector.server.shutdown()


@pytest.fixture
def exporter(collector):
    exporter = span_export.PipeExporter(collector.url)
    yield exporter
    exporter.shutdown(timeout_millis=5000)


def _child(exporter):
    return exporter._child


def test_a_flushed_batch_reached_the_backend_through_the_child(collector, exporter):
    child = _child(exporter)
    assert child is not None and child.poll() is None, "started with the exporter, before any span"
    assert exporter.force_flush(10_000), "nothing handed over yet: answered at once"
    spans = _spans_of_every_shape()
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert _child(exporter) is child
    assert exporter.force_flush(10_000)
    assert collector.requests() == [encode_spans(spans)]
    exporter.shutdown(timeout_millis=5000)
    assert child.returncode == 0, "the child ends when its pipe closes"
    assert exporter.export(spans) is SpanExportResult.FAILURE, "shut down"
    assert len(collector.bodies) == 1


def test_a_flush_waits_for_the_backend_the_child_is_still_retrying(collector, exporter):
    spans = _kit_spans()
    collector.refuse = True  # the SDK's exporter retries a 503 with a backoff of about a second
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    threading.Timer(0.3, lambda: setattr(collector, "refuse", False)).start()
    started = time.monotonic()
    assert exporter.force_flush(10_000)
    assert time.monotonic() - started >= 0.3
    assert collector.requests() == [encode_spans(spans)]


def test_a_flush_that_times_out_says_so_and_the_next_one_still_waits_for_its_own_answer(collector, exporter):
    spans = _kit_spans()
    collector.refuse = True
    exporter.export(spans)
    assert not exporter.force_flush(100), "the child is still retrying"
    collector.refuse = False
    exporter.export(spans)
    assert exporter.force_flush(10_000)
    assert collector.requests() == [encode_spans(spans)] * 2


def test_the_child_outlives_a_signal_to_the_process_group_and_sends_what_it_is_handed(collector, exporter):
    spans = _kit_spans()
    exporter.export(spans)
    assert exporter.force_flush(10_000)
    child = _child(exporter)
    child.send_signal(signal.SIGTERM)
    child.send_signal(signal.SIGINT)
    exporter.export(spans)
    assert exporter.force_flush(10_000)
    assert child.poll() is None and _child(exporter) is child
    assert len(collector.bodies) == 2


def test_a_child_that_died_is_started_again_but_not_more_often_than_the_restart_interval(
    collector, exporter, monkeypatch, caplog
):
    spans = _kit_spans()
    first = _child(exporter)
    first.kill()
    first.wait()
    with caplog.at_level(logging.WARNING, logger=span_export.__name__):
        assert exporter.export(spans) is SpanExportResult.FAILURE, "started moments ago: the batch is dropped"
    assert "dropping" in caplog.text and "ended" in caplog.text
    monkeypatch.setattr(span_export, "RESTART_SECONDS", 0.0)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    assert _child(exporter) is not first
    assert exporter.force_flush(10_000)
    assert len(collector.bodies) == 1, "the batch handed to no child is gone, the next one arrived"


def test_a_child_that_cannot_start_drops_the_batch_and_the_service_goes_on(collector, caplog):
    with caplog.at_level(logging.WARNING, logger=span_export.__name__):
        exporter = span_export.PipeExporter(collector.url, command=["/nonexistent/python"])
    try:
        assert "cannot start the span export process" in caplog.text
        assert exporter.export(_kit_spans()) is SpanExportResult.FAILURE
        assert exporter.force_flush(1000), "nothing was handed over"
    finally:
        exporter.shutdown(timeout_millis=1000)
    assert collector.bodies == []


def test_a_forked_process_hands_its_batches_to_a_child_of_its_own(collector, exporter):
    spans = _kit_spans()
    parents_child = _child(exporter)
    pid = os.fork()
    if pid == 0:  # the forked process: its own child, its batch through it, nothing through the parent's
        code = 1
        try:
            mine = _child(exporter)
            ok = mine is not None and mine is not parents_child and mine.poll() is None
            ok = ok and exporter.export(spans) is SpanExportResult.SUCCESS and exporter.force_flush(10_000)
            exporter.shutdown(timeout_millis=5000)
            code = 0 if ok else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _child(exporter) is parents_child and parents_child.poll() is None
    exporter.export(spans)
    assert exporter.force_flush(10_000)
    assert collector.requests() == [encode_spans(spans)] * 2
