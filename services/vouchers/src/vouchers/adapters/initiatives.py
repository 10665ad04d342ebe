"""Initiatives as this service knows them, in PostgreSQL. `get(..., for_update=True)` locks the initiative's row
for the rest of the transaction: commands on one initiative (pledges to it, its award, its claims, its end) run
one after another, so an amount decided from its balances is exact."""

from __future__ import annotations

import uuid

import asyncpg

from buurtkracht_contracts.areas import inside_patterns
from buurtkracht_kit.paging import fetch_page

from ..domain.initiatives import Initiative, InitiativeStatus, Progress
from ..domain.rounds import Mechanism, Round
from .areas import in_areas, inside_any


def _initiative(row: asyncpg.Record) -> Initiative:
    return Initiative(
        id=row["id"],
        area_code=row["area_code"],
        title=row["title"],
        initiators=list(row["initiators"]),
        approved_amount_cents=row["approved_amount_cents"],
        status=InitiativeStatus(row["status"]),
        round_id=row["round_id"],
        awarded_cents=row["awarded_cents"],
    )


class InitiativeRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add_approved(self, initiative: Initiative) -> None:
        """The first announcement of its approval counts; a repeat changes nothing."""
        await self._conn.execute(
            """INSERT INTO initiatives (id, area_code, title, initiators, approved_amount_cents, status)
               VALUES ($1, $2, $3, $4, $5, 'approved') ON CONFLICT (id) DO NOTHING""",
            initiative.id,
            initiative.area_code,
            initiative.title,
            initiative.initiators,
            initiative.approved_amount_cents,
        )

    async def get(self, initiative_id: uuid.UUID, *, for_update: bool = False) -> Initiative | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM initiatives WHERE id = $1" + (" FOR UPDATE" if for_update else ""), initiative_id
        )
        return _initiative(row) if row else None

    async def get_all(
        self, initiative_ids: list[uuid.UUID], *, for_update: bool = False
    ) -> dict[uuid.UUID, Initiative]:
        """The initiatives that exist of these; `for_update` locks their rows in id order, in one statement."""
        rows = await self._conn.fetch(
            "SELECT * FROM initiatives WHERE id = ANY($1::uuid[]) ORDER BY id" + (" FOR UPDATE" if for_update else ""),
            list(set(initiative_ids)),
        )
        return {r["id"]: _initiative(r) for r in rows}

    async def save(self, initiative: Initiative) -> None:
        await self._conn.execute(
            """UPDATE initiatives SET status = $2, round_id = $3, awarded_cents = $4, initiators = $5,
                   updated_at = now()
               WHERE id = $1""",
            initiative.id,
            initiative.status.value,
            initiative.round_id,
            initiative.awarded_cents,
            initiative.initiators,
        )

    async def initiated_by(self, person: str) -> list[Initiative]:
        rows = await self._conn.fetch(
            "SELECT * FROM initiatives WHERE $1 = ANY(initiators) ORDER BY approved_at, id", person
        )
        return [_initiative(r) for r in rows]

    async def forget_initiator(self, person: str, tombstone: str) -> int:
        """The initiatives `person` (co-)initiates name `tombstone` in their place; their rows are locked in id order,
        as `get_all` locks them. Returns how many."""
        result = await self._conn.execute(
            """WITH theirs AS (SELECT id FROM initiatives WHERE $1 = ANY(initiators) ORDER BY id FOR UPDATE)
               UPDATE initiatives i SET initiators = array_replace(i.initiators, $1, $2), updated_at = now()
               FROM theirs WHERE i.id = theirs.id""",
            person,
            tombstone,
        )
        return int(result.split()[-1])

    async def progress_in(self, round_: Round, limit: int, offset: int) -> tuple[list[Progress], int]:
        """A page of the initiatives of the round's area that it may still award or awarded, newest approval
        first, with what is pledged to each in the round; and how many there are in all."""
        rows, total = await fetch_page(
            self._conn,
            """i.id, i.title, i.area_code, i.approved_amount_cents, i.awarded_cents,
               i.round_id IS NOT DISTINCT FROM $1 AS awarded_here,
               coalesce(a.balance_cents, 0) AS pledged""",
            f"""initiatives i LEFT JOIN accounts a
                    ON a.round_id = $1 AND a.kind = 'pledged' AND a.owner = i.id::text
                WHERE i.round_id = $1 OR (i.status = 'approved' AND {in_areas("i.area_code", "$2", "$3")})""",
            "i.approved_at DESC, i.id",
            [round_.id, [round_.area_code], inside_patterns(round_.area_code)],
            limit,
            offset,
        )
        by_pledges = round_.mechanism is Mechanism.PLEDGE
        return [
            Progress(
                r["id"],
                r["title"],
                r["area_code"],
                r["approved_amount_cents"],
                r["pledged"] + ((r["awarded_cents"] or 0) if r["awarded_here"] and by_pledges else 0),
                "awarded" if r["awarded_here"] else "open",
                r["awarded_cents"] if r["awarded_here"] else None,
            )
            for r in rows
        ], total

    async def left_unawarded_by(self, round_: Round) -> list[uuid.UUID]:
        """The approved initiatives of the round's area that no other open round covers — closing the round leaves
        nothing that could still award them — oldest approval first. Filtered in the database: an area holds
        thousands of initiatives, and the open rounds are few."""
        others = await self._conn.fetch(
            "SELECT DISTINCT area_code FROM rounds WHERE status = 'open' AND id <> $1", round_.id
        )
        covered = [r["area_code"] for r in others]
        rows = await self._conn.fetch(
            f"""SELECT id FROM initiatives
                WHERE status = 'approved' AND {in_areas("area_code", "$1", "$2")}
                  AND NOT {in_areas("area_code", "$3", "$4")}
                ORDER BY approved_at, id""",
            [round_.area_code],
            inside_patterns(round_.area_code),
            covered,
            inside_any(covered),
        )
        return [r["id"] for r in rows]

    async def expire_if_still_approved(self, initiative_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Expire those still approved (an award committed meanwhile wins); returns the ids expired."""
        rows = await self._conn.fetch(
            """UPDATE initiatives SET status = 'expired', updated_at = now()
               WHERE id = ANY($1::uuid[]) AND status = 'approved' RETURNING id""",
            initiative_ids,
        )
        order = {initiative_id: n for n, initiative_id in enumerate(initiative_ids)}
        return sorted((r["id"] for r in rows), key=order.__getitem__)

    async def awarded_in(self, round_id: uuid.UUID) -> tuple[list[uuid.UUID], int]:
        """The initiatives the round awarded, and the cents it awarded them."""
        rows = await self._conn.fetch("SELECT id, awarded_cents FROM initiatives WHERE round_id = $1", round_id)
        return [r["id"] for r in rows], sum(r["awarded_cents"] or 0 for r in rows)
