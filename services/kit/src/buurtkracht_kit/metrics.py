"""Prometheus metrics of one service, in the service's own registry (never the global one).

Names follow Prometheus conventions: `_total` for counters, `_seconds` for durations; every name
starts with `buurtkracht_`. Labels stay low-cardinality: route templates, never raw paths.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class ServiceMetrics:
    def __init__(self, service: str) -> None:
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
