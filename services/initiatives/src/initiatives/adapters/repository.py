"""Initiatives in PostgreSQL: the only module of this service that speaks SQL.

`get(..., for_update=True)` locks the initiative's row for the rest of the unit of work, so commands
on one initiative run one after another and its events are committed in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from buurtkracht_contracts.areas import inside_patterns, is_area_code
from buurtkracht_kit.paging import fetch_page

from ..domain.model import BudgetLine, Category, Initiative, Spending, Status, Transition

_COLUMNS = """id, owner_id, co_initiators, invited_co_initiators, title, summary, description, area_code, category,
    budget_lines, status, support_threshold, support_deadline, support_count, volunteer_count, approved_amount_cents,
    awarded_amount_cents, round_id, review_note, what_was_done, spending, created_at, version, volunteers_wanted"""


@dataclass(frozen=True)
class Volunteer:
    resident_id: str
    offer: str
    joined_at: datetime


@dataclass(frozen=True)
class Supported:
    """A resident's support of an initiative."""

    initiative_id: uuid.UUID
    title: str
    supported_at: datetime


@dataclass(frozen=True)
class Volunteering:
    """A resident's sign-up to help an initiative, with what they offered."""

    initiative_id: uuid.UUID
    title: str
    offer: str
    joined_at: datetime


@dataclass(frozen=True)
class Made:
    """A transition a person made, in the history of an initiative."""

    initiative_id: uuid.UUID
    from_status: Status | None
    to_status: Status
    note: str | None
    at: datetime


@dataclass(frozen=True)
class Page:
    initiatives: list[Initiative]
    total: int


def _from_row(row: asyncpg.Record) -> Initiative:
    return Initiative(
        id=row["id"],
        owner_id=row["owner_id"],
        co_initiators=list(row["co_initiators"]),
        invited_co_initiators=list(row["invited_co_initiators"]),
        title=row["title"],
        summary=row["summary"],
        description=row["description"],
        area_code=row["area_code"],
        category=Category(row["category"]),
        budget_lines=[BudgetLine(line["description"], line["amount_cents"]) for line in row["budget_lines"]],
        volunteers_wanted=row["volunteers_wanted"],
        status=Status(row["status"]),
        support_threshold=row["support_threshold"],
        support_deadline=row["support_deadline"],
        support_count=row["support_count"],
        volunteer_count=row["volunteer_count"],
        approved_amount_cents=row["approved_amount_cents"],
        awarded_amount_cents=row["awarded_amount_cents"],
        round_id=row["round_id"],
        review_note=row["review_note"],
        what_was_done=row["what_was_done"],
        spending=[Spending(s["description"], s["spent_cents"]) for s in row["spending"]] if row["spending"] else None,
        created_at=row["created_at"],
        version=row["version"],
    )


class InitiativeRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def get(self, initiative_id: uuid.UUID, *, for_update: bool = False) -> Initiative | None:
        row = await self._conn.fetchrow(
            f"SELECT {_COLUMNS} FROM initiatives WHERE id = $1" + (" FOR UPDATE" if for_update else ""),
            initiative_id,
        )
        return _from_row(row) if row else None

    async def add(self, initiative: Initiative) -> None:
        await self._conn.execute(
            """
            INSERT INTO initiatives (id, owner_id, co_initiators, invited_co_initiators, title, summary, description,
                                     area_code, category, budget_lines, requested_amount_cents, volunteers_wanted,
                                     status, created_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            """,
            initiative.id,
            initiative.owner_id,
            initiative.co_initiators,
            initiative.invited_co_initiators,
            initiative.title,
            initiative.summary,
            initiative.description,
            initiative.area_code,
            initiative.category.value,
            _budget(initiative),
            initiative.requested_amount_cents,
            initiative.volunteers_wanted,
            initiative.status.value,
            initiative.created_at,
        )
        await self._add_transitions(initiative)

    async def save(self, initiative: Initiative) -> None:
        """Write the aggregate's state and its new history entries (the caller holds the row lock)."""
        await self._conn.execute(
            """
            UPDATE initiatives SET co_initiators = $2, title = $3, summary = $4, description = $5, category = $6,
                budget_lines = $7, requested_amount_cents = $8, volunteers_wanted = $9, status = $10,
                support_threshold = $11, support_deadline = $12, support_count = $13, volunteer_count = $14,
                approved_amount_cents = $15, awarded_amount_cents = $16, round_id = $17, review_note = $18,
                what_was_done = $19, spending = $20, invited_co_initiators = $21, updated_at = now(),
                version = version + 1
            WHERE id = $1
            """,
            initiative.id,
            initiative.co_initiators,
            initiative.title,
            initiative.summary,
            initiative.description,
            initiative.category.value,
            _budget(initiative),
            initiative.requested_amount_cents,
            initiative.volunteers_wanted,
            initiative.status.value,
            initiative.support_threshold,
            initiative.support_deadline,
            initiative.support_count,
            initiative.volunteer_count,
            initiative.approved_amount_cents,
            initiative.awarded_amount_cents,
            initiative.round_id,
            initiative.review_note,
            initiative.what_was_done,
            [{"description": s.description, "spent_cents": s.spent_cents} for s in initiative.spending]
            if initiative.spending is not None
            else None,
            initiative.invited_co_initiators,
        )
        await self._add_transitions(initiative)

    async def _add_transitions(self, initiative: Initiative) -> None:
        if initiative.transitions:
            await self._conn.executemany(
                """INSERT INTO transitions (initiative_id, from_status, to_status, actor_id, note, at)
                   VALUES ($1, $2, $3, $4, $5, $6)""",
                [
                    (
                        initiative.id,
                        t.from_status.value if t.from_status else None,
                        t.to_status.value,
                        t.actor_id,
                        t.note,
                        t.at,
                    )
                    for t in initiative.transitions
                ],
            )
            initiative.transitions.clear()

    async def history(self, initiative_id: uuid.UUID) -> list[Transition]:
        rows = await self._conn.fetch(
            "SELECT from_status, to_status, actor_id, note, at FROM transitions WHERE initiative_id = $1 ORDER BY id",
            initiative_id,
        )
        return [
            Transition(
                Status(r["from_status"]) if r["from_status"] else None,
                Status(r["to_status"]),
                r["actor_id"],
                r["at"],
                r["note"],
            )
            for r in rows
        ]

    async def supports(self, initiative_id: uuid.UUID, resident_id: str) -> bool:
        return await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM supports WHERE initiative_id = $1 AND resident_id = $2)",
            initiative_id,
            resident_id,
        )

    async def add_support(self, initiative_id: uuid.UUID, resident_id: str, at: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO supports (initiative_id, resident_id, supported_at) VALUES ($1, $2, $3)",
            initiative_id,
            resident_id,
            at,
        )

    async def remove_support(self, initiative_id: uuid.UUID, resident_id: str) -> None:
        await self._conn.execute(
            "DELETE FROM supports WHERE initiative_id = $1 AND resident_id = $2", initiative_id, resident_id
        )

    async def volunteers_with(self, initiative_id: uuid.UUID, resident_id: str) -> bool:
        return await self._conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM volunteers WHERE initiative_id = $1 AND resident_id = $2)",
            initiative_id,
            resident_id,
        )

    async def add_volunteer(self, initiative_id: uuid.UUID, resident_id: str, offer: str, at: datetime) -> None:
        await self._conn.execute(
            "INSERT INTO volunteers (initiative_id, resident_id, offer, joined_at) VALUES ($1, $2, $3, $4)",
            initiative_id,
            resident_id,
            offer,
            at,
        )

    async def volunteers(self, initiative_id: uuid.UUID) -> list[Volunteer]:
        rows = await self._conn.fetch(
            "SELECT resident_id, offer, joined_at FROM volunteers WHERE initiative_id = $1 ORDER BY joined_at",
            initiative_id,
        )
        return [Volunteer(r["resident_id"], r["offer"], r["joined_at"]) for r in rows]

    async def involving(self, resident_id: str, *, for_update: bool = False) -> list[Initiative]:
        """The initiatives the resident owns, co-initiates or is invited to co-initiate, in id order: the order
        `for_update` locks them in."""
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM initiatives
                WHERE owner_id = $1 OR $1 = ANY (co_initiators) OR $1 = ANY (invited_co_initiators) ORDER BY id"""
            + (" FOR UPDATE" if for_update else ""),
            resident_id,
        )
        return [_from_row(row) for row in rows]

    async def save_people(self, initiative: Initiative) -> None:
        """Write who owns, co-initiates and is invited to co-initiate the initiative (the caller holds the row
        lock); nothing else of it."""
        await self._conn.execute(
            """UPDATE initiatives SET owner_id = $2, co_initiators = $3, invited_co_initiators = $4, updated_at = now(),
                   version = version + 1
               WHERE id = $1""",
            initiative.id,
            initiative.owner_id,
            initiative.co_initiators,
            initiative.invited_co_initiators,
        )

    async def supports_of(self, resident_id: str) -> list[Supported]:
        rows = await self._conn.fetch(
            """SELECT s.initiative_id, i.title, s.supported_at FROM supports s
               JOIN initiatives i ON i.id = s.initiative_id
               WHERE s.resident_id = $1 ORDER BY s.supported_at, s.initiative_id""",
            resident_id,
        )
        return [Supported(r["initiative_id"], r["title"], r["supported_at"]) for r in rows]

    async def volunteering_of(self, resident_id: str) -> list[Volunteering]:
        rows = await self._conn.fetch(
            """SELECT v.initiative_id, i.title, v.offer, v.joined_at FROM volunteers v
               JOIN initiatives i ON i.id = v.initiative_id
               WHERE v.resident_id = $1 ORDER BY v.joined_at, v.initiative_id""",
            resident_id,
        )
        return [Volunteering(r["initiative_id"], r["title"], r["offer"], r["joined_at"]) for r in rows]

    async def made_by(self, actor_id: str) -> list[Made]:
        """The transitions `actor_id` made, in the order they were made."""
        rows = await self._conn.fetch(
            "SELECT initiative_id, from_status, to_status, note, at FROM transitions WHERE actor_id = $1 ORDER BY id",
            actor_id,
        )
        return [
            Made(
                r["initiative_id"],
                Status(r["from_status"]) if r["from_status"] else None,
                Status(r["to_status"]),
                r["note"],
                r["at"],
            )
            for r in rows
        ]

    async def forget_supporter(self, resident_id: str, tombstone: str) -> int:
        """The resident's supports count on under `tombstone`, each initiative remembering the digest of their id
        (see `supported_before_forgotten`); returns how many."""
        result = await self._conn.execute(
            """WITH theirs AS (UPDATE supports SET resident_id = $2 WHERE resident_id = $1 RETURNING initiative_id)
               INSERT INTO forgotten_supports (initiative_id, digest)
               SELECT initiative_id, sha256(convert_to($1, 'UTF8')) FROM theirs ON CONFLICT DO NOTHING""",
            resident_id,
            tombstone,
        )
        return int(result.split()[-1])

    async def supported_before_forgotten(self, initiative_id: uuid.UUID, resident_id: str) -> bool:
        """Whether the resident supported the initiative under an id since forgotten: that support still counts."""
        return await self._conn.fetchval(
            """SELECT EXISTS (SELECT 1 FROM forgotten_supports
                              WHERE initiative_id = $1 AND digest = sha256(convert_to($2, 'UTF8')))""",
            initiative_id,
            resident_id,
        )

    async def forget_volunteer(self, resident_id: str, tombstone: str) -> int:
        """The resident's sign-ups count on under `tombstone`, the offers they wrote erased; returns how many."""
        result = await self._conn.execute(
            "UPDATE volunteers SET resident_id = $2, offer = '' WHERE resident_id = $1", resident_id, tombstone
        )
        return int(result.split()[-1])

    async def forget_actor(self, actor_id: str, tombstone: str) -> int:
        """The transitions `actor_id` made keep their place in each history, with `tombstone` as actor; returns how
        many."""
        result = await self._conn.execute(
            "UPDATE transitions SET actor_id = $2 WHERE actor_id = $1", actor_id, tombstone
        )
        return int(result.split()[-1])

    async def overdue(self, now: datetime, limit: int = 500) -> list[uuid.UUID]:
        """Initiatives still gathering support after their deadline."""
        rows = await self._conn.fetch(
            """SELECT id FROM initiatives WHERE status = 'gathering_support' AND support_deadline < $1
               ORDER BY support_deadline LIMIT $2""",
            now,
            limit,
        )
        return [r["id"] for r in rows]

    async def search(
        self,
        *,
        area_code: str | None,
        status: Status | None,
        category: Category | None,
        visible_to: str,
        official_areas: list[str],
        limit: int,
        offset: int,
    ) -> Page:
        """Public initiatives, plus drafts the caller initiates or is invited to co-initiate and, for officials,
        those of their areas."""
        conditions, args = [], []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if area_code:
            conditions.append(f"area_code LIKE ANY ({arg(_within(area_code))})")
        if status:
            conditions.append(f"status = {arg(status.value)}")
        if category:
            conditions.append(f"category = {arg(category.value)}")
        caller = arg(visible_to)
        official_prefixes = arg([pattern for area in official_areas for pattern in _within(area)])
        conditions.append(
            f"""(status NOT IN ('draft', 'changes_requested') OR owner_id = {caller}
                 OR {caller} = ANY (co_initiators) OR {caller} = ANY (invited_co_initiators)
                 OR area_code LIKE ANY ({official_prefixes}))"""
        )
        where = " AND ".join(conditions)
        rows, total = await fetch_page(
            self._conn, _COLUMNS, f"initiatives WHERE {where}", "created_at DESC, id", args, limit, offset
        )
        return Page([_from_row(row) for row in rows], total)


def _budget(initiative: Initiative) -> list[dict[str, object]]:
    return [{"description": line.description, "amount_cents": line.amount_cents} for line in initiative.budget_lines]


def _within(area_code: str) -> list[str]:
    """LIKE patterns for the area and every area inside it (GM0363: its wijken and buurten; WK036301: its buurten)."""
    return [area_code, *inside_patterns(area_code)] if is_area_code(area_code) else []
