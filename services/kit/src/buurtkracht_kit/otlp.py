"""OTLP/HTTP export of spans: the SDK's exporter (endpoint, headers, compression, retries, timeouts) with an encoder
that writes the same protobuf bytes at a fraction of the cost (docs/performance.md).

The SDK's encoder builds every attribute, link and event as a protobuf message of its own, passes lists of them to
the constructor of the next (which copies them) and hashes each span's resource as a JSON dump to group the batch.
This one writes the request in the wire format itself, field by field, in the order protobuf writes them, each span
attribute seen before (a method, a route, a topic) as the bytes it was the first time; it groups by the same
resource and scope equality, and leaves values of other than the plain types (sequences, mappings, bytes) to the
SDK's own `_encode_value`. A unit test holds it to the SDK's bytes for spans of every shape. It runs in the batch
processor's thread, which holds the interpreter the request path needs while it encodes.

Only imported while tracing is on.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.exporter.otlp.proto.common._internal import _encode_value
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.trace.v1.trace_pb2 import SpanFlags
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import SpanContext, SpanKind

from buurtkracht_kit.tracing import RecordedSpan

logger = logging.getLogger(__name__)


class SpanExporter(OTLPSpanExporter):
    """`OTLPSpanExporter` whose batches are encoded by `serialize`; everything else is the SDK's."""

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
    """The serialized `ExportTraceServiceRequest` for `spans`: per resource (first seen first), per instrumentation
    scope, the spans in order; byte for byte what the SDK's `encode_spans(spans).SerializeToString()` makes."""
    resources: dict[Any, dict[Any, list[bytes]]] = {}
    for span in spans:
        scopes = resources.get(span.resource)
        if scopes is None:
            scopes = resources[span.resource] = {}
        scope = span.instrumentation_scope or None
        encoded = scopes.get(scope)
        if encoded is None:
            encoded = scopes[scope] = []
        encoded.append(_field(b"\x12", _span(span)))  # ScopeSpans.spans (2)
    request = []
    for resource, scopes in resources.items():
        resource_spans = [_field(b"\x0a", _resource(resource))]  # ResourceSpans.resource (1), always present
        for scope, encoded in scopes.items():
            scope_spans = [_field(b"\x0a", _scope(scope)), *encoded]  # ScopeSpans.scope (1), always present
            if scope is not None and scope.schema_url:
                scope_spans.append(_field(b"\x1a", scope.schema_url.encode()))  # ScopeSpans.schema_url (3)
            resource_spans.append(_field(b"\x12", b"".join(scope_spans)))  # ResourceSpans.scope_spans (2)
        if resource.schema_url:
            resource_spans.append(_field(b"\x1a", resource.schema_url.encode()))  # ResourceSpans.schema_url (3)
        request.append(_field(b"\x0a", b"".join(resource_spans)))  # ExportTraceServiceRequest.resource_spans (1)
    return b"".join(request)


# The wire format: a field is its tag, (number << 3) | wire type, as a varint, then a varint value, 4 or 8
# little-endian bytes, or a varint length and that many bytes (strings, bytes, nested messages). Proto3 leaves out
# a field at its default (0, "", empty) unless it is a message set or a member of a oneof (AnyValue's); fields go
# out in the order of their numbers, as protobuf writes them.
_BYTE = [bytes((value,)) for value in range(128)]
_fixed64 = struct.Struct("<Q").pack
_fixed32 = struct.Struct("<I").pack
_double = struct.Struct("<d").pack
_INT64 = range(-(1 << 63), 1 << 63)
_HAS_IS_REMOTE = SpanFlags.SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK
_IS_REMOTE = _HAS_IS_REMOTE | SpanFlags.SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK
_KIND = {kind: b"\x30" + _BYTE[kind.value + 1] for kind in SpanKind}  # Span.kind (6): OTLP's are the API's + 1
_UNSET_STATUS = b"\x7a\x00"  # Span.status (15), an empty message
_ATTRIBUTES: dict[tuple[str, type, object], bytes] = {}  # Span.attributes (9) fields, by key, value type and value
_REMEMBERED = frozenset({str, int, bool})  # not float: -0.0 == 0.0, and nan equals nothing; nor what may not hash
_NAMES: dict[str, bytes] = {}  # Span.name (5) fields
_NONE_DROPPED = (0, 0, 0)
_SEEN_AT_MOST = 4096  # a memo is emptied when it holds more (a URL path with an id in it is seen once)


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


def _ids(context: SpanContext) -> list[bytes]:
    """A span's or a link's trace_id (1) and span_id (2) (a `SpanContext` is a tuple: trace id, span id, is remote,
    flags, trace state; read by position, past its properties)."""
    return [b"\x0a\x10", context[0].to_bytes(16, "big"), b"\x12\x08", context[1].to_bytes(8, "big")]


def _flags(context: SpanContext | None) -> bytes:
    """The flags (fixed32) of a span (of its parent's context) or of a link (of the linked context)."""
    return _fixed32(_IS_REMOTE if context is not None and context[2] else _HAS_IS_REMOTE)


def _span(span: ReadableSpan) -> bytes:
    """A `Span` message, from the `ReadableSpan`'s own fields, which its properties would copy (the SDK is pinned;
    the unit test encodes the SDK's spans and the kit's)."""
    context, parent, name, attributes = span._context, span._parent, span._name, span._attributes
    parts = _ids(context)
    if context[4]:  # trace_state (3)
        parts.append(_field(b"\x1a", ",".join(f"{key}={value}" for key, value in context[4].items()).encode()))
    if parent is not None:  # parent_span_id (4)
        parts += (b"\x22\x08", parent[1].to_bytes(8, "big"))
    encoded_name = _NAMES.get(name)
    if encoded_name is None:
        if len(_NAMES) > _SEEN_AT_MOST:
            _NAMES.clear()
        encoded_name = _NAMES[name] = _field(b"\x2a", name.encode()) if name else b""
    parts += (encoded_name, _KIND[span._kind])
    if span._start_time:  # start_time_unix_nano (7), end_time_unix_nano (8)
        parts += (b"\x39", _fixed64(span._start_time))
    if span._end_time:
        parts += (b"\x41", _fixed64(span._end_time))
    if attributes:  # attributes (9)
        for key, value in attributes.items():
            kind = type(value)
            if kind in _REMEMBERED:
                memo = (key, kind, value)
                encoded = _ATTRIBUTES.get(memo)
                if encoded is None:
                    if len(_ATTRIBUTES) > _SEEN_AT_MOST:
                        _ATTRIBUTES.clear()
                    encoded = _ATTRIBUTES[memo] = _key_value(b"\x4a", key, value)
                parts.append(encoded)
            else:
                parts.append(_key_value(b"\x4a", key, value))
    # a kit span keeps all it is given; the SDK's counts what its limits dropped
    dropped = (
        _NONE_DROPPED
        if type(span) is RecordedSpan
        else (span.dropped_attributes, span.dropped_events, span.dropped_links)
    )
    if dropped[0]:  # dropped_attributes_count (10)
        parts += (b"\x50", _varint(dropped[0]))
    for event in span._events:  # events (11)
        parts.append(_field(b"\x5a", _event(event)))
    if dropped[1]:  # dropped_events_count (12)
        parts += (b"\x60", _varint(dropped[1]))
    for link in span._links:  # links (13)
        parts.append(_field(b"\x6a", _link(link)))
    if dropped[2]:  # dropped_links_count (14)
        parts += (b"\x70", _varint(dropped[2]))
    status = span._status
    code, description = status.status_code.value, status.description
    if code or description:  # status (15): message (2), code (3)
        encoded_status = _field(b"\x12", description.encode()) if description else b""
        if code:
            encoded_status += b"\x18" + _BYTE[code]
        parts.append(_field(b"\x7a", encoded_status))
    else:
        parts.append(_UNSET_STATUS)
    parts += (b"\x85\x01", _flags(parent))  # flags (16)
    return b"".join(parts)


def _event(event: Any) -> bytes:
    """A `Span.Event` message: time_unix_nano (1), name (2), attributes (3), dropped_attributes_count (4)."""
    parts = [b"\x09" + _fixed64(event.timestamp)] if event.timestamp else []
    if event.name:
        parts.append(_field(b"\x12", event.name.encode()))
    parts.append(_attributes(b"\x1a", event.attributes))
    if event.dropped_attributes:
        parts += (b"\x20", _varint(event.dropped_attributes))
    return b"".join(parts)


def _link(link: Any) -> bytes:
    """A `Span.Link` message: trace_id (1), span_id (2), attributes (4), dropped_attributes_count (5), flags (6);
    the SDK writes no trace_state (3)."""
    context, attributes = link.context, link.attributes
    parts = _ids(context)
    if attributes is not None:  # a link the kit makes has none
        parts.append(_attributes(b"\x22", attributes))
        if link.dropped_attributes:
            parts += (b"\x28", _varint(link.dropped_attributes))
    parts += (b"\x35", _flags(context))
    return b"".join(parts)


def _key_value(tag: bytes, key: str, value: Any) -> bytes:
    """A `KeyValue` message (key (1), value (2)) as the field `tag`; nothing when its value cannot be encoded (logged
    and left out, as the SDK does)."""
    kind = type(value)
    if kind is str:  # AnyValue: string_value (1), bool_value (2), int_value (3), double_value (4)
        any_value = _field(b"\x0a", value.encode())
    elif kind is bool:
        any_value = b"\x10\x01" if value else b"\x10\x00"
    elif kind is int and value in _INT64:
        any_value = b"\x18" + _varint(value & 0xFFFFFFFFFFFFFFFF)  # a negative int64 as its two's complement
    elif kind is float:
        any_value = b"\x21" + _double(value)
    else:  # None, sequences, mappings, bytes, subclasses of the plain types, ints beyond int64: the SDK's encoding
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
    """A `Resource` message: attributes (1). A process has few resources: each is written once."""
    encoded = _RESOURCES.get(resource)
    if encoded is None:
        if len(_RESOURCES) > _SEEN_AT_MOST:
            _RESOURCES.clear()
        encoded = _RESOURCES[resource] = _attributes(b"\x0a", resource.attributes)
    return encoded


def _scope(scope: Any) -> bytes:
    """An `InstrumentationScope` message (name (1), version (2), attributes (3)), empty for none; each written once."""
    encoded = _SCOPES.get(scope)
    if encoded is None:
        encoded = b""
        if scope is not None:
            encoded = _field(b"\x0a", scope.name.encode()) if scope.name else b""
            if scope.version:
                encoded += _field(b"\x12", scope.version.encode())
            encoded += _attributes(b"\x1a", scope.attributes)
        if len(_SCOPES) > _SEEN_AT_MOST:
            _SCOPES.clear()
        _SCOPES[scope] = encoded
    return encoded


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Each attribute as a `KeyValue` field `tag`."""
    return b"".join(_key_value(tag, key, value) for key, value in (attributes or {}).items())
