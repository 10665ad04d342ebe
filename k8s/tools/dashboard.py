"""Writes the Grafana dashboard k8s/base/monitoring/buurtkracht-dashboard.json (a row per service).

The JSON is generated so that the four rows stay alike and every query uses the metric names the
services export (services/kit/src/buurtkracht_kit/metrics.py and the services' own); edit this
file, then run it. `--check` fails when the committed JSON differs from what this writes (k8s-lint).

    python k8s/tools/dashboard.py [--check]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "base" / "monitoring" / "buurtkracht-dashboard.json"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
PLEDGES_ROUTE = "/api/v1/rounds/{round_id}/pledges"
# `up` exists as soon as Prometheus scrapes a pod; the services' counters only after their first event
NAMESPACES = 'label_values(up{service=~"initiatives|vouchers|notifications|portal"}, namespace)'


def selector(service: str, extra: str = "") -> str:
    labels = f'namespace="$namespace", service="{service}"'
    return "{" + labels + (", " + extra if extra else "") + "}"


def panel(title: str, targets: list[tuple[str, str]], unit: str, description: str, kind: str = "timeseries") -> dict:
    result = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "targets": [
            {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": chr(ord("A") + index)}
            for index, (expr, legend) in enumerate(targets)
        ],
    }
    if kind == "timeseries":
        result["options"] = {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}
    return result


def common_panels(service: str) -> list[dict]:
    s = selector
    rate = "$__rate_interval"
    return [
        panel(
            "Requests by status",
            [(f"sum by (status) (rate(buurtkracht_http_requests_total{s(service)}[{rate}]))", "{{status}}")],
            "reqps",
            "HTTP requests answered per second, by status code (probes and /metrics not counted).",
        ),
        panel(
            "Latency",
            [
                (
                    f"histogram_quantile({q}, sum by (le) "
                    f"(rate(buurtkracht_http_request_duration_seconds_bucket{s(service)}[{rate}])))",
                    f"p{int(q * 100)}",
                )
                for q in (0.5, 0.95, 0.99)
            ],
            "s",
            "Time to answer, all routes together (alert: p95 above 1 s).",
        ),
        panel(
            "Events in",
            [
                (
                    f"sum by (event_type, outcome) (rate(buurtkracht_inbox_events_total{s(service)}[{rate}]))",
                    "{{event_type}} {{outcome}}",
                )
            ],
            "ops",
            "Consumed events per second by type and outcome: processed, duplicate, ignored, dead_lettered.",
        ),
        panel(
            "Events out",
            [(f"sum by (topic) (rate(buurtkracht_outbox_published_events_total{s(service)}[{rate}]))", "{{topic}}")],
            "ops",
            "Outbox events acknowledged by Kafka per second, by topic (dead letters go to the .dlq topic).",
        ),
        panel(
            "Consumer lag",
            [
                (
                    f'sum by (topic) (kafka_consumergroup_lag{{namespace="$namespace", consumergroup="{service}"}})',
                    "{{topic}}",
                )
            ],
            "short",
            f"Records not yet consumed by group {service} (Kafka Exporter); KEDA adds replicas on it.",
        ),
        panel(
            "Outbox",
            [
                (f"max(buurtkracht_outbox_oldest_event_age_seconds{s(service)})", "oldest event age"),
                (f"max(buurtkracht_outbox_backlog_events{s(service)})", "backlog (events)"),
            ],
            "s",
            "Age of the oldest committed event Kafka has not acknowledged, and how many wait "
            "(alert: older than 5 minutes).",
        ),
        panel(
            "Dead letters and handler failures",
            [
                (f"sum(increase(buurtkracht_dead_letter_events_total{s(service)}[5m]))", "dead-lettered / 5m"),
                (
                    f"sum by (event_type) (increase(buurtkracht_consumer_handler_failures_total{s(service)}[5m]))",
                    "failed attempts {{event_type}} / 5m",
                ),
            ],
            "short",
            "Messages parked on the dead-letter topic, and failed attempts (retried until dead-lettered).",
        ),
    ]


def special_panels(service: str) -> list[dict]:
    s = selector
    rate = "$__rate_interval"
    if service == "vouchers":
        pledge = f'method="POST", route="{PLEDGES_ROUTE}"'
        accepted = s(service, pledge + ', status=~"2.."')
        refused = s(service, pledge + ', status=~"4.."')
        voucher_events = s(service, 'topic="vouchers.events"')
        return [
            panel(
                "Pledges",
                [
                    (f"sum(rate(buurtkracht_http_requests_total{accepted}[{rate}]))", "pledged"),
                    (f"sum(rate(buurtkracht_http_requests_total{refused}[{rate}]))", "refused"),
                ],
                "reqps",
                "Pledge requests per second: accepted, and refused (a wallet too small, a closed round, ...).",
            ),
            panel(
                "Money moved",
                [(f"sum(rate(buurtkracht_outbox_published_events_total{voucher_events}[{rate}]))", "voucher events")],
                "ops",
                "Voucher events published per second: pledges, awards, expense claims, payouts, returned "
                "funds (and round events). The service does not export amounts yet; this counts movements.",
            ),
            panel(
                "Ledger check",
                [
                    (f"max(buurtkracht_ledger_check_failures{s(service)})", "violated invariants"),
                    (f"time() - max(buurtkracht_ledger_check_timestamp_seconds{s(service)})", "seconds since check"),
                ],
                "short",
                "Ledger invariants violated at the last check (must be 0), and how long ago it ran.",
                kind="stat",
            ),
        ]
    if service == "portal":
        public = s(service, 'route=~"/api/v1/public/.*"')
        return [
            panel(
                "Public API p99 by route",
                [
                    (
                        "histogram_quantile(0.99, sum by (route, le) "
                        f"(rate(buurtkracht_http_request_duration_seconds_bucket{public}[{rate}])))",
                        "{{route}}",
                    )
                ],
                "s",
                "The 99th percentile of the public read API's routes, answered from the read model "
                "(aim: at most 50 ms at 200 requests per second, bench/portal_public.py).",
            ),
        ]
    if service == "notifications":
        return [
            panel(
                "Email",
                [(f"sum by (outcome) (rate(buurtkracht_email_messages_total{s(service)}[{rate}]))", "{{outcome}}")],
                "ops",
                "Email sending attempts by outcome: sent, retried, failed (given up).",
            ),
            panel(
                "Webhook deliveries",
                [(f"sum by (outcome) (rate(buurtkracht_webhook_deliveries_total{s(service)}[{rate}]))", "{{outcome}}")],
                "ops",
                "Delivery attempts by outcome: delivered, retry, failed, gone.",
            ),
            panel(
                "Webhook subscriptions disabled",
                [
                    (
                        f"sum by (reason) (increase(buurtkracht_webhook_subscriptions_disabled_total{s(service)}[1h]))",
                        "{{reason}}",
                    )
                ],
                "short",
                "Subscriptions switched off in the last hour: the endpoint answered 410, or failed too often.",
            ),
        ]
    return []


def dashboard() -> dict:
    panels: list[dict] = []
    next_id = 1
    y = 0
    for service in ("initiatives", "vouchers", "notifications", "portal"):
        panels.append(
            {
                "type": "row",
                "title": service,
                "collapsed": False,
                "id": next_id,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        for index, item in enumerate(common_panels(service) + special_panels(service)):
            item["id"] = next_id
            item["gridPos"] = {"h": 8, "w": 6, "x": (index % 4) * 6, "y": y + (index // 4) * 8}
            panels.append(item)
            next_id += 1
        y = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    return {
        "uid": "buurtkracht",
        "title": "Buurtkracht",
        "description": "Requests, events in and out, consumer lag, outbox, dead letters per service; "
        "pledges and money moved (vouchers); email and webhooks (notifications); the public API's latency (portal). "
        "k8s/tools/dashboard.py writes it.",
        "tags": ["buurtkracht"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                {
                    "name": "namespace",
                    "label": "Namespace",
                    "type": "query",
                    "datasource": DATASOURCE,
                    "query": {"query": NAMESPACES, "refId": "namespace"},
                    "definition": NAMESPACES,
                    "refresh": 2,
                    "sort": 1,
                },
            ]
        },
        "annotations": {"list": []},
        "panels": panels,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed JSON is not what this writes")
    args = parser.parse_args()
    text = json.dumps(dashboard(), indent=2) + "\n"
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            sys.exit(f"{OUT} is out of date: run python k8s/tools/dashboard.py")
        print(f"{OUT.name} is up to date")
        return
    OUT.write_text(text)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
