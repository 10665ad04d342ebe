"""A resident forgotten in the kit's tables of a service's database (AVG/GDPR article 17), in the caller's transaction:
each service's handler of `ResidentForgetRequested` calls `forget` beside erasing its own tables.

What each table holds of a resident, and what becomes of it:
- `outbox`: events not published yet. Every JSON string of a payload that is exactly the resident's id (a value or a
  key), and an aggregate id that is, becomes the tombstone, so these events leave as every later one does. The
  relay's lock is taken first, so no batch holds or sends a row meanwhile and each aggregate's rows keep their order.
  What was published before is gone from the table; it stays on Kafka until the topic's retention ends.
  A dead letter (`aggregate_type = 'verbatim'`) stays byte for byte, on purpose: it is a record exactly as it came,
  kept only until the relay moves it to the dead-letter topic, and replaying it must apply what was sent (it may be
  this very erasure, which then still has to happen). So does an unpublished `ResidentForgetRequested`: the other
  services still need the id it names to find what to erase.
- `idempotency_keys`: the resident's own keys are deleted; a retry with one of them after the erasure runs the
  command anew and finds nothing of theirs. Another principal's stored answer names the tombstone wherever it named
  the resident, so a replay tells what a read would.
- `consumer_failures`: a failure whose error text mentions the id is deleted; it only counts attempts, and the
  message gets its attempts afresh.
- `inbox`: message ids and event types only; nothing of the resident.

Applying it again, or for a resident the service never saw, finds nothing and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import asyncpg

from buurtkracht_contracts.notifications import ResidentForgetRequested

from .outbox import RELAY_LOCK_KEY


def replaced(value: Any, resident_id: str, tombstone: str) -> Any:
    """Decoded JSON `value` with every string that is exactly `resident_id`, as a value or as a key, `tombstone`."""
    if isinstance(value, str):
        return tombstone if value == resident_id else value
    if isinstance(value, list):
        return [replaced(item, resident_id, tombstone) for item in value]
    if isinstance(value, dict):
        return {
            (tombstone if key == resident_id else key): replaced(item, resident_id, tombstone)
            for key, item in value.items()
        }
    return value


async def forget(conn: asyncpg.Connection, resident_id: str, tombstone: str) -> None:
    """Erase `resident_id` from the kit's tables as the module docstring says; `conn` (of the kit's pool, which decodes
    JSON) is in the caller's transaction, and holds the relay's lock until it ends."""
    await conn.execute("SELECT pg_advisory_xact_lock($1)", RELAY_LOCK_KEY)
    waiting = await conn.fetch(
        """SELECT id, aggregate_id, payload FROM outbox
           WHERE aggregate_type <> 'verbatim' AND event_type <> $2
             AND (aggregate_id = $1 OR strpos(payload::text, to_jsonb($1::text)::text) > 0)
           ORDER BY id FOR UPDATE""",
        resident_id,
        ResidentForgetRequested.event_type,
    )
    if waiting:
        await conn.executemany(
            "UPDATE outbox SET aggregate_id = $2, payload = $3 WHERE id = $1",
            [
                (
                    row["id"],
                    tombstone if row["aggregate_id"] == resident_id else row["aggregate_id"],
                    replaced(row["payload"], resident_id, tombstone),
                )
                for row in waiting
            ],
        )
    await conn.execute("DELETE FROM idempotency_keys WHERE principal = $1", resident_id)
    answers = await conn.fetch(
        """SELECT principal, key, response FROM idempotency_keys
           WHERE strpos(response::text, to_jsonb($1::text)::text) > 0 ORDER BY principal, key FOR UPDATE""",
        resident_id,
    )
    if answers:
        await conn.executemany(
            "UPDATE idempotency_keys SET response = $3 WHERE principal = $1 AND key = $2",
            [(row["principal"], row["key"], replaced(row["response"], resident_id, tombstone)) for row in answers],
        )
    await conn.execute("DELETE FROM consumer_failures WHERE strpos(last_error, $1) > 0", resident_id)


@dataclass(frozen=True)
class KitTables:
    """The kit's tables on a unit of work's connection: a service's unit of work hands it to its commands
    (`uow.kit_tables`), so they reach these tables through the unit of work, as they reach the service's own."""

    connection: asyncpg.Connection

    async def forget(self, resident_id: str, tombstone: str) -> None:
        await forget(self.connection, resident_id, tombstone)
