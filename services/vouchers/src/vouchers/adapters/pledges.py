"""Pledges in PostgreSQL. A pledge row is locked (`for_update`) after its round and its initiative; the active
pledges of a round or an initiative are locked together, in the order they were made (ties by id), so two commands
that lock some of the same pledges take them in the same order."""

from __future__ import annotations

import uuid
from collections import defaultdict

import asyncpg

from ..domain.pledges import Pledge, PledgeStatus

_COLUMNS = "id, round_id, initiative_id, resident_id, amount_cents, requested_cents, status, created_at"


def _pledge(row: asyncpg.Record) -> Pledge:
    return Pledge(**{**dict(row), "status": PledgeStatus(row["status"])})


class PledgeRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, pledge: Pledge) -> None:
        await self._conn.execute(
            f"INSERT INTO pledges ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            pledge.id,
            pledge.round_id,
            pledge.initiative_id,
            pledge.resident_id,
            pledge.amount_cents,
            pledge.requested_cents,
            pledge.status.value,
            pledge.created_at,
        )

    async def add_all(self, pledges: list[Pledge]) -> None:
        await self._conn.execute(
            f"""INSERT INTO pledges ({_COLUMNS}) SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[],
                   $5::bigint[], $6::bigint[], $7::text[], $8::timestamptz[])""",
            [p.id for p in pledges],
            [p.round_id for p in pledges],
            [p.initiative_id for p in pledges],
            [p.resident_id for p in pledges],
            [p.amount_cents for p in pledges],
            [p.requested_cents for p in pledges],
            [p.status.value for p in pledges],
            [p.created_at for p in pledges],
        )

    async def get(self, pledge_id: uuid.UUID, *, for_update: bool = False) -> Pledge | None:
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM pledges WHERE id = $1" + (" FOR UPDATE" if for_update else ""), pledge_id
        )
        return _pledge(row) if row else None

    async def active(self, round_id: uuid.UUID, initiative_id: uuid.UUID | None = None) -> list[Pledge]:
        """The active pledges of the round (to one initiative, or to all), locked."""
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM pledges WHERE round_id = $1 AND status = 'active'
                AND ($2::uuid IS NULL OR initiative_id = $2) ORDER BY created_at, id FOR UPDATE""",
            round_id,
            initiative_id,
        )
        return [_pledge(r) for r in rows]

    async def of_resident(self, round_id: uuid.UUID, resident_id: str) -> list[Pledge]:
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM pledges WHERE round_id = $1 AND resident_id = $2 ORDER BY created_at",
            round_id,
            resident_id,
        )
        return [_pledge(r) for r in rows]

    async def of_person(self, resident_id: str) -> list[Pledge]:
        """Every pledge of the resident, in every round, in the order made (found round by round, by the index)."""
        rows = await self._conn.fetch(
            f"""SELECT {", ".join(f"p.{column}" for column in _COLUMNS.split(", "))}
                FROM rounds r JOIN pledges p ON p.round_id = r.id AND p.resident_id = $1 ORDER BY p.created_at, p.id""",
            resident_id,
        )
        return [_pledge(r) for r in rows]

    async def forget_pledger(self, resident_id: str, tombstone: str) -> int:
        """The resident's pledges keep their amounts and statuses, with `tombstone` as pledger; returns how many."""
        result = await self._conn.execute(
            """UPDATE pledges p SET resident_id = $2 FROM rounds r WHERE p.round_id = r.id AND p.resident_id = $1""",
            resident_id,
            tombstone,
        )
        return int(result.split()[-1])

    async def rounds_with_active(self, initiative_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT round_id FROM pledges WHERE initiative_id = $1 AND status = 'active' ORDER BY round_id",
            initiative_id,
        )
        return [r["round_id"] for r in rows]

    async def save(self, pledges: list[Pledge]) -> None:
        """Their statuses, one statement per status."""
        by_status: defaultdict[PledgeStatus, list[uuid.UUID]] = defaultdict(list)
        for pledge in pledges:
            by_status[pledge.status].append(pledge.id)
        for status, ids in by_status.items():
            await self._conn.execute("UPDATE pledges SET status = $2 WHERE id = ANY($1::uuid[])", ids, status.value)
