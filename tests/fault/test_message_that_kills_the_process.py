"""A message whose handling kills the process (a crash in native code, the out-of-memory killer) does not
restart the service for ever: after as many deaths as attempts allow it is dead-lettered, and the message
behind it is processed. So too when it comes deep in a batch, behind messages not yet applied: the batch it
died in counts no attempt, and on the next start the message is marked before it runs again."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, dead_letter_topic
from buurtkracht_kit import topics

from ..integration.kit_domain import RUN_ID, SOURCE, CounterIncremented, own_topic, read_topic
from ..integration.kit_service import KILLED_EXIT_CODE, KILLING_AMOUNT
from ..keys import PUBLIC
from ..system import free_port

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]
MAX_ATTEMPTS = 2


@pytest.mark.parametrize("before", [[1], [1, 2, 4, 8, 16]], ids=["alone", "deep-in-a-batch"])
async def test_a_message_that_kills_the_process_is_dead_lettered_after_the_allowed_attempts(
    scratch_database, kafka_bootstrap, tmp_path, before
):
    group = f"kit-killer-{uuid.uuid4().hex[:6]}"
    topic, dlq = own_topic(group), dead_letter_topic(group)
    specs = [TopicSpec(topic, 3, 3_600_000), TopicSpec(dlq, 1, 3_600_000)]
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, specs)
    (tmp_path / "public.pem").write_text(PUBLIC)
    counter = f"killer-{uuid.uuid4()}"
    good_before = [Envelope.wrap(CounterIncremented(counter_id=counter, amount=amount), SOURCE) for amount in before]
    killer = Envelope.wrap(CounterIncremented(counter_id=counter, amount=KILLING_AMOUNT), SOURCE)
    good_after = Envelope.wrap(CounterIncremented(counter_id=counter, amount=10), SOURCE)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for envelope in [*good_before, killer, good_after]:  # one key: one partition, in this order
            record = to_kafka(envelope)
            await producer.send_and_wait(topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()

    env = os.environ | {
        "KIT_TEST_RUN_ID": RUN_ID,
        "KIT_TEST_TOPIC": topic,
        "BK_SERVICE_NAME": group,
        "BK_DATABASE_URL": scratch_database,
        "BK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "BK_JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
        "BK_CONSUMER_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "BK_RELAY_POLL_INTERVAL_SECONDS": "0.2",
    }

    async def settled() -> bool:
        try:
            connection = await asyncpg.connect(scratch_database)
        except (OSError, asyncpg.PostgresError):
            return False
        try:
            value = await connection.fetchval("SELECT value FROM counters WHERE id = $1", counter)
            parked = await connection.fetchval(
                "SELECT outcome FROM inbox WHERE consumer = $1 AND message_id = $2", group, str(killer.id)
            )
        except asyncpg.UndefinedTableError:
            return False
        finally:
            await connection.close()
        return value == sum(before) + 10 and parked == "dead_lettered"

    deaths = 0
    log = tmp_path / "service.log"
    for _ in range(MAX_ATTEMPTS + len(before) + 2):
        with log.open("ab") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tests.integration.kit_service",
                env=env | {"BK_HTTP_PORT": str(free_port())},
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        while process.returncode is None and not await settled():
            try:
                await asyncio.wait_for(process.wait(), 0.5)
            except TimeoutError:
                pass
        if process.returncode is None:  # settled while running
            dead = await read_topic(kafka_bootstrap, dlq, at_least=1, timeout=30)
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
            break
        assert process.returncode == KILLED_EXIT_CODE, log.read_text()
        deaths += 1
    else:
        pytest.fail(f"not dead-lettered after {deaths} deaths:\n{log.read_text()[-3000:]}")

    # the first death comes before any mark (alone: the partition had just had a message processed; in a batch:
    # a batch counts no attempt); every later one finds the mark of the attempt before it
    assert deaths == MAX_ATTEMPTS + 1
    (parked,) = dead
    headers = dict(parked.headers)
    assert headers["ce_id"] == str(killer.id).encode() and headers["dlq_attempts"] == str(MAX_ATTEMPTS).encode()
    assert headers["dlq_error"].startswith(b"ProcessDied: the process stopped while applying it")
    connection = await asyncpg.connect(scratch_database)
    try:
        times = await connection.fetch(
            "SELECT count(*) AS n FROM applied WHERE counter_id = $1 GROUP BY event_id", counter
        )
        left = await connection.fetchval("SELECT count(*) FROM consumer_failures WHERE consumer = $1", group)
    finally:
        await connection.close()
    assert sorted(row["n"] for row in times) == [1] * (len(before) + 1)  # every good message applied once
    assert left == 0
