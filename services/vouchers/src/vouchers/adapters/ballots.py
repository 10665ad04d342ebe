"""Ballots of Equal Shares rounds in PostgreSQL. A resident's ballot row is locked (`for_update`) after the round's
lock, so two changes of one ballot run one after another and each is compared with the one before it."""

from __future__ import annotations

import uuid

import asyncpg

from ..domain.ballots import Ballot


def _ballot(row: asyncpg.Record) -> Ballot:
    return Ballot(row["round_id"], row["resident_id"], tuple(row["initiative_ids"]), row["cast_at"])


class BallotRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def of(self, round_id: uuid.UUID, resident_id: str, *, for_update: bool = False) -> Ballot | None:
        """The resident's ballot; `for_update` locks it, and when there is none yet, holds the place of it (a
        transaction-scoped advisory lock on the pair) so that a concurrent first ballot waits for this one."""
        if for_update:
            await self._conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"ballot:{round_id}:{resident_id}"
            )
        row = await self._conn.fetchrow(
            "SELECT * FROM ballots WHERE round_id = $1 AND resident_id = $2" + (" FOR UPDATE" if for_update else ""),
            round_id,
            resident_id,
        )
        return _ballot(row) if row else None

    async def save(self, ballot: Ballot) -> None:
        await self._conn.execute(
            """INSERT INTO ballots (round_id, resident_id, initiative_ids, cast_at) VALUES ($1, $2, $3, $4)
               ON CONFLICT (round_id, resident_id)
               DO UPDATE SET initiative_ids = EXCLUDED.initiative_ids, cast_at = EXCLUDED.cast_at""",
            ballot.round_id,
            ballot.resident_id,
            list(ballot.initiative_ids),
            ballot.cast_at,
        )

    async def add_all(self, round_id: uuid.UUID, ballots: list[tuple[str, list[uuid.UUID]]]) -> None:
        """Many residents' ballots at once (a bulk load for benchmarks and tests: no events); each names at least one
        initiative, and replaces the resident's ballot before it."""
        residents = [resident for resident, ids in ballots for _ in ids]
        await self._conn.execute(
            """INSERT INTO ballots (round_id, resident_id, initiative_ids)
               SELECT $1, r, array_agg(i ORDER BY n)
               FROM unnest($2::text[], $3::uuid[]) WITH ORDINALITY AS t(r, i, n) GROUP BY r
               ON CONFLICT (round_id, resident_id) DO UPDATE SET initiative_ids = EXCLUDED.initiative_ids""",
            round_id,
            residents,
            [initiative_id for _, ids in ballots for initiative_id in ids],
        )

    async def of_resident(self, resident_id: str) -> list[Ballot]:
        rows = await self._conn.fetch(
            "SELECT * FROM ballots WHERE resident_id = $1 ORDER BY cast_at, round_id", resident_id
        )
        return [_ballot(r) for r in rows]

    async def rounds_of(self, resident_id: str) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT round_id FROM ballots WHERE resident_id = $1 ORDER BY round_id", resident_id
        )
        return [r["round_id"] for r in rows]

    async def forget_resident(self, resident_id: str, tombstone: str) -> int:
        """The resident's ballots keep their approvals under `tombstone` (their rounds are locked by the caller)."""
        result = await self._conn.execute(
            "UPDATE ballots SET resident_id = $2 WHERE resident_id = $1", resident_id, tombstone
        )
        return int(result.split()[-1])
