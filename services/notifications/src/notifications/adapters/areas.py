"""The names of areas, as the area registry tells them: the only module that reads or writes `areas_known`."""

from __future__ import annotations

from collections.abc import Iterable

import asyncpg


class Areas:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def register(self, code: str, name: str, kind: str) -> None:
        """The area as it now reads: the newest registration of a code replaces the one before."""
        await self._conn.execute(
            """INSERT INTO areas_known (code, name, kind) VALUES ($1, $2, $3)
               ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind""",
            code,
            name,
            kind,
        )

    async def names(self, codes: Iterable[str]) -> dict[str, str]:
        """The names of those of `codes` that are known, by code."""
        wanted = sorted({code for code in codes if code})
        if not wanted:
            return {}
        rows = await self._conn.fetch("SELECT code, name FROM areas_known WHERE code = ANY($1::text[])", wanted)
        return {row["code"]: row["name"] for row in rows}
