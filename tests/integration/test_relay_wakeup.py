"""What wakes the relay: a commit of its own process at once, without NOTIFY on the commit path; rows committed by
any other writer are found by its poll."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid

import pytest

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.topics import TopicSpec
from buurtkracht_kit import migrations, outbox, topics
from buurtkracht_kit.db import UnitOfWork, create_pool
from buurtkracht_kit.metrics import ServiceMetrics
from buurtkracht_kit.outbox import OutboxRelay, kafka_producer

from .kit_domain import MIGRATIONS, SOURCE, TEST_TOPIC, CounterIncremented, increment

pytestmark = pytest.mark.integration

NEVER = 3600.0  # a poll interval no test waits for


@pytest.fixture(scope="module")
async def pool(scratch_database, kafka_bootstrap):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [TopicSpec(TEST_TOPIC, 6, 3_600_000)])
    pool = await create_pool(scratch_database, 2, 10)
    yield pool
    await pool.close()


@contextlib.asynccontextmanager
async def running_relay(pool, kafka_bootstrap, poll_interval: float):
    relay = OutboxRelay(
        pool,
        lambda: kafka_producer({"bootstrap_servers": kafka_bootstrap}),
        ServiceMetrics("t"),
        poll_interval=poll_interval,
    )
    task = asyncio.create_task(relay.run())
    try:
        await wait_until_empty(pool, timeout=30)  # whatever earlier tests left is published first
        yield relay
    finally:
        relay.stop()
        await asyncio.wait_for(task, 30)
        await relay.close()


async def wait_until_empty(pool, timeout: float) -> float | None:
    """Seconds until the outbox held no row, or None after `timeout`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if not await pool.fetchval("SELECT EXISTS (SELECT 1 FROM outbox)"):
            return time.perf_counter() - started
        await asyncio.sleep(0.01)
    return None


async def commit_elsewhere(pool, counter: str) -> None:
    """Rows committed the way another process would: nothing in this process hears of it."""
    envelope = Envelope.wrap(CounterIncremented(counter_id=counter, amount=1), SOURCE)
    async with pool.acquire() as conn, conn.transaction():
        await outbox.add(conn, [envelope])


async def test_a_commit_of_the_relays_process_is_published_at_once_without_waiting_for_a_poll(pool, kafka_bootstrap):
    async with running_relay(pool, kafka_bootstrap, poll_interval=NEVER):
        await asyncio.sleep(0.2)  # the relay is idle, waiting
        await increment(pool, f"wake-{uuid.uuid4()}")
        assert await wait_until_empty(pool, timeout=10) is not None, "the commit did not wake the relay"


async def test_a_commit_in_another_thread_wakes_the_relay(pool, kafka_bootstrap):
    async with running_relay(pool, kafka_bootstrap, poll_interval=NEVER):
        await asyncio.sleep(0.2)
        await commit_elsewhere(pool, f"thread-{uuid.uuid4()}")
        await asyncio.to_thread(outbox.wake_relays)
        assert await wait_until_empty(pool, timeout=10) is not None, "the wake from another thread was lost"


async def test_rows_another_process_commits_are_found_by_the_poll(pool, kafka_bootstrap):
    async with running_relay(pool, kafka_bootstrap, poll_interval=0.05):
        await asyncio.sleep(0.2)
        await commit_elsewhere(pool, f"poll-{uuid.uuid4()}")
        assert await wait_until_empty(pool, timeout=10) is not None, "the poll did not find the committed row"


async def test_rows_another_process_commits_wait_for_the_poll_when_nothing_wakes_the_relay(pool, kafka_bootstrap):
    async with running_relay(pool, kafka_bootstrap, poll_interval=NEVER):
        await asyncio.sleep(0.2)
        await commit_elsewhere(pool, f"unheard-{uuid.uuid4()}")
        assert await wait_until_empty(pool, timeout=1.5) is None  # no NOTIFY, no wake: only a poll would find it
        outbox.wake_relays()
        assert await wait_until_empty(pool, timeout=10) is not None


async def test_a_unit_of_work_commits_its_events_without_notify(pool):
    statements: list[str] = []

    def remember(query) -> None:
        statements.append(query.query)

    async with UnitOfWork(pool, SOURCE) as uow:
        uow.connection.add_query_logger(remember)
        try:
            uow.record(CounterIncremented(counter_id=f"quiet-{uuid.uuid4()}", amount=1))
            await uow.commit()
        finally:
            uow.connection.remove_query_logger(remember)
    assert any("INSERT INTO outbox" in statement for statement in statements)
    assert not [statement for statement in statements if "notify" in statement.lower()]
