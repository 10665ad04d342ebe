"""A kit service as a real process: ready when its database and Kafka answer, and a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from buurtkracht_contracts.topics import TopicSpec, dead_letter_topic
from buurtkracht_kit import topics

from ..integration.kit_domain import RUN_ID, TEST_TOPIC, read_topic
from ..keys import PUBLIC

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def test_service_serves_health_and_metrics_then_stops_cleanly_on_sigterm(
    scratch_database, kafka_bootstrap, tmp_path
):
    group = f"kit-svc-{uuid.uuid4().hex[:6]}"
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap},
        [TopicSpec(TEST_TOPIC, 6, 3_600_000), TopicSpec(dead_letter_topic(group), 1, 3_600_000)],
    )
    (tmp_path / "public.pem").write_text(PUBLIC)
    port = free_port()
    env = os.environ | {
        "KIT_TEST_RUN_ID": RUN_ID,
        "BK_SERVICE_NAME": group,
        "BK_DATABASE_URL": scratch_database,
        "BK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BK_HTTP_PORT": str(port),
        "BK_JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
        "BK_SHUTDOWN_GRACE_SECONDS": "10",
    }
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.kit_service", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=5) as client:
            for _ in range(150):
                try:
                    if (await client.get("/readyz")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            ready = await client.get("/readyz")
            assert ready.json()["checks"] == {"database": "ok", "kafka": "ok", "workers": "ok"}, log.read_text()
            assert ready.json()["status"] == "ready"
            assert (await client.get("/healthz")).status_code == 200

            counter = f"svc-{uuid.uuid4()}"
            answer = await client.post(f"/api/v1/counters/{counter}/increments")
            assert answer.status_code == 201
            event_id = answer.json()["event_id"]
            records = [
                r for r in await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=1) if r.key == counter.encode()
            ]
            assert [dict(r.headers)["ce_id"] for r in records] == [event_id.encode()]

            metrics = (await client.get("/metrics")).text
            assert (
                'buurtkracht_http_requests_total{method="POST",route="/api/v1/counters/{counter_id}/increments"'
                in metrics
            )
            assert "buurtkracht_outbox_backlog_events" in metrics
            assert "faststream_received_messages_total" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 30)
    # uvicorn shuts down completely, then re-raises SIGTERM so the process ends as signalled
    assert exit_code in (0, -signal.SIGTERM), log.read_text()
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    assert any(line["message"] == f"{group} stopped" and line["service"] == group for line in lines)
    assert lines[-2]["message"] == "Application shutdown complete."
