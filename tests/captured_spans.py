"""Spans a test captures as a collector receives them: each batch serialized as the kit's exporter sends it
(`otlp.serialize`) and read back into the SDK's `ReadableSpan`s, so a test reads the names, parents, links and
attributes of the kit's own spans, which reach the batch processor already encoded."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Link, SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from buurtkracht_kit import otlp

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)  # only sampled spans are exported
_IS_REMOTE = 0x200  # SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK


class CapturedSpans(SpanExporter):
    """An exporter that keeps what it would have sent, as `ReadableSpan`s (`get_finished_spans`)."""

    def __init__(self) -> None:
        self._spans: list[ReadableSpan] = []
        self._lock = threading.Lock()

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        read = spans_of(ExportTraceServiceRequest.FromString(otlp.serialize(spans)))
        with self._lock:
            self._spans.extend(read)
        return SpanExportResult.SUCCESS

    def get_finished_spans(self) -> tuple[ReadableSpan, ...]:
        with self._lock:
            return tuple(self._spans)

    def shutdown(self) -> None:
        pass


def spans_of(request: ExportTraceServiceRequest) -> list[ReadableSpan]:
    """Every span of an OTLP request, in order, with its resource and scope."""
    spans = []
    for resource_spans in request.resource_spans:
        resource = Resource(_attributes(resource_spans.resource.attributes), resource_spans.schema_url or None)
        for scope_spans in resource_spans.scope_spans:
            scope = scope_spans.scope
            instrumentation_scope = InstrumentationScope(
                scope.name, scope.version or None, scope_spans.schema_url or None, _attributes(scope.attributes)
            )
            spans.extend(_span(span, resource, instrumentation_scope) for span in scope_spans.spans)
    return spans


def _span(span: Any, resource: Resource, scope: InstrumentationScope) -> ReadableSpan:
    trace_id = int.from_bytes(span.trace_id, "big")
    state = TraceState([tuple(pair.split("=", 1)) for pair in span.trace_state.split(",")] if span.trace_state else [])
    parent = None
    if span.parent_span_id:
        parent = SpanContext(
            trace_id, int.from_bytes(span.parent_span_id, "big"), bool(span.flags & _IS_REMOTE), _SAMPLED
        )
    return ReadableSpan(
        name=span.name,
        context=SpanContext(trace_id, int.from_bytes(span.span_id, "big"), False, _SAMPLED, state),
        parent=parent,
        resource=resource,
        attributes=_attributes(span.attributes),
        events=tuple(Event(event.name, _attributes(event.attributes), event.time_unix_nano) for event in span.events),
        links=tuple(
            Link(
                SpanContext(
                    int.from_bytes(link.trace_id, "big"),
                    int.from_bytes(link.span_id, "big"),
                    bool(link.flags & _IS_REMOTE),
                    _SAMPLED,
                ),
                _attributes(link.attributes),
            )
            for link in span.links
        ),
        kind=SpanKind(span.kind - 1),
        status=Status(StatusCode(span.status.code), span.status.message or None),
        start_time=span.start_time_unix_nano,
        end_time=span.end_time_unix_nano,
        instrumentation_scope=scope,
    )


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _value(value: Any) -> Any:
    field = value.WhichOneof("value")
    if field is None:
        return None
    if field == "array_value":
        return tuple(_value(item) for item in value.array_value.values)
    if field == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, field)
