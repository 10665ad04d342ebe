"""Distributed tracing with OpenTelemetry: one trace from an HTTP request through the outbox, Kafka and every
consumer to the e-mail or webhook it causes.

- Off unless `otlp_endpoint` is set: then no tracer provider is installed, no instrumentation is added, and the
  kit's own hooks (`enabled()` first) do nothing, so tracing off costs nothing measurable.
- On, every HTTP request starts or continues a trace (W3C `traceparent`, `TracedRequests`), httpx calls
  (and, with `trace_sql`, every asyncpg statement) are spans of it, spans go out over OTLP/HTTP in batches, and a
  trace is sampled by `trace_sample_ratio` unless its parent already decided (parent-based).
- The context travels with the work, never beside it: an outbox row stores the `traceparent` of the span that
  recorded it, the relay sends it as the record's `traceparent` header (its own producer span in between), and a
  consumer continues the trace of each record for the inbox row, the handler and the outbox rows the handler
  writes. The inbox row keeps it too, so work done later from the database (an e-mail sent by a periodic loop) is
  continued with `span_from(traceparent)`.
- Log lines written inside a span carry its `trace_id` (see `logs`).
- The kit's own spans (requests, consumed records, relay batches, group commits) are `RecordedSpan`s: the SDK's
  sampler, id generator, batch processor and OTLP exporter, without the SDK's general-purpose span object, whose
  checks cost more than the rest of a request's tracing together (docs/decisions.md). Library instrumentations
  (httpx, asyncpg) use the SDK's spans.
"""

from __future__ import annotations

import contextlib
import logging
import random
import re
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.trace.span import DEFAULT_TRACE_STATE

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.sdk.trace.id_generator import IdGenerator
    from opentelemetry.sdk.trace.sampling import Sampler
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

logger = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
# The CloudEvents Kafka binding maps the Distributed Tracing extension to `ce_traceparent`; the relay writes the
# protocol's own `traceparent` header (as OpenTelemetry's Kafka instrumentations do), and a consumer reads either.
CE_TRACEPARENT = "ce_traceparent"
TRACE_HEADERS = frozenset({TRACEPARENT, "tracestate", CE_TRACEPARENT, "ce_tracestate"})
_UNTRACED = frozenset({"/healthz", "/readyz", "/metrics"})
MAX_LINKS = 128  # links a span keeps (the SDK's default limit): a batch span links no more callers than that

_propagator = TraceContextTextMapPropagator()
_tracer: trace.Tracer = trace.NoOpTracer()
_provider: Any = None
_recorder: _Recorder | None = None


def enabled() -> bool:
    """Whether this process exports traces (an OTLP endpoint was configured)."""
    return _recorder is not None


def configure(
    service_name: str,
    endpoint: str | None,
    sample_ratio: float = 1.0,
    *,
    sql: bool = True,
    exporter: SpanExporter | None = None,
) -> bool:
    """Install the tracer provider and the library instrumentations once per process; returns whether tracing is on.

    `endpoint` is the OTLP/HTTP base URL (`http://host:4318`); spans go to its `/v1/traces` (or to `exporter`, in
    tests). `sql`: a span for every statement (asyncpg's instrumentation)."""
    global _tracer, _provider, _recorder
    if not (endpoint or exporter) or _recorder is not None:
        return _recorder is not None
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased

    # every trace at 1 (the same decision as the ratio's, without its arithmetic on each span)
    root_sampler = ALWAYS_ON if sample_ratio >= 1 else TraceIdRatioBased(sample_ratio)
    provider = TracerProvider(
        resource=_hashed_once(Resource.create({"service.name": service_name, "service.namespace": "buurtkracht"})),
        sampler=ParentBased(root_sampler),
    )
    if exporter is None:
        assert endpoint is not None
        from buurtkracht_kit import otlp

        exporter = otlp.SpanExporter(endpoint=endpoint.rstrip("/") + "/v1/traces")
    processor = BatchSpanProcessor(exporter, max_queue_size=8192)
    provider.add_span_processor(processor)
    # Not installed as the global provider: FastAPI's own telemetry would take that as its cue to add a server span
    # and three more to every request; each instrumentation is handed this provider instead.
    if sql:
        AsyncPGInstrumentor().instrument(tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    _provider = provider
    _tracer = provider.get_tracer("buurtkracht_kit")
    _recorder = _Recorder(provider, root_sampler, processor)
    logger.info("tracing to %s, sampling %.0f %% of new traces", endpoint or exporter, sample_ratio * 100)
    return True


def _hashed_once(resource: Resource) -> Resource:
    """The same resource, hashed once: the OTLP encoder groups a batch's spans by resource, and the SDK's resource
    hashes itself as a JSON dump of its attributes, once for every span of every batch."""
    from opentelemetry.sdk.resources import Resource

    hashed = hash(resource)

    class ProcessResource(Resource):
        def __hash__(self) -> int:  # a resource is immutable
            return hashed

        __eq__ = Resource.__eq__

    return ProcessResource(resource.attributes, resource.schema_url)


def tracer() -> trace.Tracer:
    """The SDK's tracer for this process (a no-op one while tracing is off), for spans beside the kit's own."""
    return _tracer


_SAMPLED, _NOT_SAMPLED = trace.TraceFlags(trace.TraceFlags.SAMPLED), trace.TraceFlags(trace.TraceFlags.DEFAULT)
_UNSET = Status(StatusCode.UNSET)
_SPAN_ID_BITS = (1 << 64) - 1


def _span_context(
    trace_id: int, span_id: int, is_remote: bool, flags: trace.TraceFlags, state: trace.TraceState
) -> trace.SpanContext:
    """A valid `SpanContext` (both ids known to be non-zero and in range) without its constructor's checks: the
    tuple it is, field for field."""
    return tuple.__new__(trace.SpanContext, (trace_id, span_id, is_remote, flags, state, True))


def _current_parent() -> trace.SpanContext:
    return trace.get_current_span().get_span_context()


class _Recorder:
    """Starts the kit's spans with the provider's sampler and id generator, and hands each ended one to the
    provider's batch processor, as the SDK's tracer would.

    Lean on purpose: a request or a consumed record starts and ends one span, among code that has pushed this
    code out of the processor's caches since the last one, so each call and object it saves counts several times
    over (docs/performance.md)."""

    def __init__(self, provider: Any, root_sampler: Sampler, processor: SpanProcessor) -> None:
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
        from opentelemetry.sdk.trace.sampling import ALWAYS_ON
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.event = Event  # imported once, not on every span
        self.root_sampler = root_sampler
        self.every_trace = root_sampler is ALWAYS_ON  # its decision needs no asking: sampled, no trace state
        self.ids: IdGenerator = provider.id_generator
        # the SDK's generator draws each id from `random.getrandbits`; drawn here, a root's two ids are one draw
        self.random_ids = type(self.ids) is RandomIdGenerator
        self.resource: Resource = provider.resource
        self.scope: InstrumentationScope = InstrumentationScope("buurtkracht_kit")
        # a kit span is always sampled, the check `on_end` makes first: the SDK's batch processor takes it directly
        self.finished = processor._batch_processor.emit if type(processor) is BatchSpanProcessor else processor.on_end

    def _ids(self, parent: trace.SpanContext | None) -> tuple[int, int]:
        """A new span's trace id (the parent's, else a new one) and span id, from the provider's id generator."""
        if self.random_ids:
            if parent is None:
                bits = random.getrandbits(192)
                trace_id, span_id = bits >> 64, bits & _SPAN_ID_BITS
                if trace_id and span_id:
                    return trace_id, span_id
            else:
                span_id = random.getrandbits(64)
                if span_id:
                    return parent[0], span_id
        trace_id = parent[0] if parent is not None else self.ids.generate_trace_id()
        return trace_id, self.ids.generate_span_id()

    def start(
        self,
        name: str,
        parent: trace.SpanContext | None,
        kind: SpanKind,
        attributes: dict[str, Any] | None,
        links: Sequence[Link] = (),
        *,
        plain: bool = False,
    ) -> trace.Span:
        """A child of `parent` (when given and valid) or the root of a new trace: a recorded span when the trace is
        sampled (the parent's decision, else the root sampler's: parent-based, as the provider's sampler), else a
        non-recording span that still carries a new span id, so the work it stands for passes the trace (unsampled)
        on. `plain`: the span takes `attributes` as they are, a new dict of plain values only the kit made."""
        if parent is not None and not parent.is_valid:
            parent = None
        trace_id, span_id = self._ids(parent)
        if parent is not None:
            sampled, trace_state = bool(parent[3] & 1), parent[4]
        elif self.every_trace:
            sampled, trace_state = True, DEFAULT_TRACE_STATE
        else:
            decision = self.root_sampler.should_sample(None, trace_id, name, kind, None, links)
            sampled = decision.decision.is_sampled()
            trace_state = decision.trace_state if decision.trace_state is not None else DEFAULT_TRACE_STATE
        span_context = _span_context(trace_id, span_id, False, _SAMPLED if sampled else _NOT_SAMPLED, trace_state)
        if not sampled:
            return trace.NonRecordingSpan(span_context)
        return RecordedSpan(self, name, span_context, parent, kind, attributes, links, plain)


_PLAIN = frozenset({str, int, bool, float})


class RecordedSpan(trace.Span, ReadableSpan):
    """A sampled span the kit records itself: name, kind, parent, links, attributes, events and status, kept in
    plain containers, and itself the `ReadableSpan` the batch processor gets when it ends (as the SDK's own span
    is). Attribute values other than str, int, bool and float (the only ones the kit sets) are recorded as their
    `str`, as the SDK records a value of no attribute type (a sequence it would keep as one); once ended it changes
    no more (a second `end` included), so nothing of it is shared between threads while it changes."""

    # the fields are ReadableSpan's own, so its properties (what the exporter reads) read them as they are; those
    # most spans leave as they are stay on the class
    _end_time: int | None = None
    _traceparent: str | None = None
    _status = _UNSET
    _instrumentation_info = None
    _events: Sequence[Any] = ()
    _links: Sequence[Link] = ()

    def __init__(
        self,
        recorder: _Recorder,
        name: str,
        context: trace.SpanContext,
        parent: trace.SpanContext | None,
        kind: SpanKind,
        attributes: Mapping[str, Any] | None,
        links: Sequence[Link] = (),
        plain: bool = False,
    ) -> None:
        self._recorder = recorder
        self._name = name
        self._context = context
        self._parent = parent
        self._kind = kind
        self._resource = recorder.resource
        self._instrumentation_scope = recorder.scope
        if links:
            self._links = tuple(links)
        if plain and attributes is not None:
            self._attributes: dict[str, Any] = attributes  # type: ignore[assignment]
        else:
            self._attributes = {}
            if attributes:
                self.set_attributes(attributes)
        self._start_time = time.time_ns()

    def get_span_context(self) -> trace.SpanContext:
        return self._context

    def traceparent(self) -> str:
        """The `traceparent` naming this span, formatted once."""
        if self._traceparent is None:
            self._traceparent = _format(self._context)
        return self._traceparent

    def is_recording(self) -> bool:
        return self._end_time is None

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        if self._end_time is None:
            recorded = self._attributes
            for key, value in attributes.items():
                recorded[key] = value if type(value) in _PLAIN else str(value)

    def set_attribute(self, key: str, value: Any) -> None:
        if self._end_time is None:
            self._attributes[key] = value if type(value) in _PLAIN else str(value)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            event = self._recorder.event(name, dict(attributes or {}), timestamp or time.time_ns())
            self._events = [*self._events, event]

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        """The SDK's rule: OK is final, UNSET never overwrites."""
        if not isinstance(status, Status):
            status = Status(status, description)
        if (
            self._end_time is None
            and self._status.status_code is not StatusCode.OK
            and status.status_code is not StatusCode.UNSET
        ):
            self._status = status

    def record_exception(
        self,
        exception: BaseException,
        attributes: Mapping[str, Any] | None = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        """An `exception` event with the semantic conventions' attributes, as the SDK records it."""
        error_type, module = type(exception).__qualname__, type(exception).__module__
        recorded = {
            "exception.type": error_type if module == "builtins" else f"{module}.{error_type}",
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        self.add_event("exception", {**recorded, **(attributes or {})}, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            return
        self._end_time = end_time or time.time_ns()
        self._recorder.finished(self)


def instrument_app(app: FastAPI) -> None:
    """Every request to `app` (but the probes and `/metrics`) starts or continues a trace (`TracedRequests`)."""
    if _recorder is not None:
        app.add_middleware(TracedRequests)


def disable() -> None:
    """Stop tracing in this process (tests turn it on and off again)."""
    global _tracer, _recorder
    if _recorder is None:
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    flush()
    if AsyncPGInstrumentor().is_instrumented_by_opentelemetry:
        AsyncPGInstrumentor().uninstrument()
    HTTPXClientInstrumentor().uninstrument()
    _tracer, _recorder = trace.NoOpTracer(), None


def flush() -> None:
    """Export what is buffered (when the service stops)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


class TracedRequests:
    """Pure ASGI middleware: a SERVER span per request, continuing the caller's `traceparent` if any, named by method
    and route template once routing found it (`POST /api/v1/rounds/{round_id}/pledges`); and a `traceresponse`
    header on the answer (W3C Trace Context level 2, `00-<trace id>-<span id>-<flags>`), so an answer a resident or an
    integration reports leads to its trace. Lean on purpose: OpenTelemetry's FastAPI instrumentation matches every
    route again to name the span, which cost a millisecond a request here."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] in _UNTRACED:
            await self.app(scope, receive, send)
            return
        carrier = {}
        for name, value in scope["headers"]:
            if name == b"traceparent" or name == b"tracestate":
                carrier[name.decode()] = value.decode("latin-1")
        method = scope["method"]
        assert _recorder is not None  # installed only while tracing is on
        span = _recorder.start(
            method,
            trace.get_current_span(_propagator.extract(carrier)).get_span_context() if carrier else _current_parent(),
            SpanKind.SERVER,
            {"http.request.method": method, "url.path": scope["path"]},
            plain=True,
        )
        recorded = type(span) is RecordedSpan
        traceresponse = traceparent_of_span(span).encode()
        status = None

        async def send_traced(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"traceresponse", traceresponse)]
            await send(message)

        # the span made current by hand, not by `start_as_current_span`: its layers of context managers cost more
        # than the span itself on every request
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            await self.app(scope, receive, send_traced)
        except BaseException as error:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))
            raise
        finally:
            otel_context.detach(token)
            if recorded:
                route = getattr(scope.get("route"), "path", None)
                if status is not None:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_status(Status(StatusCode.ERROR))
                if route:
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                span.end()


def current_traceparent() -> str | None:
    """The `traceparent` of the current span, to store with work done later (an outbox row); None when off."""
    return traceparent_of_span(trace.get_current_span()) if _recorder is not None else None


def _format(span_context: trace.SpanContext) -> str:
    """The `traceparent` (and `traceresponse`) value naming a span: W3C Trace Context, version 00, what the
    propagator's `inject` writes, without its carrier and context lookups (the fields read by position: trace id,
    span id, flags)."""
    return f"00-{span_context[0]:032x}-{span_context[1]:016x}-{span_context[3]:02x}"


def current_trace_id() -> str | None:
    """The current trace's id as 32 hex digits (what log lines and the trace backend show), or None."""
    span_context = trace.get_current_span().get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


_VERSION_00 = re.compile(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")
_FLAGS = [trace.TraceFlags(flags) for flags in range(256)]


def _span_context_of(traceparent: str) -> trace.SpanContext | None:
    """The remote span a `traceparent` names, or None when it is malformed, as the propagator reads it: the form
    the kit writes (version 00) read directly, any other handed to the propagator."""
    if _VERSION_00.fullmatch(traceparent) is None:
        extracted = trace.get_current_span(_propagator.extract({TRACEPARENT: traceparent})).get_span_context()
        return extracted if extracted.is_valid else None
    trace_id, span_id = int(traceparent[3:35], 16), int(traceparent[36:52], 16)
    if not (trace_id and span_id):
        return None
    return _span_context(trace_id, span_id, True, _FLAGS[int(traceparent[53:], 16)], DEFAULT_TRACE_STATE)


def _parent_of(traceparent: str | None) -> trace.SpanContext | None:
    """The span `traceparent` names, or, when it is absent, the current one: the parent of a span continuing it."""
    return _span_context_of(traceparent) if traceparent else _current_parent()


def traceparent_of(headers: Sequence[tuple[str, bytes | None]]) -> str | None:
    """The `traceparent` a Kafka record carries (or its CloudEvents extension form `ce_traceparent`)."""
    found = None
    for name, value in headers:
        if value is not None and name in (TRACEPARENT, CE_TRACEPARENT):
            found = value.decode("latin-1")
            if name == TRACEPARENT:
                break
    return found


def without_trace_headers(headers: Sequence[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """The record's headers but the trace context: what the CloudEvents reader takes (it reads only attributes)."""
    return [header for header in headers if header[0] not in TRACE_HEADERS]


@contextlib.contextmanager
def span_from(
    traceparent: str | None,
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> Iterator[trace.Span | None]:
    """A span continuing the trace `traceparent` names (a new trace when None), current inside the block; an
    exception that leaves the block is recorded on it. Yields None, at no cost, when tracing is off."""
    if _recorder is None:
        yield None
        return
    started = _recorder.start(name, _parent_of(traceparent), kind, attributes)
    with trace.use_span(started, end_on_exit=True, record_exception=True, set_status_on_exception=True):
        yield started


@contextlib.contextmanager
def span(name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None) -> Iterator[None]:
    """A child span of the current one, current inside the block; nothing when tracing is off."""
    if _recorder is None:
        yield
        return
    with trace.use_span(_recorder.start(name, _current_parent(), kind, attributes), end_on_exit=True):
        yield


def start_span(
    traceparent: str | None, name: str, kind: SpanKind, attributes: dict[str, Any] | None = None, *, plain: bool = False
) -> trace.Span:
    """A started span continuing the trace `traceparent` names (the current one when None), not made current; the
    caller ends it. Only while tracing is on. `plain`: `attributes` is a new dict of plain values, taken as it is."""
    assert _recorder is not None
    return _recorder.start(name, _parent_of(traceparent), kind, attributes, plain=plain)


def traceparent_of_span(span_: trace.Span) -> str | None:
    """The `traceparent` naming `span_` as the parent of work it causes (formatted once for the kit's spans)."""
    if type(span_) is RecordedSpan:
        return span_.traceparent()
    span_context = span_.get_span_context()
    return _format(span_context) if span_context.is_valid else None


def batch_span(
    traceparents: Sequence[str | None], name: str, kind: SpanKind, attributes: dict[str, Any] | None = None
) -> trace.Span | None:
    """A started span of work done at once for several items, each with the `traceparent` it came with (records
    sent in one batch): a child of the first sampled item's span, linked to the other sampled ones (each distinct
    context once), so a lone item's trace holds the span and a busy moment costs one span, not one per item.
    None when tracing is off or no item is sampled; the caller ends it."""
    if _recorder is None:
        return None
    distinct = dict.fromkeys(value for value in traceparents if value and sampled(value))
    spans = [context for context in map(_span_context_of, list(distinct)[: MAX_LINKS + 1]) if context is not None]
    if not spans:
        return None
    return _recorder.start(name, spans[0], kind, attributes, [Link(context) for context in spans[1:]])


def linked_span(
    contexts: Sequence[otel_context.Context | None],
    name: str,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: dict[str, Any] | None = None,
) -> trace.Span | None:
    """A started span of work done at once for several callers: a child of the first context's span, linked to
    the spans of the next `MAX_LINKS` (the SDK keeps no more, so no more are made). None when tracing is off or
    no context is given; the caller ends it."""
    present = [context for context in contexts if context is not None]
    if _recorder is None or not present:
        return None
    spans = [trace.get_current_span(context).get_span_context() for context in present[: MAX_LINKS + 1]]
    return _recorder.start(name, spans[0], kind, attributes, [Link(context) for context in spans[1:]])


async def consumed_traceparent(database: Any, consumer: str, message_id: object) -> str | None:
    """The `traceparent` the consumer recorded with a message in its inbox, for work done later because of it (an
    e-mail a periodic loop sends); None when tracing is off, at no cost. `database`: a pool or connection."""
    if _recorder is None or message_id is None:
        return None
    return await database.fetchval(
        "SELECT traceparent FROM inbox WHERE consumer = $1 AND message_id = $2", consumer, str(message_id)
    )


def sampled(traceparent: str) -> bool:
    """Whether a well-formed `traceparent` says its trace is recorded (flags end in 1)."""
    return len(traceparent) == 55 and traceparent[-1] in "13579bdf"


def fail(span_: trace.Span, error: str) -> None:
    span_.set_status(Status(StatusCode.ERROR, error))
