"""Committee award decisions in PostgreSQL: recorded once, with who voted how, and never changed."""

from __future__ import annotations

import asyncpg

from ..domain.awards import Award


class AwardRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, award: Award) -> None:
        await self._conn.execute(
            """INSERT INTO award_decisions
                   (id, round_id, initiative_id, amount_cents, awarded, quorum, votes, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            award.id,
            award.round_id,
            award.initiative_id,
            award.amount_cents,
            award.awarded,
            award.quorum,
            [{"member_id": member, "vote": vote} for member, vote in award.votes],
            award.recorded_by,
        )
