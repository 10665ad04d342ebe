"""Puts the PromQL of the manifests where promtool can check it.

    python promql.py RENDERED.yaml DASHBOARD.json OUT_DIR

writes OUT_DIR/rules.yaml (the groups of every PrometheusRule in RENDERED.yaml, for `promtool check
rules` and `promtool test rules`) and OUT_DIR/dashboard-rules.yaml (every query of the Grafana
dashboard as a recording rule, with Grafana's variables filled in, for `promtool check rules`: a
query that does not parse fails the build instead of showing an empty panel).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import yaml

GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$namespace": "buurtkracht"}


def prometheus_rule_groups(rendered: Path) -> list[dict]:
    with rendered.open() as stream:
        documents = [doc for doc in yaml.safe_load_all(stream) if doc and doc.get("kind") == "PrometheusRule"]
    if not documents:
        sys.exit(f"{rendered}: no PrometheusRule")
    return [group for doc in documents for group in doc["spec"]["groups"]]


def dashboard_rules(dashboard: Path) -> list[dict]:
    rules = []
    for panel in json.loads(dashboard.read_text())["panels"]:
        for target in panel.get("targets", []):
            expr = target["expr"]
            for variable, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(variable, value)
            if "$" in re.sub(r"\{\{.*?\}\}", "", expr):
                sys.exit(f"panel {panel['title']!r}: unknown Grafana variable in {target['expr']!r}")
            rules.append({"record": f"dashboard:panel_{panel['id']}_{target['refId']}", "expr": expr})
    return rules


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    rendered, dashboard, out = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    out.mkdir(parents=True, exist_ok=True)
    groups = prometheus_rule_groups(rendered)
    (out / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    panels = dashboard_rules(dashboard)
    (out / "dashboard-rules.yaml").write_text(
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": panels}]}, sort_keys=False)
    )
    alerts = sum(len(group["rules"]) for group in groups)
    print(f"{alerts} alerting rules and {len(panels)} dashboard queries written to {out}")


if __name__ == "__main__":
    main()
