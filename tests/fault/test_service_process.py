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
from ..system import free_port

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]


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


def _service_env(group: str, database: str, bootstrap: str, port: int, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "public.pem").write_text(PUBLIC)
    return os.environ | {
        "KIT_TEST_RUN_ID": RUN_ID,
        "BK_SERVICE_NAME": group,
        "BK_DATABASE_URL": database,
        "BK_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "BK_HTTP_PORT": str(port),
        "BK_JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
        "BK_SHUTDOWN_GRACE_SECONDS": "10",
        "BK_RELAY_POLL_INTERVAL_SECONDS": "0.2",
    }


async def _fresh(method: str, url: str) -> httpx.Response | None:
    """One request on a connection of its own (the kernel picks the process per connection), or None."""
    try:
        async with httpx.AsyncClient(timeout=5) as client:
            return await client.request(method, url)
    except httpx.TransportError:
        return None


async def _ready_processes(base: str, wanted: set[str], avoid: set[int] = frozenset()) -> dict[str, dict]:
    """The `/readyz` answer of a ready process of each role in `wanted` (none of the pids in `avoid`)."""
    seen: dict[str, dict] = {}
    for _ in range(300):
        answer = await _fresh("GET", f"{base}/readyz")
        if answer is not None and answer.status_code == 200:
            body = answer.json()
            if body["process"]["pid"] not in avoid:
                seen[body["process"]["role"]] = body
        if wanted <= seen.keys():
            return seen
        await asyncio.sleep(0.1)
    raise AssertionError(f"ready processes seen: {seen}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_processes_sharing_the_port_each_answer_for_themselves_and_their_metrics_add_up(
    scratch_database, kafka_bootstrap, tmp_path
):
    """Two HTTP processes (the first with the consumer), the relay in a third: what the API commits is
    published by the relay process, `/metrics` of any process counts every process's requests, a killed
    process is replaced, and SIGTERM ends them all cleanly."""
    group = f"kit-svc-{uuid.uuid4().hex[:6]}"
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap},
        [TopicSpec(TEST_TOPIC, 6, 3_600_000), TopicSpec(dead_letter_topic(group), 1, 3_600_000)],
    )
    port = free_port()
    env = _service_env(group, scratch_database, kafka_bootstrap, port, tmp_path) | {
        "BK_HTTP_WORKERS": "2",
        "BK_RELAY_PROCESS": "true",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    (tmp_path / "metrics").mkdir()
    (tmp_path / "metrics" / "counter_1.db").write_bytes(b"left over from an earlier run")
    log = tmp_path / "service.log"
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.integration.kit_service", env=env, cwd=ROOT, stdout=out, stderr=out
        )
    base = f"http://127.0.0.1:{port}"
    pids: set[int] = set()
    try:
        seen = await _ready_processes(base, {"worker", "api"})
        assert seen["worker"]["checks"] == {"database": "ok", "kafka": "ok", "workers": "ok"}, log.read_text()
        assert seen["api"]["checks"] == {"database": "ok", "workers": "ok"}
        pids |= {body["process"]["pid"] for body in seen.values()}

        counter = f"svc-{uuid.uuid4()}"
        event_ids = set()
        for _ in range(20):
            answer = await _fresh("POST", f"{base}/api/v1/counters/{counter}/increments")
            assert answer is not None and answer.status_code == 201
            event_ids.add(answer.json()["event_id"].encode())
        published: set[bytes] = set()
        for _ in range(30):
            records = await read_topic(kafka_bootstrap, TEST_TOPIC, at_least=1)
            published = {dict(r.headers)["ce_id"] for r in records if r.key == counter.encode()}
            if published >= event_ids:
                break
            await asyncio.sleep(0.5)
        assert published == event_ids

        requests = 'buurtkracht_http_requests_total{method="POST",route="/api/v1/counters/{counter_id}/increments"'
        for _ in range(6):  # whichever process answers the scrape, it counts every process's requests
            answer = await _fresh("GET", f"{base}/metrics")
            assert answer is not None
            assert f'{requests},status="201"}} 20.0' in answer.text
            relayed = [
                float(line.rsplit(" ", 1)[1])
                for line in answer.text.splitlines()
                if line.startswith(f'buurtkracht_outbox_published_events_total{{topic="{TEST_TOPIC}"}}')
            ]
            assert relayed and relayed[0] >= 20, answer.text
        assert "left over" not in answer.text and not (tmp_path / "metrics" / "counter_1.db").exists()

        killed = seen["api"]["process"]["pid"]
        assert f'pid="{killed}"' in answer.text  # its gauges, while it lives
        os.kill(killed, signal.SIGKILL)
        replaced = await _ready_processes(base, {"api"}, avoid={killed})
        pids.add(replaced["api"]["process"]["pid"])
        assert not _alive(killed)
        answer = await _fresh("GET", f"{base}/metrics")
        assert answer is not None and f'{requests},status="201"}} 20.0' in answer.text  # its requests still count
        assert f'pid="{killed}"' not in answer.text  # its gauges are gone
    finally:
        process.send_signal(signal.SIGTERM)
        exit_code = await asyncio.wait_for(process.wait(), 40)
    assert exit_code == 0, log.read_text()
    assert not [pid for pid in pids if _alive(pid)]
    text = log.read_text()
    assert text.count("Application shutdown complete.") == 2, text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line["message"] == f"{group} stopped" and line["pid"] == process.pid for line in lines)
    assert pids <= {line["pid"] for line in lines}  # each line says which process wrote it


async def test_several_processes_without_a_shared_metrics_directory_refuse_to_start(
    scratch_database, kafka_bootstrap, tmp_path
):
    env = _service_env(f"kit-svc-{uuid.uuid4().hex[:6]}", scratch_database, kafka_bootstrap, free_port(), tmp_path)
    env = {name: value for name, value in env.items() if name != "PROMETHEUS_MULTIPROC_DIR"}
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.integration.kit_service",
        env=env | {"BK_HTTP_WORKERS": "2"},
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(done.communicate(), 60)
    assert done.returncode != 0 and b"PROMETHEUS_MULTIPROC_DIR" in output


async def test_several_processes_stop_the_service_when_the_port_is_taken(scratch_database, kafka_bootstrap, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = _service_env(f"kit-svc-{uuid.uuid4().hex[:6]}", scratch_database, kafka_bootstrap, port, tmp_path)
        done = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.kit_service",
            env=env | {"BK_HTTP_WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")},
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(done.communicate(), 90)
    assert done.returncode == 3, output.decode(errors="replace")
    assert b"Address already in use" in output
