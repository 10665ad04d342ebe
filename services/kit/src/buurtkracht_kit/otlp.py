"""OTLP/HTTP export of spans: the SDK's exporter (endpoint, headers, compression, retries, timeouts) with an encoder
that writes the same protobuf bytes about four times faster, and spans the kit encodes when they end.

The SDK's encoder builds every attribute, link and event as a message of its own, passes lists of them to the
constructor of the next (which copies them) and hashes each span's resource as a JSON dump to group the batch. This
one fills the request in place (`add()`, field by field), in the same order, grouping by the same resource and scope
equality; a unit test holds it to the SDK's bytes for spans of every shape.

The kit's own spans are serialized when they end (`encode_span`) and queued as `EncodedSpan`, bytes: a span's objects
kept until the batch is exported survive the collector's young generations and cost it more than encoding them early,
and the batch processor's thread then only joins bytes instead of encoding while holding the interpreter the request
path needs. `serialize` writes a batch of both kinds.

Only imported while tracing is on.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span, SpanFlags
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, TraceFlags

logger = logging.getLogger(__name__)

_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = _HAS_IS_REMOTE | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_PLAIN_FIELDS = {str: "string_value", int: "int_value", bool: "bool_value", float: "double_value"}  # AnyValue's


class SpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` whose batches are encoded by `encode`; everything else is the SDK's."""

    def export(self, spans: Sequence[ReadableSpan | EncodedSpan]) -> SpanExportResult:
        # the SDK's `export` with the encoder swapped: shut down, its own metrics, the size limit, the HTTP client
        # (attributes of the SDK's exporter that are not its public API: the package is pinned, the e2e test exports)
        if self._shutdown:
            logger.warning("Exporter already shutdown, ignoring batch")
            return SpanExportResult.FAILURE
        with self._metrics.export_operation(len(spans)) as result:
            try:
                data = serialize(spans)
            except Exception as error:
                logger.error("Failed to encode span batch: %s", error)
                result.error = error
                return SpanExportResult.FAILURE
            if len(data) > self._max_request_size:
                logger.warning(
                    "Dropping span batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    len(data),
                    self._max_request_size,
                )
                return SpanExportResult.FAILURE
            exported = self._client.export(data)
            if not exported.success:
                result.error = exported.error
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def encode(spans: Sequence[ReadableSpan]) -> ExportTraceServiceRequest:
    """The OTLP request for `spans`: per resource (first seen first), per instrumentation scope, the spans in order;
    byte for byte what the SDK's `encode_spans` makes."""
    request = ExportTraceServiceRequest()
    resources: dict[Any, tuple[Any, dict[Any, Any]]] = {}
    for span in spans:
        resource, scope = span.resource, span.instrumentation_scope or None
        found = resources.get(resource)
        if found is None:
            resource_spans = request.resource_spans.add()
            _put_resource(resource_spans, resource)
            found = resources[resource] = (resource_spans, {})
        resource_spans, scopes = found
        scope_spans = scopes.get(scope)
        if scope_spans is None:
            scope_spans = scopes[scope] = resource_spans.scope_spans.add()
            _put_scope(scope_spans, scope)
        _put_span(scope_spans.spans.add(), span)
    # resources then scopes in the order first seen, as the SDK's grouping by dictionary leaves them
    return request


def _put_resource(out: Any, resource: Resource) -> None:
    out.resource.SetInParent()
    _put_attributes(out.resource.attributes, resource.attributes)
    if resource.schema_url:
        out.schema_url = resource.schema_url


def _put_scope(out: Any, scope: InstrumentationScope | None) -> None:
    out.scope.SetInParent()
    if scope is not None:
        out.scope.name = scope.name
        if scope.version:
            out.scope.version = scope.version
        _put_attributes(out.scope.attributes, scope.attributes)
        if scope.schema_url:
            out.schema_url = scope.schema_url


def encode_span(span: Any) -> bytes:
    """One span as its OTLP `Span` message: what `encode` writes for it inside the request. `span`: anything with a
    `ReadableSpan`'s attributes (the kit's `RecordedSpan`)."""
    out = Span()
    _put_span(out, span)
    return out.SerializePartialToString()


class EncodedSpan(bytes):
    """A span serialized by `encode_span` when it ended: what the batch processor queues for a span the kit recorded.
    Bytes, which the garbage collector does not traverse (no slots, no `__dict__`). Each subclass, made by
    `encoded_spans`, stands for the resource and instrumentation scope its spans share."""

    __slots__ = ()
    # what the batch processor reads of a span: whether it is sampled (the kit encodes only sampled spans)
    context: ClassVar[SpanContext] = SpanContext(0, 0, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    _resource_field: ClassVar[bytes] = b""  # ResourceSpans' `resource`
    _resource_schema: ClassVar[bytes] = b""  # and its `schema_url`, if any
    _scope_field: ClassVar[bytes] = b""  # ScopeSpans' `scope`
    _scope_schema: ClassVar[bytes] = b""

    @classmethod
    def resource_spans(cls, spans: Sequence[EncodedSpan]) -> bytes:
        """The request's `resource_spans` field holding `spans` (of this resource and scope), in order."""
        scope_spans = cls._scope_field + b"".join([_field(2, span) for span in spans]) + cls._scope_schema
        return _field(1, cls._resource_field + _field(2, scope_spans) + cls._resource_schema)


def encoded_spans(resource: Resource, scope: InstrumentationScope) -> type[EncodedSpan]:
    """The `EncodedSpan` type of the spans one tracer records: the resource and scope fields written once."""
    resource_spans, scope_spans = ResourceSpans(), ScopeSpans()
    _put_resource(resource_spans, resource)
    _put_scope(scope_spans, scope)
    schema_url = resource_spans.schema_url
    resource_spans.ClearField("schema_url")
    scope_schema_url = scope_spans.schema_url
    scope_spans.ClearField("schema_url")
    return type(
        "EncodedSpan",
        (EncodedSpan,),
        {
            "__slots__": (),
            "_resource_field": resource_spans.SerializePartialToString(),
            "_resource_schema": ResourceSpans(schema_url=schema_url).SerializePartialToString(),
            "_scope_field": scope_spans.SerializePartialToString(),
            "_scope_schema": ScopeSpans(schema_url=scope_schema_url).SerializePartialToString(),
        },
    )


def serialize(spans: Sequence[ReadableSpan | EncodedSpan]) -> bytes:
    """The OTLP request for a batch, as bytes: the SDK's spans through `encode`, then the kit's, each group of one
    resource and scope in a `resource_spans` of its own (a repeated field's messages may follow one another; a
    collector reads the same spans, resources and scopes)."""
    recorded = [span for span in spans if not isinstance(span, EncodedSpan)]
    parts = [encode(recorded).SerializePartialToString()] if recorded else []
    groups: dict[type[EncodedSpan], list[EncodedSpan]] = {}
    for span in spans:
        if isinstance(span, EncodedSpan):
            groups.setdefault(type(span), []).append(span)
    parts.extend(kind.resource_spans(group) for kind, group in groups.items())
    return b"".join(parts)


def _field(number: int, data: bytes) -> bytes:
    """A length-delimited protobuf field: its tag, the length as a varint, the bytes."""
    return _varint(number << 3 | 2) + _varint(len(data)) + data


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _put_span(out: Any, span: Any) -> None:
    context = span.context
    out.trace_id = context.trace_id.to_bytes(16, "big")
    out.span_id = context.span_id.to_bytes(8, "big")
    if context.trace_state:
        out.trace_state = ",".join(f"{key}={value}" for key, value in context.trace_state.items())
    parent = span.parent
    if parent is not None:
        out.parent_span_id = parent.span_id.to_bytes(8, "big")
    out.name = span.name
    out.kind = span.kind.value + 1  # the API's INTERNAL is 0, OTLP's 1 (0 is UNSPECIFIED)
    out.start_time_unix_nano = span.start_time or 0
    out.end_time_unix_nano = span.end_time or 0
    _put_attributes(out.attributes, span.attributes)
    for event in span.events:
        encoded = out.events.add()
        encoded.time_unix_nano = event.timestamp
        encoded.name = event.name
        _put_attributes(encoded.attributes, event.attributes)
        if event.dropped_attributes:
            encoded.dropped_attributes_count = event.dropped_attributes
    for link in span.links:
        encoded = out.links.add()
        encoded.trace_id = link.context.trace_id.to_bytes(16, "big")
        encoded.span_id = link.context.span_id.to_bytes(8, "big")
        _put_attributes(encoded.attributes, link.attributes)
        if link.dropped_attributes:
            encoded.dropped_attributes_count = link.dropped_attributes
        encoded.flags = _flags(link.context)
    out.status.code = span.status.status_code.value
    if span.status.description:
        out.status.message = span.status.description
    if span.dropped_attributes:
        out.dropped_attributes_count = span.dropped_attributes
    if span.dropped_events:
        out.dropped_events_count = span.dropped_events
    if span.dropped_links:
        out.dropped_links_count = span.dropped_links
    out.flags = _flags(parent)


def _flags(context: SpanContext | None) -> int:
    return _IS_REMOTE if context is not None and context.is_remote else _HAS_IS_REMOTE


def _put_attributes(out: Any, attributes: Mapping[str, Any] | None) -> None:
    if not attributes:
        return
    for key, value in attributes.items():
        field = _PLAIN_FIELDS.get(type(value))
        if field is not None:
            setattr(out.add(key=key).value, field, value)
        else:  # None, sequences, mappings, bytes, subclasses of the plain types: as the SDK encodes them
            try:
                encoded = _encode_value(value)
            except Exception as error:  # the SDK logs such an attribute and leaves it out
                logger.exception("Failed to encode key %s: %s", key, error)
                continue
            out.add(key=key).value.CopyFrom(encoded)
