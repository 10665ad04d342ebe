"""Housekeeping: rows kept only to recognise a redelivered message or a retried request are deleted once
nothing can bring that message or request back, a few thousand at a time, by every replica (each skips
the rows another is deleting).

Invariants:
- an inbox row (and a consumer's failure count) lives longer than any topic keeps a message: the
  settings refuse a retention shorter than the longest topic retention in the contracts, so a
  redelivery, or a consumer group reset to the earliest offset, still finds the row and changes
  nothing; a dead-lettered row outlives its dead-letter record, so a replay still finds it;
- an idempotency key lives `idempotency_retention_days`, far longer than a client retries a request;
- published outbox rows are the relay's to delete, not this module's.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

import asyncpg

from . import periodic

if TYPE_CHECKING:
    from .runtime import Service
    from .settings import KitSettings

logger = logging.getLogger(__name__)

BATCH_SIZE = 5000


@dataclass(frozen=True)
class Sweep:
    """Delete the rows of `table` whose `age_from` (a column) is more than `keep` ago and that match `where`."""

    table: str
    age_from: str
    keep: timedelta
    where: str = "true"


def kit_sweeps(settings: KitSettings) -> list[Sweep]:
    """The kit's own tables: the inbox, consumers' failure counts and idempotency keys."""
    inbox = timedelta(days=settings.inbox_retention_days)
    return [
        Sweep("inbox", "processed_at", inbox),
        Sweep("consumer_failures", "last_failed_at", inbox),
        Sweep("idempotency_keys", "created_at", timedelta(days=settings.idempotency_retention_days)),
    ]


async def sweep(pool: asyncpg.Pool, sweeps: Sequence[Sweep], batch_size: int = BATCH_SIZE) -> dict[str, int]:
    """Delete what every sweep allows, in batches of `batch_size`; returns the rows deleted per table."""
    deleted: dict[str, int] = {}
    for chosen in sweeps:
        statement = f"""
            DELETE FROM {chosen.table} WHERE ctid = ANY(ARRAY(
                SELECT ctid FROM {chosen.table}
                WHERE {chosen.age_from} < now() - $1::interval AND ({chosen.where})
                LIMIT $2 FOR UPDATE SKIP LOCKED))"""
        total = 0
        while True:
            async with pool.acquire() as conn:
                count = int((await conn.execute(statement, chosen.keep, batch_size)).split()[-1])
            total += count
            if count < batch_size:
                break
        deleted[chosen.table] = deleted.get(chosen.table, 0) + total
    return deleted


async def run_housekeeping(service: Service) -> None:
    """Sweep every `housekeeping_interval_seconds` until cancelled."""
    settings = service.settings
    sweeps = kit_sweeps(settings) + list(service.spec.sweeps(settings))

    async def once() -> None:
        assert service.pool is not None
        deleted = await sweep(service.pool, sweeps)
        for table, count in deleted.items():
            service.metrics.housekeeping_deleted.labels(table).inc(count)
        if any(deleted.values()):
            logger.info("housekeeping deleted %s", ", ".join(f"{n} from {t}" for t, n in deleted.items() if n))

    await periodic.every(settings.housekeeping_interval_seconds, once, "housekeeping")
