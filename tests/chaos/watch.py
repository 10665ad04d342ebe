"""What an operator sees during a chaos run: the services' Prometheus metrics and the consumer groups' lag,
sampled every `interval` seconds, and per fault what moved in its window (from its start until `settle` seconds
after it healed). The signals are the inputs of the alert rules in k8s/base/monitoring/prometheus-rules.yaml:
`up` (a scrape that fails), 5xx answers (500 and 503 apart), answers slower than 1 s, the outbox's oldest
unpublished event and its publish failures, the consumers' handler failures, records applied before (their
offset was not committed) and dead letters, consumer-group lag (what kafka-exporter reports), e-mail and webhook
attempts that failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from prometheus_client.parser import text_string_to_metric_families

from ..system import SERVICES, System

COUNTERS = {  # signal: (metric family, the labels a sample must have)
    "http_500": ("buurtkracht_http_requests", {"status": "500"}),  # a defect
    "http_503": ("buurtkracht_http_requests", {"status": "503"}),  # the database away for a moment: try again
    "publish_failures": ("buurtkracht_outbox_publish_failures", {}),
    "handler_failures": ("buurtkracht_consumer_handler_failures", {}),
    "inbox_duplicates": ("buurtkracht_inbox_events", {"outcome": "duplicate"}),  # applied before, offset not committed
    "dead_letters": ("buurtkracht_dead_letter_events", {}),
    "email_retried": ("buurtkracht_email_messages", {"outcome": "retried"}),
    "email_failed": ("buurtkracht_email_messages", {"outcome": "failed"}),
    "webhook_retried": ("buurtkracht_webhook_deliveries", {"outcome": "retry"}),
    "webhook_failed": ("buurtkracht_webhook_deliveries", {"outcome": "failed"}),
    "webhook_subscriptions_disabled": ("buurtkracht_webhook_subscriptions_disabled", {}),
}
GAUGES = {"outbox_oldest_age_s": "buurtkracht_outbox_oldest_event_age_seconds"}
LATENCY = "buurtkracht_http_request_duration_seconds"  # answers slower than 1 s: the latency alert's threshold
WANTED = tuple({name for name, _ in COUNTERS.values()} | set(GAUGES.values()) | {LATENCY})


def _wanted(text: str) -> str:
    """Only the lines of the families the signals read: the histograms are most of a scrape, and parsing them
    would take the load generator's CPU from the load."""
    return "\n".join(
        line
        for line in text.splitlines()
        if (line.startswith(WANTED) and (not line.startswith(LATENCY) or "_count" in line or 'le="1.0"' in line))
        or (line.startswith("# ") and any(n in line for n in WANTED))
    )


@dataclass
class Sample:
    at: float  # seconds into the run
    up: dict[str, bool]  # instance: scraped
    counters: dict[tuple[str, str], float]  # (instance, signal): value
    gauges: dict[tuple[str, str], float]  # (service, signal): value
    lag: dict[str, int | None]  # service: records its consumer group is behind (None: Kafka did not answer)


@dataclass
class Watch:
    system: System
    bootstrap: str
    started: float
    interval: float = 2.0
    samples: list[Sample] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        async with httpx.AsyncClient(timeout=1.5) as client:
            while not stop.is_set():
                began = time.monotonic()
                self.samples.append(await self.sample(client))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, self.interval - (time.monotonic() - began)))

    async def sample(self, client: httpx.AsyncClient) -> Sample:
        at = time.monotonic() - self.started
        up, counters, gauges = {}, {}, defaultdict(float)
        for instance in list(self.system.ports):
            try:
                answer = await client.get(f"{self.system.url(instance)}/metrics")
                answer.raise_for_status()
            except (httpx.HTTPError, KeyError):
                up[instance] = False
                continue
            up[instance] = True
            service = instance.partition("#")[0]
            for family in text_string_to_metric_families(_wanted(answer.text)):
                for signal, (name, labels) in COUNTERS.items():
                    if family.name == name:
                        counters[(instance, signal)] = sum(
                            s.value
                            for s in family.samples
                            if s.name.endswith("_total")
                            and all(s.labels.get(k, "").startswith(v) for k, v in labels.items())
                        )
                if family.name == LATENCY:
                    answered = sum(s.value for s in family.samples if s.name.endswith("_count"))
                    fast = sum(s.value for s in family.samples if s.labels.get("le") == "1.0")
                    counters[(instance, "http_slower_than_1s")] = answered - fast
                for signal, name in GAUGES.items():
                    if family.name == name:
                        gauges[(service, signal)] = max(gauges[(service, signal)], *(s.value for s in family.samples))
        return Sample(at, up, counters, dict(gauges), await self.lag())

    async def lag(self) -> dict[str, int | None]:
        lags: dict[str, int | None] = {}
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap.split(","), request_timeout_ms=3000)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap.split(","), request_timeout_ms=3000)
        try:
            await asyncio.wait_for(asyncio.gather(admin.start(), consumer.start()), 5)
            for service in SERVICES:
                group = self.system.environments[service]["BK_SERVICE_NAME"]
                committed = await asyncio.wait_for(admin.list_consumer_group_offsets(group), 5)
                partitions = [tp for tp in committed if committed[tp].offset >= 0]
                ends = await asyncio.wait_for(consumer.end_offsets(partitions), 5) if partitions else {}
                lags[service] = sum(max(0, ends[tp] - committed[tp].offset) for tp in partitions)
        except Exception:  # a broker down: the exporter would have no figure either
            lags = {service: lags.get(service) for service in SERVICES}
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(asyncio.gather(admin.close(), consumer.stop()), 5)
        return lags

    def window(self, began: float, until: float) -> dict[str, Any]:
        """What moved between `began` and `until`: seconds a service did not answer its scrape, counter increases
        (a restarted process starts its counters at zero) and the peaks of the gauges and the lag."""
        inside = [s for s in self.samples if began <= s.at <= until]
        moved: dict[str, float] = defaultdict(float)
        for sample in inside:
            for instance, answered in sample.up.items():
                if not answered and "#" not in instance:
                    moved[f"{instance}.down_s"] += self.interval
            for (service, signal), value in sample.gauges.items():
                moved[f"{service}.{signal}"] = max(moved[f"{service}.{signal}"], round(value, 1))
            for service, behind in sample.lag.items():
                if behind is None:
                    moved["kafka.lag_unknown_s"] += self.interval / len(SERVICES)
                else:
                    moved[f"{service}.lag"] = max(moved[f"{service}.lag"], behind)
        last: dict[tuple[str, str], float] = {}
        for sample in self.samples:
            if sample.at < began:
                last |= sample.counters
        for sample in inside:
            for (instance, signal), value in sample.counters.items():
                previous = last.get((instance, signal), 0.0)
                moved[f"{instance.partition('#')[0]}.{signal}"] += value - previous if value >= previous else value
                last[(instance, signal)] = value
        return {name: value for name, value in sorted(moved.items()) if value}


def by_kind(watch: Watch, faults: list[Any], settle: float) -> dict[str, dict[str, float]]:
    """Per kind of fault, the most each signal moved in one of its windows."""
    peaks: dict[str, dict[str, float]] = defaultdict(dict)
    for fault in faults:
        if fault.healed is None:
            continue
        for signal, value in watch.window(fault.began, fault.healed + settle).items():
            peaks[fault.kind][signal] = max(peaks[fault.kind].get(signal, 0), value)
    return dict(peaks)
