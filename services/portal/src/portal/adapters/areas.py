"""Which areas the read model has initiatives in (the front page's list of buurten)."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class AreaWithInitiatives:
    area_code: str
    initiative_count: int


class Areas:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def with_initiatives(self, limit: int = 500) -> list[AreaWithInitiatives]:
        rows = await self._conn.fetch(
            "SELECT area_code, count(*) AS n FROM public_initiatives GROUP BY area_code ORDER BY area_code LIMIT $1",
            limit,
        )
        return [AreaWithInitiatives(row["area_code"], row["n"]) for row in rows]
