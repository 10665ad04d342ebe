"""The kit's OTLP encoder writes, byte for byte, what the SDK's writes, for spans of every shape the API can make."""

import http.server
import threading
import uuid

import pytest
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, SpanKind, StatusCode, TraceState

from buurtkracht_kit import otlp, tracing

pytestmark = pytest.mark.unit

PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def _provider(exporter: InMemorySpanExporter, resource: Resource, limits: SpanLimits | None = None) -> TracerProvider:
    provider = TracerProvider(resource=resource, span_limits=limits)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def _spans_of_every_shape():
    exporter = InMemorySpanExporter()
    first = _provider(exporter, Resource.create({"service.name": "vouchers", "k8s.pod.uid": "p-1"}))
    second = _provider(
        exporter,
        Resource({"service.name": "notifications"}, schema_url="https://opentelemetry.io/schemas/1.21.0"),
        SpanLimits(max_span_attributes=2, max_events=1, max_links=1, max_event_attributes=1, max_link_attributes=1),
    )
    plain = first.get_tracer("buurtkracht_kit")
    versioned = first.get_tracer("httpx", "0.66b1", "https://opentelemetry.io/schemas/1.11.0", {"library": True})
    limited = second.get_tracer("buurtkracht_kit")
    remote = tracing._span_context_of(PARENT)
    with_state = trace.SpanContext(remote.trace_id, remote.span_id, True, remote.trace_flags, TraceState([("v", "1")]))
    parent = trace.set_span_in_context(trace.NonRecordingSpan(with_state))

    plain.start_span("empty").end()
    span = plain.start_span(
        "every value",
        context=parent,
        kind=SpanKind.SERVER,
        attributes={"s": "x", "i": -3, "b": False, "f": 0.25, "none": None, "bytes": b"\x00\x01", "big": 1 << 64},
        links=[Link(remote, {"why": "batch", "n": 2}), Link(with_state)],
    )
    span.set_attribute("list", ["a", "b"])
    span.set_attribute("ints", (1, 2, 3))
    span.set_attribute("mapping", {"inner": {"deep": 1.5}, "flag": True})
    span.add_event("retried", {"attempt": 2})
    span.add_event("bare")
    span.record_exception(ValueError("no wallet"))
    span.set_status(StatusCode.ERROR, "refused")
    span.end()
    for kind in SpanKind:
        ok = versioned.start_span(f"kind {kind.name}", kind=kind, attributes={"seq": kind.value})
        ok.set_status(StatusCode.OK)
        ok.end()
    links = [Link(remote), Link(remote, {"x": 1, "y": 2})]  # the limits keep the last
    dropping = limited.start_span("limits", attributes={"a": 1, "b": 2, "c": 3}, links=links)
    dropping.add_event("one")
    dropping.add_event("two", {"x": 1, "y": 2})
    dropping.end()
    plain.start_span("again in the first scope", attributes={"resident": str(uuid.UUID(int=7))}).end()
    return exporter.get_finished_spans()


def _kit_spans():
    exporter = InMemorySpanExporter()
    assert tracing.configure("vouchers", None, exporter=exporter)
    try:
        for _ in range(2):  # the second time from what the encoder remembers of the first
            with tracing.span_from(PARENT, "POST /api/v1/rounds/{round_id}/pledges", SpanKind.SERVER, {"code": 201}):
                pass
        values = {"s": "wijk é", "empty": "", "i": -3, "zero": 0, "big": 1 << 70, "b": True, "f": -0.0, "n": 2.5}
        with tracing.span_from(None, "", SpanKind.INTERNAL, values) as every_value:
            assert every_value is not None
            every_value.set_attribute("long", "x" * 300)
            every_value.set_attribute("", "no key")
            every_value.set_status(StatusCode.ERROR, "refused")
        with tracing.span_from(None, "", SpanKind.INTERNAL, {"f": 0.0, "n": float("nan")}):  # 0.0 == -0.0
            pass
        remote = tracing._span_context_of(PARENT)
        state = TraceState([("v", "1")])
        with_state = trace.SpanContext(remote.trace_id, remote.span_id, True, remote.trace_flags, state)
        assert tracing._recorder is not None
        continued = tracing._recorder.start("continued", with_state, SpanKind.CLIENT, {"code": 201})
        continued.set_status(StatusCode.OK)
        continued.end()
        with pytest.raises(RuntimeError), tracing.span_from(None, "consumed", SpanKind.CONSUMER):
            raise RuntimeError("handler failed")
        batch = tracing.batch_span([PARENT, PARENT.replace("b7ad", "c7ad")], "send", SpanKind.PRODUCER, {"n": 2})
        assert batch is not None
        batch.end()
        tracing.flush()
    finally:
        tracing.disable()
    return exporter.get_finished_spans()


@pytest.mark.parametrize("spans", [_spans_of_every_shape, _kit_spans], ids=["sdk spans", "kit spans"])
def test_the_encoder_writes_the_sdks_bytes(spans):
    finished = spans()
    assert len(finished) >= 3
    for batch in (finished, finished[:1], finished[::-1], []):
        assert otlp.serialize(batch) == encode_spans(batch).SerializeToString()


def test_the_exporter_posts_the_encoded_batch_to_the_collectors_traces_path():
    received: list[tuple[str, str, bytes]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        spans = _spans_of_every_shape()
        exporter = otlp.SpanExporter(endpoint=f"http://127.0.0.1:{server.server_port}/v1/traces")
        assert exporter.export(spans) is SpanExportResult.SUCCESS
        exporter.shutdown()
        assert exporter.export(spans) is SpanExportResult.FAILURE, "shut down"
    finally:
        server.shutdown()
    [(path, content_type, body)] = received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert ExportTraceServiceRequest.FromString(body) == encode_spans(spans)
