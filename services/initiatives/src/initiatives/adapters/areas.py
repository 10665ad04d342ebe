"""The area registry in PostgreSQL: the only module that reads or writes the `areas` table."""

from __future__ import annotations

import asyncpg

from buurtkracht_kit.paging import fetch_page

from ..domain.areas import Area

_COLUMNS = "code, name, kind, parent_code, outline"


def _area(row: asyncpg.Record) -> Area:
    return Area(row["code"], row["name"], row["kind"], row["parent_code"], row["outline"])


class AreaRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def get(self, code: str) -> Area | None:
        row = await self._conn.fetchrow(f"SELECT {_COLUMNS} FROM areas WHERE code = $1", code)
        return _area(row) if row else None

    async def exists(self, code: str) -> bool:
        return bool(await self._conn.fetchval("SELECT EXISTS (SELECT 1 FROM areas WHERE code = $1)", code))

    async def among(self, codes: list[str], *, for_update: bool = False) -> dict[str, Area]:
        """The registered areas of `codes`, by code; locked for the rest of the unit of work when `for_update`."""
        lock = " ORDER BY code FOR UPDATE" if for_update else ""
        rows = await self._conn.fetch(f"SELECT {_COLUMNS} FROM areas WHERE code = ANY($1::text[]){lock}", codes)
        return {row["code"]: _area(row) for row in rows}

    async def save(self, areas: list[Area]) -> None:
        await self._conn.executemany(
            """INSERT INTO areas (code, name, kind, parent_code, outline) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                   parent_code = excluded.parent_code, outline = excluded.outline, updated_at = now()""",
            [(a.code, a.name, a.kind, a.parent_code, a.outline) for a in areas],
        )

    async def page(
        self, *, parent_code: str | None, kind: str | None, limit: int, offset: int
    ) -> tuple[list[Area], int]:
        """Registered areas by code, optionally only those in `parent_code` or of `kind`: (areas, total)."""
        rows, total = await fetch_page(
            self._conn,
            _COLUMNS,
            "areas WHERE ($1::text IS NULL OR parent_code = $1) AND ($2::text IS NULL OR kind = $2)",
            "code",
            [parent_code, kind],
            limit,
            offset,
        )
        return [_area(row) for row in rows], total
