"""What an operator sees of the running system: one pledge is one trace in the local Jaeger, from the vouchers
service's HTTP request through its outbox and Kafka into the initiatives and notifications consumers and the e-mail;
and the local Prometheus, evaluating the project's own alert rules (k8s/base/monitoring), fires a real alert."""

from __future__ import annotations

import uuid
from collections import defaultdict

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from ..system import running_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    async with running_system(kafka_bootstrap, tmp_path_factory, "observed", observability=True) as running:
        yield running


class Trace:
    """A trace as Jaeger's query API returns it: spans with their service, kind, parent and the traces they link to."""

    def __init__(self, data: dict) -> None:
        services = {key: process["serviceName"] for key, process in data["processes"].items()}
        self.trace_id = data["traceID"]
        self.spans = {
            span["spanID"]: {
                "service": services[span["processID"]],
                "name": span["operationName"],
                "kind": next((tag["value"] for tag in span["tags"] if tag["key"] == "span.kind"), "internal"),
                "parent": next((ref["spanID"] for ref in span["references"] if ref["refType"] == "CHILD_OF"), None),
                "linked": {ref["traceID"] for ref in span["references"] if ref["refType"] == "FOLLOWS_FROM"},
            }
            for span in data["spans"]
        }

    def named(self, service: str, name: str, kind: str | None = None) -> list[str]:
        return [
            span_id
            for span_id, span in self.spans.items()
            if span["service"] == service and name in span["name"] and (kind is None or span["kind"] == kind)
        ]

    def ancestors(self, span_id: str) -> list[dict]:
        chain = []
        while (span_id := self.spans[span_id]["parent"]) in self.spans:
            chain.append(self.spans[span_id])
        return chain


async def traces_with(jaeger: str, service: str, operation: str) -> list[Trace]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(
            f"{jaeger}/api/traces",
            params={"service": service, "operation": operation, "limit": 1000, "lookback": "1h"},
        )
    answer.raise_for_status()
    return [Trace(data) for data in answer.json()["data"] or []]


async def test_a_pledge_is_one_trace_from_the_request_through_kafka_and_both_consumers_to_the_email(system):
    journey, observed = system.journey, system.observability
    ids = await journey.walk(webhook_url=system.hooks.url)
    assert ids["ledger"]["problems"] == []

    async def the_awarding_pledges_trace() -> Trace | None:
        for trace in await traces_with(observed.jaeger_url, "notifications", "email send"):
            pledge = trace.named("vouchers", "/pledges", "server")
            emails = [span for span in trace.named("notifications", "email send") if pledge]
            if pledge and emails and trace.named("initiatives", "vouchers.events process", "consumer"):
                return trace
        return None

    trace = await journey.until("the pledge's trace in Jaeger", the_awarding_pledges_trace, timeout=90)
    [pledge] = trace.named("vouchers", "/pledges", "server")
    assert await published_by_the_relay(observed.jaeger_url, trace), "the relay's span of the record batch"
    assert any(trace.spans[s]["parent"] == pledge for s in trace.named("vouchers", "INSERT", None)), "its SQL"
    for service in ("initiatives", "notifications"):
        [*consumed] = trace.named(service, "vouchers.events process", "consumer")
        assert consumed, f"{service} continues the trace"
        for span_id in consumed:  # from the context the event was recorded in, back to the request
            chain = [(span["service"], span["kind"]) for span in trace.ancestors(span_id)]
            assert chain[-1] == ("vouchers", "server") and ("vouchers", "producer") not in chain
    for email in trace.named("notifications", "email send", "client"):
        chain = [(span["service"], span["kind"]) for span in trace.ancestors(email)]
        assert chain[0] == ("notifications", "consumer") and chain[-1] == ("vouchers", "server")
    assert {span["service"] for span in trace.spans.values()} >= {"vouchers", "initiatives", "notifications"}


async def published_by_the_relay(jaeger: str, trace: Trace) -> bool:
    """Whether a span of the relay sent the trace's records: in the trace when they led their record batch, else
    in the trace of the batch's first record, linked to this one."""
    if trace.named("vouchers", "vouchers.events publish", "producer"):
        return True
    return any(
        trace.trace_id in other.spans[span_id]["linked"]
        for other in await traces_with(jaeger, "vouchers", "vouchers.events publish")
        for span_id in other.named("vouchers", "vouchers.events publish", "producer")
    )


async def test_every_answer_names_its_trace_which_jaeger_has(system):
    journey, observed = system.journey, system.observability
    answer = await journey.http.get(
        f"{system.url('vouchers')}/api/v1/rounds/{uuid.uuid4()}", headers=journey.official()
    )
    assert answer.status_code == 404 and answer.headers["content-type"].startswith("application/problem+json")
    version, trace_id, span_id, flags = answer.headers["traceresponse"].split("-")
    assert (version, len(trace_id), len(span_id)) == ("00", 32, 16) and int(flags, 16) & 1, "sampled"

    async def found() -> dict | None:
        async with httpx.AsyncClient() as http:
            traced = await http.get(f"{observed.jaeger_url}/api/traces/{trace_id}")
        return traced.json()["data"][0] if traced.status_code == 200 and traced.json().get("data") else None

    data = await journey.until("the request's trace in Jaeger", found, timeout=60)
    assert span_id in {span["spanID"] for span in data["spans"]}


async def test_prometheus_fires_the_dead_letter_alert_of_the_project_rules_for_a_parked_message(
    system, kafka_bootstrap
):
    journey, observed = system.journey, system.observability
    group = system.environments["initiatives"]["BK_SERVICE_NAME"]

    async def firing() -> dict[str, set[str]]:
        async with httpx.AsyncClient() as http:
            alerts = (await http.get(f"{observed.prometheus_url}/api/v1/alerts")).json()["data"]["alerts"]
        by_name: dict[str, set[str]] = defaultdict(set)
        for alert in alerts:
            if alert["state"] == "firing":
                by_name[alert["labels"]["alertname"]].add(alert["labels"].get("consumer", ""))
        return by_name

    async def rules_loaded() -> bool:
        async with httpx.AsyncClient() as http:
            groups = (await http.get(f"{observed.prometheus_url}/api/v1/rules")).json()["data"]["groups"]
        return any(rule["name"] == "BuurtkrachtDeadLetters" for g in groups for rule in g["rules"])

    await journey.until("Prometheus to load the project's rules", rules_loaded, timeout=30)
    assert group not in (await firing()).get("BuurtkrachtDeadLetters", set())

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap.split(","))
    await producer.start()
    try:  # not a CloudEvent: every consumer group of the topic parks it at once
        await producer.send_and_wait("vouchers.events", b"not an event", key=f"alert-{uuid.uuid4()}".encode())
    finally:
        await producer.stop()

    async def dead_letter_alert() -> bool:
        return group in (await firing()).get("BuurtkrachtDeadLetters", set())

    await journey.until("BuurtkrachtDeadLetters to fire for the initiatives consumer", dead_letter_alert, timeout=60)
