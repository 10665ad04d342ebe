"""Every endpoint of the three services fuzzed from its own OpenAPI document, on every run: Schemathesis generates
requests (documented examples, the boundaries of every constraint, random valid and invalid data, and stateful
sequences that follow the links between operations) for a caller of each role, against the services running as
processes on the real stack.

A run passes only when no answer is a server error, every answer matches the document (status code, content type,
headers, schema) and every request the document calls invalid is refused. Two independent counts of what happened:
every request sent and its answer, from Schemathesis' HAR record, and the services' own request counters, read
before and after (a request the HTTP server itself refuses as malformed never reaches the application's counter);
neither may hold a 5xx.

Deterministic: Schemathesis' deterministic mode generates the same requests on every run; `make test-explore`
does not touch this tier.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..system import ROOT, SERVICES, running_system
from . import figures

pytestmark = pytest.mark.fuzz

ROLES = ("anonymous", "resident", "steering_group", "official", "admin", "integration")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
)
EXAMPLES = int(os.environ.get("BK_FUZZ_EXAMPLES", "10"))  # per operation and phase


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    async with running_system(kafka_bootstrap, tmp_path_factory, "fuzz") as running:
        yield running


def headers_of(journey, role: str) -> dict[str, str]:
    return {
        "anonymous": {},
        "resident": journey.resident("fuzz"),
        "steering_group": journey.steering(1),
        "official": journey.official(),
        "admin": journey.admin(),
        "integration": journey.finance(),
    }[role]


async def answered(url: str) -> dict[str, int]:
    """The service's own count of answered requests: in all, and with a 5xx."""
    async with httpx.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    counts = [
        (int(sample.labels["status"]), sample.value)
        for family in text_string_to_metric_families(text)
        if family.name == "buurtkracht_http_requests"
        for sample in family.samples
        if sample.name == "buurtkracht_http_requests_total"
    ]
    return {"all": int(sum(n for _, n in counts)), "5xx": int(sum(n for s, n in counts if s >= 500))}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("service", SERVICES)
async def test_every_endpoint_answers_generated_requests_as_documented(system, service, role, tmp_path):
    url = system.url(service)
    before = await answered(url)
    authorization = [f"--header=Authorization: {value}" for value in headers_of(system.journey, role).values()]
    command = [
        str(Path(sys.executable).with_name("st")),
        f"--config-file={Path(__file__).with_name('schemathesis.toml')}",
        "run",
        f"{url}/openapi.json",
        *authorization,
        f"--checks={','.join(CHECKS)}",
        "--phases=examples,coverage,fuzzing,stateful",
        "--generation-deterministic",
        f"--max-examples={EXAMPLES}",
        "--workers=1",
        "--request-timeout=30",
        "--report=json,har",
        f"--report-dir={tmp_path}",
        "--no-color",
    ]
    run = await asyncio.create_subprocess_exec(
        *command, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output = (await run.communicate())[0].decode(errors="replace")
    after = await answered(url)
    (report,) = tmp_path.glob("json-*.json")
    (record,) = tmp_path.glob("har-*.json")
    summary = json.loads(report.read_text())
    sent = [entry["response"]["status"] for entry in json.loads(record.read_text())["log"]["entries"]]
    answered_by_app, app_errors = after["all"] - before["all"], after["5xx"] - before["5xx"]  # /metrics not counted
    figures[(service, role)] = {"requests": len(sent), "answered_by_app": answered_by_app}
    assert run.returncode == 0 and summary["complete"], output[-20_000:]
    assert summary["operations"]["tested"] == summary["operations"]["total"], summary["operations"]
    assert [status for status in sent if status >= 500] == [] and app_errors == 0
    assert len(sent) >= summary["test_cases"]["generated"] and answered_by_app > len(sent) / 2, (sent, answered_by_app)
    assert system.processes[service].returncode is None, f"{service} died"
