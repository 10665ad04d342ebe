"""JSON logs on stdout; every line written while handling an event carries that event's id and type, and every line
written inside a trace (an HTTP request, a consumed event, while tracing is on) its `trace_id` and `span_id`.

Every line names the process (`pid`): the processes of one service share a container's output."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import sys
from collections.abc import Iterator

from opentelemetry import trace
from pythonjsonlogger.json import JsonFormatter

_event_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_id", default=None)
_event_type: contextvars.ContextVar[str | None] = contextvars.ContextVar("event_type", default=None)


@contextlib.contextmanager
def event_context(event_id: str, event_type: str | None = None) -> Iterator[None]:
    """Tag every log line inside the block with the event being handled."""
    id_token, type_token = _event_id.set(event_id), _event_type.set(event_type)
    try:
        yield
    finally:
        _event_id.reset(id_token)
        _event_type.reset(type_token)


class _EventContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if (event_id := _event_id.get()) is not None:
            record.event_id = event_id
            record.event_type = _event_type.get()
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


def configure(service: str, level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stdout)
    handler.addFilter(_EventContextFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "{asctime}{levelname}{name}{process}{message}",
                style="{",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
                static_fields={"service": service},
            )
        )
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "kafka"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    for uvicorn_logger in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(uvicorn_logger).handlers[:] = []
        logging.getLogger(uvicorn_logger).propagate = True


class _TextFormatter(logging.Formatter):
    """The text format, with ` trace_id=...` after the message of a line written inside a trace."""

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        trace_id = getattr(record, "trace_id", None)
        return f"{line} trace_id={trace_id}" if trace_id else line
