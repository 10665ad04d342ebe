"""The read model's tables, the only module of the portal that speaks SQL: public initiatives, rounds, what each
initiative has in each round, and the areas with their names. The columns hold what the public pages show and nothing
else (see the domain).

The public reads are each one statement (an initiative with what is pledged to it, a page of a listing with its
count, the open rounds with their shares), so `Reading` runs them on a pooled connection without a transaction: a
statement sees one committed state by itself, and BEGIN and ROLLBACK would double the round trips of every request.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Self

import asyncpg

from buurtkracht_contracts.areas import enclosing, inside_patterns
from buurtkracht_kit.paging import fetch_page

from ..domain.areas import PublicArea
from ..domain.model import (
    BudgetLine,
    PublicInitiative,
    PublicRound,
    Report,
    RoundShare,
    RoundTotals,
    SpentLine,
    Status,
)

_SUMMARY_COLUMNS = (
    "id, area_code, title, status, category, summary, requested_amount_cents, approved_amount_cents, "
    "awarded_amount_cents, round_id, support_count, support_threshold, support_deadline"
)
_INITIATIVE_COLUMNS = f"{_SUMMARY_COLUMNS}, budget_lines, report"
_ROUND_COLUMNS = (
    "id, area_code, name, mechanism, total_budget_cents, voucher_amount_cents, opens_at, closes_at, is_open, "
    "awarded_cents_at_close, returned_to_pool_cents"
)
# the sum pledged to an initiative in the round it was last pledged to in
_PLEDGED = (
    "coalesce((SELECT s.pledged_cents FROM round_shares s WHERE s.initiative_id = i.id "
    "ORDER BY s.changed_at DESC LIMIT 1), 0) AS pledged_cents"
)


@dataclass(frozen=True)
class Listed:
    """An initiative with what is pledged to it. In a listing the initiative carries no budget lines and no report
    (a summary shows neither; they are not read)."""

    initiative: PublicInitiative
    pledged_cents: int


def _in_area(column: str, first: int) -> str:
    """`column` is the area `$first` or lies inside it (`$first+1` holds the LIKE patterns)."""
    return f"({column} = ${first} OR {column} LIKE ANY(${first + 1}::text[]))"


class ReadModel:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def area(self, code: str) -> PublicArea | None:
        row = await self._conn.fetchrow(
            "SELECT code, name, kind, parent_code, outline FROM areas WHERE code = $1", code
        )
        return PublicArea(row["code"], row["name"], row["kind"], row["parent_code"], row["outline"]) if row else None

    async def save_area(self, area: PublicArea) -> None:
        await self._conn.execute(
            """INSERT INTO areas (code, name, kind, parent_code, outline) VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (code) DO UPDATE SET name = excluded.name, kind = excluded.kind,
                   parent_code = excluded.parent_code, outline = excluded.outline, updated_at = now()""",
            area.code,
            area.name,
            area.kind,
            area.parent_code,
            area.outline,
        )

    async def names_of(self, codes: list[str]) -> dict[str, str]:
        """The names of those of `codes` the registry told of, by code."""
        rows = await self._conn.fetch("SELECT code, name FROM areas WHERE code = ANY($1::text[])", sorted(set(codes)))
        return {row["code"]: row["name"] for row in rows}

    async def all_names(self) -> dict[str, str]:
        """The name of every area the registry told of, by code (a municipality has some hundreds)."""
        return {row["code"]: row["name"] for row in await self._conn.fetch("SELECT code, name FROM areas")}

    async def name_of(self, code: str) -> str | None:
        """The name of the area `code`; None when the registry has not told of it."""
        return await self._conn.fetchval("SELECT name FROM areas WHERE code = $1", code)

    async def initiative(self, initiative_id: uuid.UUID, *, for_update: bool = False) -> PublicInitiative | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(
            f"SELECT {_INITIATIVE_COLUMNS} FROM public_initiatives WHERE id = $1{lock}", initiative_id
        )
        return _initiative(row) if row else None

    async def save_initiative(self, initiative: PublicInitiative) -> None:
        await self._conn.execute(
            """INSERT INTO public_initiatives (id, area_code, title, status, category, summary, requested_amount_cents,
                   approved_amount_cents, awarded_amount_cents, round_id, support_count, support_threshold,
                   support_deadline, budget_lines, report)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
               ON CONFLICT (id) DO UPDATE SET area_code = excluded.area_code, title = excluded.title,
                   status = excluded.status, category = excluded.category, summary = excluded.summary,
                   requested_amount_cents = excluded.requested_amount_cents,
                   approved_amount_cents = excluded.approved_amount_cents,
                   awarded_amount_cents = excluded.awarded_amount_cents, round_id = excluded.round_id,
                   support_count = excluded.support_count, support_threshold = excluded.support_threshold,
                   support_deadline = excluded.support_deadline, budget_lines = excluded.budget_lines,
                   report = excluded.report, updated_at = now()""",
            initiative.id,
            initiative.area_code,
            initiative.title,
            initiative.status.value,
            initiative.category,
            initiative.summary,
            initiative.requested_amount_cents,
            initiative.approved_amount_cents,
            initiative.awarded_amount_cents,
            initiative.round_id,
            initiative.support_count,
            initiative.support_threshold,
            initiative.support_deadline,
            [asdict(line) for line in initiative.budget_lines],  # the pool's codec writes JSON (`kit.db`)
            asdict(initiative.report) if initiative.report else None,
        )

    async def listed(self, initiative_id: uuid.UUID) -> Listed | None:
        """One initiative, whole, with what is pledged to it."""
        row = await self._conn.fetchrow(
            f"SELECT {_INITIATIVE_COLUMNS}, {_PLEDGED} FROM public_initiatives i WHERE i.id = $1", initiative_id
        )
        return Listed(_initiative(row), row["pledged_cents"]) if row else None

    async def pledged_to(self, initiative_id: uuid.UUID) -> int:
        return await self._conn.fetchval(f"SELECT {_PLEDGED} FROM (SELECT $1::uuid AS id) i", initiative_id)

    async def initiatives_in(self, area_code: str, limit: int, offset: int) -> tuple[list[Listed], int]:
        """The initiatives of `area_code` and the areas inside it, the most recently made known first."""
        rows, total = await fetch_page(
            self._conn,
            f"{_SUMMARY_COLUMNS}, {_PLEDGED}",
            f"public_initiatives i WHERE {_in_area('i.area_code', 1)}",
            "i.first_seen_at DESC, i.id",
            [area_code, inside_patterns(area_code)],
            limit,
            offset,
        )
        return [Listed(_initiative(row), row["pledged_cents"]) for row in rows], total

    async def round(self, round_id: uuid.UUID, *, for_update: bool = False) -> PublicRound | None:
        lock = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {_ROUND_COLUMNS} FROM public_rounds WHERE id = $1{lock}", round_id)
        return PublicRound(**dict(row)) if row else None

    async def save_round(self, round: PublicRound) -> None:
        values = asdict(round)
        columns = list(values)
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "id")
        await self._conn.execute(
            f"INSERT INTO public_rounds ({', '.join(columns)}) VALUES "
            f"({', '.join(f'${n}' for n in range(1, len(columns) + 1))}) ON CONFLICT (id) DO UPDATE SET {updates}",
            *values.values(),
        )

    async def share(self, round_id: uuid.UUID, initiative_id: uuid.UUID) -> RoundShare:
        row = await self._conn.fetchrow(
            "SELECT round_id, initiative_id, pledged_cents, awarded_cents FROM round_shares "
            "WHERE round_id = $1 AND initiative_id = $2 FOR UPDATE",
            round_id,
            initiative_id,
        )
        return RoundShare(**dict(row)) if row else RoundShare(round_id, initiative_id)

    async def save_share(self, share: RoundShare) -> None:
        await self._conn.execute(
            """INSERT INTO round_shares (round_id, initiative_id, pledged_cents, awarded_cents) VALUES ($1, $2, $3, $4)
               ON CONFLICT (round_id, initiative_id) DO UPDATE SET pledged_cents = excluded.pledged_cents,
                   awarded_cents = excluded.awarded_cents, changed_at = now()""",
            share.round_id,
            share.initiative_id,
            share.pledged_cents,
            share.awarded_cents,
        )

    async def open_rounds_for(self, area_code: str) -> list[RoundTotals]:
        """The open rounds of `area_code`, of the areas it lies in and of those inside it, closing soonest first, each
        with its shares (one statement: the shares of a round as arrays beside it)."""
        rows = await self._conn.fetch(
            f"""SELECT {", ".join(f"r.{column}" for column in _ROUND_COLUMNS.split(", "))},
                       s.initiative_ids, s.pledged, s.awarded
                FROM public_rounds r
                LEFT JOIN LATERAL (
                    SELECT array_agg(initiative_id) AS initiative_ids, array_agg(pledged_cents) AS pledged,
                           array_agg(awarded_cents) AS awarded
                    FROM round_shares WHERE round_id = r.id
                ) s ON true
                WHERE r.is_open AND (r.area_code = ANY($3::text[]) OR {_in_area("r.area_code", 1)})
                ORDER BY r.closes_at, r.id""",
            area_code,
            inside_patterns(area_code),
            enclosing(area_code),
        )
        return [_round_totals(row) for row in rows]


class Reading:
    """`async with Reading(pool, timeout) as reading:` ... `reading.read_model`: the read model on a pooled
    connection, outside a transaction, for the public reads (each one statement; see the module). Nothing is written
    through it."""

    read_model: ReadModel

    def __init__(self, pool: asyncpg.Pool, acquire_timeout: float) -> None:
        self._pool, self._acquire_timeout = pool, acquire_timeout

    async def __aenter__(self) -> Self:
        self._connection = await self._pool.acquire(timeout=self._acquire_timeout)
        self.read_model = ReadModel(self._connection)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._pool.release(self._connection)


def _round_totals(row: asyncpg.Record) -> RoundTotals:
    values = dict(row)
    initiative_ids, pledged, awarded = values.pop("initiative_ids"), values.pop("pledged"), values.pop("awarded")
    shares = tuple(
        RoundShare(row["id"], initiative_id, pledged_cents, awarded_cents)
        for initiative_id, pledged_cents, awarded_cents in zip(
            initiative_ids or (), pledged or (), awarded or (), strict=True
        )
    )
    return RoundTotals(PublicRound(**values), shares)


def _initiative(row: asyncpg.Record) -> PublicInitiative:
    """The initiative of a row of `_INITIATIVE_COLUMNS`, or of `_SUMMARY_COLUMNS` (no budget lines, no report)."""
    initiative = PublicInitiative(
        id=row["id"],
        area_code=row["area_code"],
        title=row["title"],
        status=Status(row["status"]),
        category=row["category"],
        summary=row["summary"],
        requested_amount_cents=row["requested_amount_cents"],
        approved_amount_cents=row["approved_amount_cents"],
        awarded_amount_cents=row["awarded_amount_cents"],
        round_id=row["round_id"],
        support_count=row["support_count"],
        support_threshold=row["support_threshold"],
        support_deadline=row["support_deadline"],
    )
    if "budget_lines" in row:
        initiative.budget_lines = tuple(BudgetLine(**line) for line in row["budget_lines"])
        if (report := row["report"]) is not None:
            spending = tuple(SpentLine(**line) for line in report["spending"])
            initiative.report = Report(report["what_was_done"], report["spent_amount_cents"], spending)
    return initiative
