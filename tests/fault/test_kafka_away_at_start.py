"""A service process started while Kafka is away (a pod rescheduled during a broker outage) serves its HTTP API at
once, answers `/readyz` with 503 naming Kafka, and starts consuming by itself when the broker is back: it does not
exit into a crash loop whose growing backoff would outlast the outage. A pledge made meanwhile waits in the outbox
and reaches Kafka, and the notifications service, after the broker returns."""

from __future__ import annotations

import asyncio
import subprocess

import asyncpg
import pytest

from ..chaos import load
from ..system import HANDLED, ROOT, running_system

pytestmark = pytest.mark.fault

STACK = ROOT / "deploy" / "local" / "stack.sh"


async def _stack(*arguments: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(STACK), *arguments, stdout=asyncio.subprocess.PIPE, stderr=subprocess.STDOUT
    )
    output = (await asyncio.wait_for(process.communicate(), 180))[0].decode()
    assert process.returncode == 0, output
    return output.strip()


async def test_a_service_started_without_kafka_serves_http_and_consumes_when_kafka_returns(
    kafka_bootstrap, tmp_path_factory
):
    async with running_system(kafka_bootstrap, tmp_path_factory, "kafka_away") as system:
        population = await load.prepare(system, residents=5, initiatives=1)
        headers = next(iter(population.residents.values()))
        await system.kill("vouchers")
        print(await _stack("kafka-stop", "1"))
        try:
            await system.start("vouchers")
            url = f"{system.url('vouchers')}/api/v1/rounds/{population.round_id}/pledges"
            pledge = await system.journey.until(
                "vouchers to take a pledge without Kafka",
                lambda: _pledge(system, url, headers | {"Idempotency-Key": f"away-{system.journey.run}"}, population),
                timeout=60,
            )
            assert system.processes["vouchers"].returncode is None
            readiness = await system.journey.http.get(f"{system.url('vouchers')}/readyz")
            assert readiness.status_code == 503 and "kafka" in readiness.text, readiness.text
            waiting = await _outbox(system)
            assert waiting, "the pledge's events wait in the outbox while Kafka is away"
        finally:
            print(await _stack("kafka-start", "1"))
        await system.ready("vouchers", timeout=120)
        await system.journey.until("the outbox to drain", lambda: _outbox_empty(system), timeout=60)
        heard = [event_id for event_id, event_type in waiting if event_type in HANDLED["notifications"]]
        assert heard, waiting
        notifications = await asyncpg.connect(system.databases["notifications"])
        try:
            await system.journey.until(
                "the notifications service to apply the pledge's events",
                lambda: _all_applied(notifications, heard, system.environments["notifications"]["BK_SERVICE_NAME"]),
                timeout=60,
            )
        finally:
            await notifications.close()
        assert pledge["amount_cents"] == 500


async def _pledge(system, url, headers, population):
    try:
        answer = await system.journey.http.post(
            url, json={"initiative_id": population.initiatives[0], "amount_cents": 500}, headers=headers
        )
    except Exception:  # not listening yet
        return None
    return answer.json() if answer.status_code == 201 else None


async def _outbox(system) -> list[tuple[str, str]]:
    """(event id, type) of every event of the vouchers service not yet on Kafka."""
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        return [(str(row["event_id"]), row["event_type"]) for row in await conn.fetch("SELECT * FROM outbox")]
    finally:
        await conn.close()


async def _outbox_empty(system) -> bool:
    return not await _outbox(system)


async def _all_applied(conn, event_ids: list[str], consumer: str) -> bool:
    applied = await conn.fetchval(
        "SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[]) AND outcome = 'processed'",
        consumer,
        event_ids,
    )
    return applied == len(event_ids)
