"""The unit of work on the real PostgreSQL: a cancelled commit stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from buurtkracht_kit import periodic
from buurtkracht_kit.db import UnitOfWork, create_pool

pytestmark = pytest.mark.integration

SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-test"

# A commit that takes a while: a deferred constraint trigger sleeps when the transaction commits.
SLOW_COMMIT = """
CREATE TABLE IF NOT EXISTS slow_commits (id serial PRIMARY KEY);
CREATE OR REPLACE FUNCTION sleep_at_commit() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(2); RETURN NULL; END $$;
DROP TRIGGER IF EXISTS slow_commit ON slow_commits;
CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON slow_commits
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION sleep_at_commit();
"""


@pytest.fixture(scope="module")
async def pool(scratch_database):
    pool = await create_pool(scratch_database, 1, 2)
    async with pool.acquire() as conn:
        await conn.execute(SLOW_COMMIT)
    yield pool
    await pool.close()


async def slow_write(pool) -> None:
    async with UnitOfWork(pool, SOURCE) as uow:
        await uow.connection.execute("INSERT INTO slow_commits DEFAULT VALUES")
        await uow.commit()


async def test_a_unit_of_work_cancelled_while_committing_ends_as_cancelled_and_gives_its_connection_back(pool):
    task = asyncio.create_task(slow_write(pool))
    await asyncio.sleep(0.5)  # inside the commit's two seconds
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    async with pool.acquire(timeout=5) as conn:  # the connection went back (reset or replaced)
        assert await conn.fetchval("SELECT 1") == 1


async def test_a_periodic_loop_cancelled_while_its_work_commits_stops(pool):
    """Shutdown cancels background loops; one caught in a commit must stop, not log a failure and go on."""
    loop = asyncio.create_task(periodic.every(0.05, lambda: slow_write(pool), "writing slowly"))
    await asyncio.sleep(0.5)
    loop.cancel()
    done, _ = await asyncio.wait({loop}, timeout=5)
    assert loop in done and loop.cancelled()
