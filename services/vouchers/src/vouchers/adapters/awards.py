"""Award proposals and their votes in PostgreSQL. A proposal row is locked (`for_update`) after its round and its
initiative; a unique index keeps at most one proposal per initiative open in a round, another one award per
initiative."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit.paging import fetch_page

from ..domain.awards import Award, AwardStatus, Ballot

_COLUMNS = "id, round_id, initiative_id, amount_cents, proposed_by, quorum, status, proposed_at, decided_at"


@dataclass(frozen=True)
class Cast:
    """A member's vote on a proposal, with what the proposal was about."""

    award_id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    vote: str
    cast_at: datetime


class AwardRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, award: Award) -> None:
        try:
            await self._conn.execute(
                f"INSERT INTO award_proposals ({_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                award.id,
                award.round_id,
                award.initiative_id,
                award.amount_cents,
                award.proposed_by,
                award.quorum,
                award.status.value,
                award.proposed_at,
                award.decided_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("a proposal to award this initiative is open in this round already", "open") from None
        await self._save_ballots(award)

    async def save(self, award: Award) -> None:
        """Its status, its decision and its votes."""
        await self._conn.execute(
            "UPDATE award_proposals SET status = $2, decided_at = $3 WHERE id = $1",
            award.id,
            award.status.value,
            award.decided_at,
        )
        await self._save_ballots(award)

    async def _save_ballots(self, award: Award) -> None:
        ballots = list(award.ballots.values())
        await self._conn.execute(
            """INSERT INTO award_votes (award_id, member_id, vote, cast_at)
               SELECT $1, m, v, c FROM unnest($2::text[], $3::text[], $4::timestamptz[]) AS t(m, v, c)
               ON CONFLICT (award_id, member_id) DO UPDATE SET vote = EXCLUDED.vote, cast_at = EXCLUDED.cast_at
               WHERE award_votes.vote <> EXCLUDED.vote""",
            award.id,
            [b.member_id for b in ballots],
            [b.vote for b in ballots],
            [b.cast_at for b in ballots],
        )

    async def get(self, award_id: uuid.UUID, *, for_update: bool = False) -> Award | None:
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM award_proposals WHERE id = $1" + (" FOR UPDATE" if for_update else ""), award_id
        )
        return (await self._with_ballots([row]))[0] if row else None

    async def open_for(self, round_id: uuid.UUID, initiative_id: uuid.UUID) -> uuid.UUID | None:
        """The proposal to award the initiative that is open in the round, if any."""
        return await self._conn.fetchval(
            "SELECT id FROM award_proposals WHERE round_id = $1 AND initiative_id = $2 AND status = 'open'",
            round_id,
            initiative_id,
        )

    async def of_round(
        self, round_id: uuid.UUID, status: AwardStatus | None, limit: int, offset: int
    ) -> tuple[list[Award], int]:
        """A page of the round's proposals, newest first, and how many there are in all."""
        rows, total = await fetch_page(
            self._conn,
            _COLUMNS,
            "award_proposals WHERE round_id = $1 AND ($2::text IS NULL OR status = $2)",
            "proposed_at DESC, id",
            [round_id, status.value if status else None],
            limit,
            offset,
        )
        return await self._with_ballots(rows), total

    async def _with_ballots(self, rows: Sequence[asyncpg.Record]) -> list[Award]:
        ids = [row["id"] for row in rows]
        votes = await self._conn.fetch(
            """SELECT award_id, member_id, vote, cast_at FROM award_votes WHERE award_id = ANY($1::uuid[])
               ORDER BY cast_at, member_id""",
            ids,
        )
        awards = []
        for row in rows:
            award = Award(
                **{column: row[column] for column in _COLUMNS.split(", ") if column != "status"},
                status=AwardStatus(row["status"]),
            )
            awards.append(award)
        by_id = {award.id: award for award in awards}
        for vote in votes:
            member = vote["member_id"]
            by_id[vote["award_id"]].ballots[member] = Ballot(member, vote["vote"], vote["cast_at"])
        return awards

    async def lapse_open(self, *, round_id: uuid.UUID | None = None, initiative_ids: Sequence[uuid.UUID] = ()) -> int:
        """The open proposals of the round, or of these initiatives, lapse: nothing can award them any more."""
        result = await self._conn.execute(
            """UPDATE award_proposals SET status = 'lapsed', decided_at = now()
               WHERE status = 'open' AND (round_id = $1 OR initiative_id = ANY($2::uuid[]))""",
            round_id,
            list(initiative_ids),
        )
        return int(result.split()[-1])

    async def proposed_by(self, member_id: str) -> list[Award]:
        """The proposals `member_id` made, oldest first, with their votes."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM award_proposals WHERE proposed_by = $1 ORDER BY proposed_at, id", member_id
        )
        return await self._with_ballots(rows)

    async def cast_by(self, member_id: str) -> list[Cast]:
        rows = await self._conn.fetch(
            """SELECT v.award_id, p.round_id, p.initiative_id, v.vote, v.cast_at
               FROM award_votes v JOIN award_proposals p ON p.id = v.award_id
               WHERE v.member_id = $1 ORDER BY v.cast_at, v.award_id""",
            member_id,
        )
        return [Cast(r["award_id"], r["round_id"], r["initiative_id"], r["vote"], r["cast_at"]) for r in rows]

    async def forget_member(self, member_id: str, tombstone: str) -> int:
        """The proposals `member_id` made and the votes they cast keep their amounts and decisions, with `tombstone`
        as proposer and voter: each proposal's row before its votes. Returns how many rows changed."""
        proposals = await self._conn.execute(
            "UPDATE award_proposals SET proposed_by = $2 WHERE proposed_by = $1", member_id, tombstone
        )
        votes = await self._conn.execute(
            "UPDATE award_votes SET member_id = $2 WHERE member_id = $1", member_id, tombstone
        )
        return int(proposals.split()[-1]) + int(votes.split()[-1])
