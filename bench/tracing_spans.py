"""Tracing spans: what the kit's tracing costs per request, per relayed record and per exported span, in one process.

No stack needed: the kit's tracing is configured with an exporter that keeps nothing, and each figure is the
difference between a loop with tracing and the same loop without it, measured in the same run, so the machine's
speed of the hour cancels out as far as it can:

- `request_us`: a request through `TracedRequests` (its SERVER span started, made current, named by its route,
  ended and handed to the batch processor) to an ASGI app that only reads the current `traceparent` once, as an
  outbox row does, and answers; less the same app called directly.
- `relay_record_us`: the PRODUCER span of a relay batch of 60 records, each with a `traceparent` of its own trace
  (a child of the first, linked to the rest), per record.
- `consumed_record_us`: a consumed record's CONSUMER span, as a consumer's batch of 50 makes them (each continuing
  its record's trace, its `traceparent` formatted for the inbox row, made current while the handler runs, ended with
  the batch's transaction), the handler only reading the current `traceparent` once; less the same batch with no
  span made (what the consumer does with tracing off).
- `encode_request_span_us`: OTLP encoding (the kit's encoder, as the exporter's thread runs it) of a request's span;
  `encode_relay_record_us`: of a relay batch's span, per record (its links); `encode_consumed_record_us`: of a
  consumed record's span.

Each is the median of `--rounds` rounds.

    .venv/bin/python bench/tracing_spans.py
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import gc
import json
import random
import statistics
import time
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from buurtkracht_kit import otlp, tracing
from buurtkracht_kit.consumer import _BatchSpans, _Message

ROUTE = "/api/v1/rounds/{round_id}/pledges"
HEADERS = [(b"host", b"vouchers"), (b"authorization", b"Bearer x"), (b"content-type", b"application/json")]
RELAY_BATCH = 60
CONSUMED_BATCH = 50


class Kept(SpanExporter):
    """Keeps the last 512 spans it was handed (a batch's worth), for the encoding figure; exports nothing."""

    def __init__(self) -> None:
        self.last: collections.deque[ReadableSpan] = collections.deque(maxlen=512)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.last.extend(spans)
        return SpanExportResult.SUCCESS


class _Route:
    path = ROUTE


async def _app(scope: Any, receive: Any, send: Any) -> None:
    scope["route"] = _Route
    tracing.current_traceparent()
    await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b"{}"})


async def _receive() -> dict[str, Any]:
    return {"type": "http.request"}


async def _send(message: Any) -> None:
    return None


async def _requests(app: Any, count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        scope = {"type": "http", "path": "/api/v1/rounds/1/pledges", "method": "POST", "headers": HEADERS}
        await app(scope, _receive, _send)
    return (time.perf_counter() - started) / count


def _traceparents(count: int) -> list[str]:
    return [f"00-{random.getrandbits(128):032x}-{random.getrandbits(64):016x}-01" for _ in range(count)]


def _relay_batches(batches: list[list[str]]) -> float:
    started = time.perf_counter()
    for traceparents in batches:
        span = tracing.batch_span(traceparents, "vouchers.events publish", tracing.SpanKind.PRODUCER, {"n": 60})
        assert span is not None
        span.end()
    return (time.perf_counter() - started) / (len(batches) * RELAY_BATCH)


@dataclasses.dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int


def _consumed(traceparents: list[str], offset: int) -> list[_Message]:
    return [
        _Message(_Record("vouchers.events", 3, offset + index), f"m-{offset + index}", None, None, None, traceparent)  # type: ignore[arg-type]
        for index, traceparent in enumerate(traceparents)
    ]


async def _consumed_batches(batches: list[list[_Message]], traced: bool) -> float:
    started = time.perf_counter()
    for messages in batches:
        async with _BatchSpans(messages if traced else ()) as spans:
            for message in messages:
                with spans.current(message):
                    tracing.current_traceparent()
    return (time.perf_counter() - started) / (len(batches) * CONSUMED_BATCH)


def _encoding(spans: list[ReadableSpan]) -> float:
    """Seconds the kit's encoder takes per span of `spans`, as the exporter encodes a batch."""
    started = time.perf_counter()
    otlp.serialize(spans)
    return (time.perf_counter() - started) / len(spans)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20_000, help="requests a round, each way")
    parser.add_argument("--batches", type=int, default=300, help="relay and consumed batches a round")
    args = parser.parse_args()
    random.seed(7)
    kept = Kept()
    tracing.configure("vouchers", None, 1.0, sql=False, exporter=kept)
    traced = tracing.TracedRequests(_app)
    gc.collect()
    gc.freeze()
    request, relay, consumed, encode_request, encode_relay, encode_consumed = [], [], [], [], [], []
    for _ in range(args.rounds):
        bare = asyncio.run(_requests(_app, args.requests))
        request.append(asyncio.run(_requests(traced, args.requests)) - bare)
        tracing.flush()
        encode_request.append(_encoding(list(kept.last)))
        kept.last.clear()
        batches = [_traceparents(RELAY_BATCH) for _ in range(args.batches)]
        relay.append(_relay_batches(batches))
        tracing.flush()
        encode_relay.append(_encoding(list(kept.last)) / RELAY_BATCH)
        kept.last.clear()
        records = [_consumed(_traceparents(CONSUMED_BATCH), index * CONSUMED_BATCH) for index in range(args.batches)]
        bare = asyncio.run(_consumed_batches(records, traced=False))
        consumed.append(asyncio.run(_consumed_batches(records, traced=True)) - bare)
        tracing.flush()
        encode_consumed.append(_encoding(list(kept.last)))
        kept.last.clear()
    tracing.disable()
    figures = {
        "request_us": round(statistics.median(request) * 1e6, 2),
        "relay_record_us": round(statistics.median(relay) * 1e6, 2),
        "consumed_record_us": round(statistics.median(consumed) * 1e6, 2),
        "encode_request_span_us": round(statistics.median(encode_request) * 1e6, 2),
        "encode_relay_record_us": round(statistics.median(encode_relay) * 1e6, 2),
        "encode_consumed_record_us": round(statistics.median(encode_consumed) * 1e6, 2),
        "rounds": args.rounds,
    }
    print(
        f"tracing spans: a request {figures['request_us']} us, a relayed record {figures['relay_record_us']} us, "
        f"a consumed record {figures['consumed_record_us']} us; encoding a request's span "
        f"{figures['encode_request_span_us']} us, a relayed record's share of its batch span "
        f"{figures['encode_relay_record_us']} us, a consumed record's span {figures['encode_consumed_record_us']} us "
        f"(medians of {args.rounds} rounds)"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
