"""Housekeeping on the real PostgreSQL: rows that only guard against a redelivered message or a retried
request are deleted once they are older than their retention, in batches; younger rows stay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from buurtkracht_kit import housekeeping, migrations
from buurtkracht_kit.db import create_pool
from buurtkracht_kit.settings import KitSettings

pytestmark = pytest.mark.integration


def settings(**values) -> KitSettings:
    return KitSettings(service_name="housekeeping-test", database_url="postgresql://unused/unused", **values)


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database)
    pool = await create_pool(scratch_database, 1, 4)
    yield pool
    await pool.close()


async def test_old_inbox_rows_failure_counts_and_idempotency_keys_are_swept_in_batches(pool):
    await pool.execute(
        """
        INSERT INTO inbox (consumer, message_id, event_type, outcome, processed_at)
        SELECT 'c', 'old-' || n, 't', CASE WHEN n % 2 = 0 THEN 'processed' ELSE 'dead_lettered' END,
               now() - interval '46 days'
        FROM generate_series(1, 7) AS n
        UNION ALL
        SELECT 'c', 'young-' || n, 't', 'processed', now() - interval '44 days' FROM generate_series(1, 2) AS n;
        INSERT INTO consumer_failures (consumer, message_id, attempts, last_error, last_failed_at)
        VALUES ('c', 'old', 1, 'e', now() - interval '46 days'), ('c', 'young', 1, 'e', now());
        INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response, created_at)
        SELECT 'r-1', 'old-' || n, 'h', 201, '{}'::jsonb, now() - interval '8 days' FROM generate_series(1, 3) AS n
        UNION ALL SELECT 'r-1', 'young', 'h', 201, '{}'::jsonb, now() - interval '6 days';
        """
    )
    deleted = await housekeeping.sweep(pool, housekeeping.kit_sweeps(settings()), batch_size=2)
    assert deleted == {"inbox": 7, "consumer_failures": 1, "idempotency_keys": 3}
    assert sorted(await pool.fetchval("SELECT array_agg(message_id) FROM inbox")) == ["young-1", "young-2"]
    assert await pool.fetchval("SELECT array_agg(message_id) FROM consumer_failures") == ["young"]
    assert await pool.fetchval("SELECT array_agg(key) FROM idempotency_keys") == ["young"]
    assert await housekeeping.sweep(pool, housekeeping.kit_sweeps(settings())) == {
        "inbox": 0,
        "consumer_failures": 0,
        "idempotency_keys": 0,
    }


async def test_a_sweep_never_deletes_the_rows_its_condition_excludes(pool):
    await pool.execute(
        "INSERT INTO inbox (consumer, message_id, event_type, outcome, processed_at) VALUES "
        "('kept', 'x', 't', 'dead_lettered', now() - interval '100 days'), "
        "('gone', 'y', 't', 'processed', now() - interval '100 days')"
    )
    only_processed = housekeeping.Sweep("inbox", "processed_at", timedelta(days=45), where="outcome = 'processed'")
    assert await housekeeping.sweep(pool, [only_processed]) == {"inbox": 1}
    assert await pool.fetchval("SELECT consumer FROM inbox WHERE message_id IN ('x', 'y')") == "kept"
