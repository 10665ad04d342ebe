"""OTLP/HTTP export of spans: the SDK's exporter (endpoint, headers, compression, retries, timeouts) with an encoder
that writes the same protobuf bytes several times faster.

The SDK's encoder builds every attribute, link and event as a message of its own, passes lists of them to the
constructor of the next (which copies them) and hashes each span's resource as a JSON dump to group the batch. This
one (`serialize`) writes the kit's own spans straight from their fields in the wire format, each attribute that has
been seen before (a method, a route, a topic) as the bytes it was the first time, and fills protobuf messages for
any other span (`_put_span`, field by field, as the SDK would). Either way the request is what the SDK's
`encode_spans` serializes to, byte for byte, grouped by the same resource and scope equality; a unit test holds it to
that for spans of every shape. It runs in the batch processor's thread, which holds the interpreter the request path
needs while it encodes.

Only imported while tracing is on.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.common.v1.common_pb2 import InstrumentationScope as EncodedScope
from opentelemetry.proto.resource.v1.resource_pb2 import Resource as EncodedResource
from opentelemetry.proto.trace.v1.trace_pb2 import Span as EncodedSpan
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

from buurtkracht_kit.tracing import RecordedSpan

logger = logging.getLogger(__name__)

_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = _HAS_IS_REMOTE | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_PLAIN_FIELDS = {str: "string_value", int: "int_value", bool: "bool_value", float: "double_value"}  # AnyValue's


class SpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` whose batches are encoded by `encode`; everything else is the SDK's."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
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


def serialize(spans: Sequence[ReadableSpan]) -> bytes:
    """The serialized OTLP request for `spans`: per resource (first seen first), per instrumentation scope, the
    spans in order; byte for byte what the SDK's `encode_spans(spans).SerializeToString()` makes."""
    resources: dict[Any, dict[Any, list[bytes]]] = {}
    for span in spans:
        scopes = resources.get(span.resource)
        if scopes is None:
            scopes = resources[span.resource] = {}
        scope = span.instrumentation_scope or None
        encoded = scopes.get(scope)
        if encoded is None:
            encoded = scopes[scope] = []
        encoded.append(_span_field(span))
    request = []
    for resource, scopes in resources.items():
        resource_spans = [_field(b"\x0a", _resource(resource))]
        for scope, encoded in scopes.items():
            scope_spans = [_field(b"\x0a", _scope(scope)), *encoded]
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(b"\x1a", scope.schema_url.encode()))
            resource_spans.append(_field(b"\x12", b"".join(scope_spans)))
        if resource.schema_url:
            resource_spans.append(_field(b"\x1a", resource.schema_url.encode()))
        request.append(_field(b"\x0a", b"".join(resource_spans)))
    return b"".join(request)


# The wire format (protobuf's encoding): a field is its tag, (number << 3) | wire type, as a varint, then a varint
# value, 4 or 8 little-endian bytes, or a varint length and that many bytes (strings, bytes, nested messages).
# Proto3 leaves out a field at its default (0, "", empty) unless it is a message or of a oneof; fields go out in the
# order of their numbers, as upb writes them.
_BYTE = [bytes((value,)) for value in range(128)]
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_INT64 = range(-(1 << 63), 1 << 63)


def _varint(value: int) -> bytes:
    if value < 0x80:
        return _BYTE[value]
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(tag: bytes, value: bytes) -> bytes:
    """A length-delimited field: `tag`, the length of `value`, `value`."""
    length = len(value)
    return tag + (_BYTE[length] if length < 0x80 else _varint(length)) + value


_KIND = {kind: b"\x30" + _BYTE[kind.value + 1] for kind in SpanKind}  # Span.kind (6); OTLP's kinds are the API's + 1
_UNSET_STATUS = b"\x7a\x00"  # Span.status (15) is always present
_SPAN_FLAGS = b"\x85\x01"  # Span.flags (16), fixed32
_SPAN_IDS = (b"\x0a\x10", b"\x12\x08")  # Span.trace_id (1), Span.span_id (2); Link's alike
_PARENT = b"\x22\x08"  # Span.parent_span_id (4)
_LINK_FLAGS = b"\x35"  # Link.flags (6), fixed32
_ATTRIBUTES: dict[tuple[str, type, object], bytes] = {}  # a span attribute's field (9), by key and value
_NAMES: dict[str, bytes] = {}  # a span name's field (5)
_SEEN_AT_MOST = 4096  # each memo is emptied when it holds more (a URL path with an id is seen once)


def _span_field(span: ReadableSpan) -> bytes:
    """`span` as a field of its `ScopeSpans` (spans, 2): the kit's spans written here, any other (or one with events,
    the rare exception recorded) as a protobuf message filled by `_put_span`."""
    body = None
    if type(span) is RecordedSpan and not span._events:
        try:
            body = _recorded(span)
        except Exception:  # what the message would make of it (an attribute it cannot encode logged and left out)
            body = None
    if body is None:
        message = EncodedSpan()
        _put_span(message, span)
        body = message.SerializePartialToString()
    return _field(b"\x12", body)


def _recorded(span: RecordedSpan) -> bytes:
    context, parent = span._context, span._parent
    trace_id_field, span_id_field = _SPAN_IDS
    parts = [trace_id_field, context[0].to_bytes(16, "big"), span_id_field, context[1].to_bytes(8, "big")]
    if context[4]:
        parts.append(_field(b"\x1a", ",".join(f"{key}={value}" for key, value in context[4].items()).encode()))
    if parent is not None:
        parts += (_PARENT, parent[1].to_bytes(8, "big"))
    name = _NAMES.get(span._name)
    if name is None:
        if len(_NAMES) > _SEEN_AT_MOST:
            _NAMES.clear()
        name = _NAMES[span._name] = _field(b"\x2a", span._name.encode()) if span._name else b""
    parts.append(name)
    parts.append(_KIND[span._kind])
    if span._start_time:
        parts += (b"\x39", _fixed64(span._start_time))
    if span._end_time:
        parts += (b"\x41", _fixed64(span._end_time))
    for key, value in span._attributes.items():
        memo = (key, type(value), value)
        encoded = _ATTRIBUTES.get(memo)
        if encoded is None:
            encoded = _key_value(b"\x4a", key, value)
            if type(value) is not float:  # -0.0 equals 0.0, and nan nothing: a float is written each time
                if len(_ATTRIBUTES) > _SEEN_AT_MOST:
                    _ATTRIBUTES.clear()
                _ATTRIBUTES[memo] = encoded
        parts.append(encoded)
    for link in span._links:
        parts.append(_field(b"\x6a", _link(link)))
    status = span._status
    if status.status_code is StatusCode.UNSET and not status.description:
        parts.append(_UNSET_STATUS)
    else:
        encoded_status = _field(b"\x12", status.description.encode()) if status.description else b""
        if status.status_code.value:
            encoded_status += b"\x18" + _BYTE[status.status_code.value]
        parts.append(_field(b"\x7a", encoded_status))
    parts += (_SPAN_FLAGS, _fixed32(_flags(parent)))
    return b"".join(parts)


def _link(link: Any) -> bytes:
    context = link.context
    trace_id_field, span_id_field = _SPAN_IDS
    parts = [trace_id_field, context[0].to_bytes(16, "big"), span_id_field, context[1].to_bytes(8, "big")]
    if link.attributes:
        parts += (_key_value(b"\x22", key, value) for key, value in link.attributes.items())
    if link.dropped_attributes:
        parts += (b"\x28", _varint(link.dropped_attributes))
    parts += (_LINK_FLAGS, _fixed32(_flags(context)))
    return b"".join(parts)


def _key_value(tag: bytes, key: str, value: Any) -> bytes:
    """A `KeyValue` as the field `tag`; empty when its value cannot be encoded (logged, as the SDK does)."""
    kind = type(value)
    if kind is str:
        any_value = _field(b"\x0a", value.encode())
    elif kind is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif kind is int and value in _INT64:
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # int64: a negative one as its two's complement
    elif kind is float:
        any_value = b"\x21" + _double(value)
    else:  # None, sequences, mappings, bytes, subclasses of the plain types, ints beyond int64: as the SDK does
        try:
            any_value = _encode_value(value).SerializePartialToString()
        except Exception as error:
            logger.exception("Failed to encode key %s: %s", key, error)
            return b""
    encoded_key = _field(b"\x0a", key.encode()) if key else b""
    return _field(tag, encoded_key + _field(b"\x12", any_value))


_RESOURCES: dict[Any, bytes] = {}
_SCOPES: dict[Any, bytes] = {}


def _resource(resource: Any) -> bytes:
    """A resource's `Resource` message (few per process: each written once)."""
    encoded = _RESOURCES.get(resource)
    if encoded is None:
        message = EncodedResource()
        _put_attributes(message.attributes, resource.attributes)
        if len(_RESOURCES) > _SEEN_AT_MOST:
            _RESOURCES.clear()
        encoded = _RESOURCES[resource] = message.SerializePartialToString()
    return encoded


def _scope(scope: Any) -> bytes:
    """An instrumentation scope's `InstrumentationScope` message (empty for none), each written once."""
    encoded = _SCOPES.get(scope)
    if encoded is None:
        message = EncodedScope()
        if scope is not None:
            message.name = scope.name
            if scope.version:
                message.version = scope.version
            _put_attributes(message.attributes, scope.attributes)
        if len(_SCOPES) > _SEEN_AT_MOST:
            _SCOPES.clear()
        encoded = _SCOPES[scope] = message.SerializePartialToString()
    return encoded


def _put_span(out: Any, span: ReadableSpan) -> None:
    """`span` into the `Span` message `out`, as the SDK's encoder fills it."""
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
        if field is not None and (field != "int_value" or value in _INT64):
            setattr(out.add(key=key).value, field, value)
        else:  # None, sequences, mappings, bytes, subclasses of the plain types, ints beyond int64: as the SDK does
            try:
                encoded = _encode_value(value)
            except Exception as error:  # the SDK logs such an attribute and leaves it out
                logger.exception("Failed to encode key %s: %s", key, error)
                continue
            out.add(key=key).value.CopyFrom(encoded)
