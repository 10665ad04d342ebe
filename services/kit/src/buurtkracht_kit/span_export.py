"""Spans exported by a process of their own: the service hands each batch over a pipe as plain data, and a child
process encodes it and sends it over OTLP/HTTP.

Encoding a batch and sending it took about three quarters of what tracing added to a pledge's CPU in the vouchers
service, in the batch processor's thread, which holds the interpreter the event loop needs while it works, so each
export also held up the requests behind it (docs/performance.md). Turning a span into tuples costs a fraction of
encoding it, and the child runs on another core.

- The SDK's batch processor still batches, bounds its queue (dropping when it is full) and calls `export` from its
  thread; `PipeExporter.export` writes the batch as one frame: its length, then `marshal` data (both ends run the
  same interpreter), `compact` of the spans.
- The child (`python -m buurtkracht_kit.span_export ENDPOINT`) rebuilds the spans (`Rebuilder`) and exports them with
  `otlp.SpanExporter`, the SDK's exporter with its `OTEL_EXPORTER_OTLP_*` settings, retries and timeouts: what
  reaches the backend is byte for byte what the service would have sent itself. While the backend is slow, the pipe
  fills, the processor's thread waits and its queue drops, as when that thread sent the batches itself.
- `force_flush` returns once the child has sent everything handed to it before (it answers a flush frame).
- Each process has its own child: a process forked from the service (an HTTP worker) starts one at the fork.
- The child ends when its pipe closes: when the service stops or dies. It ignores SIGINT and SIGTERM, so a signal to
  the whole process group does not lose the batch the service hands over while it stops.
- A child that died is started again at the next batch, at most once every `RESTART_SECONDS`; a batch that finds no
  child is dropped and logged, as one a backend refuses.
"""

from __future__ import annotations

import logging
import marshal
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import SpanContext

logger = logging.getLogger(__name__)

SPANS, FLUSH = 0, 1  # a frame's kind: a batch of spans, or a flush the child answers with its number
RESTART_SECONDS = 10.0
_LENGTH = struct.Struct(">I")
_FLUSHED = struct.Struct(">Q")
_F_SETPIPE_SZ = 1031  # Linux's fcntl for a pipe's buffer
_PIPE_SIZE = 1 << 20  # the most an unprivileged process may ask for by default (/proc/sys/fs/pipe-max-size)

Context = tuple[int, int, bool, int, tuple[tuple[str, str], ...] | None]


def _context(context: SpanContext) -> Context:
    state = context.trace_state
    return (
        context.trace_id,
        context.span_id,
        context.is_remote,
        int(context.trace_flags),
        tuple(state.items()) or None,
    )


def _attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(attributes) if attributes else None


def compact(spans: Sequence[ReadableSpan]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """`spans` as plain data for `marshal`: the resources they name, once each, and per span a tuple of every field
    the OTLP encoder reads (`Rebuilder` reads it back)."""
    resources: dict[int, int] = {}  # by identity: a provider's spans share its resource
    table: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for span in spans:
        resource = span.resource
        index = resources.get(id(resource))
        if index is None:
            index = resources[id(resource)] = len(table)
            table.append((_attributes(resource.attributes), resource.schema_url))
        parent, scope, status = span.parent, span.instrumentation_scope, span.status
        rows.append(
            (
                span.name,
                _context(span.context),
                None if parent is None else _context(parent),
                span.kind.value,
                span.start_time,
                span.end_time,
                _attributes(span.attributes),
                [(e.name, e.timestamp, _attributes(e.attributes), e.dropped_attributes) for e in span.events],
                [
                    (_context(link.context), _attributes(link.attributes), link.dropped_attributes)
                    for link in span.links
                ],
                status.status_code.value,
                status.description,
                (span.dropped_attributes, span.dropped_events, span.dropped_links),
                None if scope is None else (scope.name, scope.version, scope.schema_url, _attributes(scope.attributes)),
                index,
            )
        )
    return table, rows


def _plain(value: Any) -> Any:
    """An attribute value as the value of the plain type the OTLP encoder writes for it (a subclass of str, int or
    float as its content, whatever its `__str__` says; a sequence as a tuple), for `marshal`, which takes the exact
    types only."""
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        return tuple(_plain(item) for item in value)
    if isinstance(value, Mapping):
        return {str.__str__(key): _plain(item) for key, item in value.items()}
    return value


def _plain_attributes(attributes: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if attributes is None else _plain(attributes)


def _encoded(frame: tuple[Any, ...]) -> bytes:
    """A frame as its bytes; attribute values of types `marshal` refuses (subclasses of the plain ones) made plain."""
    try:
        return marshal.dumps(frame)
    except ValueError:
        kind, (table, rows) = frame
        table = [(_plain_attributes(attributes), schema_url) for attributes, schema_url in table]
        rows = [
            (
                *row[:6],
                _plain_attributes(row[6]),
                [(name, at, _plain_attributes(attributes), dropped) for name, at, attributes, dropped in row[7]],
                [(context, _plain_attributes(attributes), dropped) for context, attributes, dropped in row[8]],
                *row[9:12],
                None if row[12] is None else (*row[12][:3], _plain_attributes(row[12][3])),
                row[13],
            )
            for row in rows
        ]
        return marshal.dumps((kind, (table, rows)))


def _key(attributes: dict[str, Any] | None) -> Any:
    """A hashable key for attributes (None when a value cannot be one: such a resource or scope is made anew)."""
    if not attributes:
        return ()
    key = tuple(attributes.items())
    try:
        hash(key)
    except TypeError:
        return None
    return key


class Rebuilder:
    """The child's side of `compact`: the spans as the SDK's `ReadableSpan`s, dropped counts included. A resource,
    scope or status comes back in batch after batch, so each is made once; a span context is made as the tuple it
    is, as the kit makes its own (`tracing._span_context`)."""

    def __init__(self) -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import Event
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope
        from opentelemetry.trace import Link, SpanKind, Status, StatusCode, TraceFlags
        from opentelemetry.trace.span import DEFAULT_TRACE_STATE

        self._resource, self._scope, self._status_of = Resource, InstrumentationScope, Status
        self._event, self._link, self._code = Event, Link, StatusCode
        self._kinds = {kind.value: kind for kind in SpanKind}
        self._flags = [TraceFlags(flags) for flags in range(256)]
        self._no_state = DEFAULT_TRACE_STATE
        self._resources: dict[Any, Any] = {}
        self._scopes: dict[Any, Any] = {}
        self._statuses: dict[tuple[int, str | None], Any] = {}

    def _context(self, fields: Context) -> SpanContext:
        from opentelemetry.trace import TraceState

        trace_id, span_id, is_remote, flags, state = fields
        trace_state = self._no_state if state is None else TraceState(list(state))
        valid = bool(trace_id and span_id)
        return tuple.__new__(SpanContext, (trace_id, span_id, is_remote, self._flags[flags], trace_state, valid))

    def _made_once(self, made: dict[Any, Any], key: Any, make: Any) -> Any:
        if key is None or key[-1] is None:
            return make()
        found = made.get(key)
        if found is None:
            found = made[key] = make()
        return found

    def _status(self, code: int, description: str | None) -> Any:
        found = self._statuses.get((code, description))
        if found is None:
            found = self._statuses[(code, description)] = self._status_of(self._code(code), description)
        return found

    @staticmethod
    def _counted(attributes: dict[str, Any] | None, dropped: int) -> Any:
        if not dropped:
            return attributes
        from opentelemetry.attributes import BoundedAttributes

        bounded = BoundedAttributes(maxlen=None, attributes=attributes, immutable=False)
        bounded.dropped = dropped
        return bounded

    @staticmethod
    def _listed(items: list[Any], dropped: int) -> Any:
        if not dropped:
            return items
        from opentelemetry.sdk.util import BoundedList

        bounded = BoundedList.from_seq(None, items)
        bounded.dropped = dropped
        return bounded

    def spans(self, table: Iterable[tuple[Any, ...]], rows: Iterable[tuple[Any, ...]]) -> list[ReadableSpan]:
        """The spans of one frame."""
        resources = [
            self._made_once(
                self._resources,
                (schema_url, _key(attributes)),
                lambda attributes=attributes, schema_url=schema_url: self._resource(attributes or {}, schema_url),
            )
            for attributes, schema_url in table
        ]
        spans = []
        for (
            name,
            span_context,
            parent,
            kind,
            start_time,
            end_time,
            attributes,
            events,
            links,
            code,
            description,
            (dropped_attributes, dropped_events, dropped_links),
            scope,
            resource,
        ) in rows:
            spans.append(
                ReadableSpan(
                    name=name,
                    context=self._context(span_context),
                    parent=None if parent is None else self._context(parent),
                    resource=resources[resource],
                    attributes=self._counted(attributes, dropped_attributes),
                    events=self._listed(
                        [
                            self._event(event, self._counted(values, dropped), at)
                            for event, at, values, dropped in events
                        ],
                        dropped_events,
                    ),
                    links=self._listed(
                        [
                            self._link(self._context(linked), self._counted(values, dropped))
                            for linked, values, dropped in links
                        ],
                        dropped_links,
                    ),
                    kind=self._kinds[kind],
                    status=self._status(code, description),
                    start_time=start_time,
                    end_time=end_time,
                    instrumentation_scope=None
                    if scope is None
                    else self._made_once(
                        self._scopes, (*scope[:3], _key(scope[3])), lambda scope=scope: self._scope(*scope)
                    ),
                )
            )
        return spans


class PipeExporter(SpanExporter):
    """The service's side: each batch to the child process over its pipe (see the module's docstring)."""

    def __init__(self, endpoint: str, command: Sequence[str] | None = None) -> None:
        """`endpoint`: the OTLP/HTTP traces URL the child sends to (`.../v1/traces`). `command`: the child's command
        line without the endpoint (tests start a different one)."""
        self._command = [*(command or [sys.executable, "-m", __name__]), endpoint]
        self._lock = threading.Lock()  # one frame at a time, from the processor's thread and `force_flush`
        self._child: subprocess.Popen[bytes] | None = None
        self._started_at = -RESTART_SECONDS
        self._flushes = 0
        self._shutdown = False
        with self._lock:  # started with the service, so its start-up is not paid while requests wait
            self._running_child()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        """In a process forked from the service (an HTTP worker): a child of its own, so no two processes write
        frames into one pipe; the inherited pipe is closed here (the parent's child still ends when the parent's
        copy closes), and the lock, which another thread may have held at the fork, is a new one."""
        inherited, self._child = self._child, None
        if inherited is not None:
            self._close(inherited)
        self._lock = threading.Lock()
        self._started_at = -RESTART_SECONDS
        if not self._shutdown:
            self._running_child()

    def _running_child(self) -> subprocess.Popen[bytes] | None:
        """The child, started (again) when there is none or it has ended and the last start is long enough ago."""
        child = self._child
        if child is not None and child.poll() is None:
            return child
        if child is not None:
            logger.warning("the span export process ended (exit code %s); starting it again", child.returncode)
            self._close(child)
            self._child = None
        if time.monotonic() - self._started_at < RESTART_SECONDS:
            return None
        self._started_at = time.monotonic()
        try:
            child = subprocess.Popen(self._command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, close_fds=True)
        except OSError as error:
            logger.error("cannot start the span export process: %s", error)
            return None
        assert child.stdin is not None
        try:  # a larger buffer lets a batch or two wait while the child sends the one before
            import fcntl

            fcntl.fcntl(child.stdin.fileno(), _F_SETPIPE_SZ, _PIPE_SIZE)
        except (ImportError, OSError):
            pass
        self._child = child
        return child

    def _send(self, kind: int, payload: Any) -> subprocess.Popen[bytes] | None:
        """Write one frame to the child; the child it went to, or None when there is none to take it."""
        data = _encoded((kind, payload))
        with self._lock:
            if self._shutdown:
                return None
            child = self._running_child()
            if child is None:
                return None
            assert child.stdin is not None
            try:
                child.stdin.write(_LENGTH.pack(len(data)))
                child.stdin.write(data)
                child.stdin.flush()
            except (BrokenPipeError, ValueError, OSError) as error:
                logger.warning("the span export process took no batch: %r", error)
                return None
            return child

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._send(SPANS, compact(spans)) is None:
            logger.warning("dropping %d spans: no span export process", len(spans))
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Wait until the child has sent every batch handed to it before, or `timeout_millis` passed."""
        deadline = time.monotonic() + timeout_millis / 1000
        with self._lock:
            if self._child is None:  # shut down, or none could start: nothing handed over waits
                return True
            self._flushes += 1
            number = self._flushes
        child = self._send(FLUSH, number)
        if child is None:
            return False
        assert child.stdout is not None
        answer = b""
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([child.stdout], [], [], remaining)[0]:
                return False
            chunk = os.read(child.stdout.fileno(), _FLUSHED.size - len(answer))
            if not chunk:  # the child ended
                return False
            answer += chunk
            if len(answer) == _FLUSHED.size:
                if _FLUSHED.unpack(answer)[0] >= number:
                    return True
                answer = b""  # an earlier flush's answer, whose caller stopped waiting

    def shutdown(self, timeout_millis: int = 30000) -> None:
        """Close the pipe and let the child send what it holds, for at most `timeout_millis`."""
        with self._lock:
            self._shutdown = True
            child, self._child = self._child, None
        if child is None:
            return
        self._close(child)
        try:
            child.wait(timeout_millis / 1000)
        except subprocess.TimeoutExpired:
            logger.warning("the span export process did not finish in time; stopping it")
            child.kill()
            child.wait()

    @staticmethod
    def _close(child: subprocess.Popen[bytes]) -> None:
        for stream in (child.stdin, child.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def _frames(stream: IO[bytes]) -> Iterable[tuple[int, Any]]:
    """The frames read from `stream`, until it ends (a frame cut short by the end included)."""
    while True:
        header = stream.read(_LENGTH.size)
        if len(header) < _LENGTH.size:
            return
        (length,) = _LENGTH.unpack(header)
        data = stream.read(length)
        if len(data) < length:
            return
        yield marshal.loads(data)


def serve(endpoint: str, frames: IO[bytes], answers: IO[bytes]) -> None:
    """The child: export each batch read from `frames` to `endpoint`, answer each flush on `answers`, until
    `frames` ends."""
    from . import otlp

    exporter = otlp.SpanExporter(endpoint=endpoint)
    rebuilder = Rebuilder()
    try:
        for kind, payload in _frames(frames):
            if kind == SPANS:
                exporter.export(rebuilder.spans(*payload))
            elif kind == FLUSH:
                answers.write(_FLUSHED.pack(payload))
                answers.flush()
    finally:
        exporter.shutdown()


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service closes the pipe when it stops: that ends this one
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s span export: %(message)s")
    (endpoint,) = sys.argv[1:]
    try:
        serve(endpoint, sys.stdin.buffer, sys.stdout.buffer)
    except BrokenPipeError:  # the service is gone and cannot hear a flush answered
        pass


if __name__ == "__main__":
    main()
