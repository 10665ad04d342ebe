"""Prometheus metrics of one service, in the service's own registry (never the global one).

Names follow Prometheus conventions: `_total` for counters, `_seconds` for durations; every name
starts with `buurtkracht_`. Labels stay low-cardinality: route templates, never raw paths.

One process, one registry: `/metrics` shows the registry of the process that answers. When several
processes of a service share one port (`BK_HTTP_WORKERS` above 1, `BK_RELAY_PROCESS`), a scrape reaches
any one of them, so they run in prometheus_client's multiprocess mode instead: `PROMETHEUS_MULTIPROC_DIR`
is set before the process starts (the mode is chosen when prometheus_client is imported), every process
writes its values to files there, and `/metrics` of any of them shows the sum over all of them — counters
and histograms added up, each gauge once per live process (a `pid` label). The supervising process empties
the directory before it starts its processes, so a restarted pod counts from zero as a single process does.
"""

from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROCESS_DIR_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> Path | None:
    """The directory the processes of this service share their values in, if they run in multiprocess mode."""
    value = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    return Path(value) if value else None


def clear_multiprocess_dir() -> None:
    """Start the shared values afresh: called once by the supervising process, before it starts any other."""
    folder = multiprocess_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for leftover in folder.glob("*.db"):
        leftover.unlink(missing_ok=True)


def forget_process(pid: int) -> None:
    """Drop the gauges of a process that ended (a gauge says how things are now, and that process cannot
    know); its counters and histograms stay, so the sums never go back."""
    folder = multiprocess_dir()
    if folder is None:
        return
    for gauge in folder.glob(f"gauge_*_{pid}.db"):
        gauge.unlink(missing_ok=True)


def metrics_registry(metrics: ServiceMetrics) -> CollectorRegistry:
    """What `/metrics` exposes: the service's own registry, or in multiprocess mode every process's values."""
    folder = multiprocess_dir()
    if folder is None:
        return metrics.registry
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=str(folder))
    return combined


class ServiceMetrics:
    def __init__(self, service: str) -> None:
        if (folder := multiprocess_dir()) is not None:
            folder.mkdir(parents=True, exist_ok=True)  # multiprocess mode writes each value there from the start
        self.service = service
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "buurtkracht_http_requests_total", "HTTP requests answered", ["method", "route", "status"], registry=r
        )
        self.http_duration = Histogram(
            "buurtkracht_http_request_duration_seconds",
            "Time to answer an HTTP request",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "buurtkracht_outbox_backlog_events", "Committed events not yet acknowledged by Kafka", registry=r
        )
        self.outbox_oldest_age = Gauge(
            "buurtkracht_outbox_oldest_event_age_seconds", "Age of the oldest unpublished outbox event", registry=r
        )
        self.outbox_published = Counter(
            "buurtkracht_outbox_published_events_total", "Outbox events acknowledged by Kafka", ["topic"], registry=r
        )
        self.outbox_last_publish = Gauge(
            "buurtkracht_outbox_last_publish_timestamp_seconds",
            "When the relay last had events acknowledged",
            registry=r,
        )
        self.outbox_publish_failures = Counter(
            "buurtkracht_outbox_publish_failures_total", "Outbox events Kafka did not acknowledge (retried)", registry=r
        )
        self.inbox_events = Counter(
            "buurtkracht_inbox_events_total",
            "Consumed events by outcome: processed, duplicate, ignored or dead_lettered",
            ["consumer", "event_type", "outcome"],
            registry=r,
        )
        self.handler_failures = Counter(
            "buurtkracht_consumer_handler_failures_total",
            "Failed attempts to apply a consumed event (each is retried until dead-lettered)",
            ["consumer", "event_type"],
            registry=r,
        )
        self.housekeeping_deleted = Counter(
            "buurtkracht_housekeeping_deleted_rows_total",
            "Rows deleted because nothing can bring their message or request back",
            ["table"],
            registry=r,
        )
        self.dead_letters = Counter(
            "buurtkracht_dead_letter_events_total", "Messages parked on the dead-letter topic", ["consumer"], registry=r
        )
