"""Budget rounds in PostgreSQL, and the lock that orders the commands of a round.

A round is locked with a transaction-scoped advisory lock on its id: shared by the commands that move money in
it, exclusive for closing it. Unlike row locks (`FOR SHARE`), PostgreSQL queues these fairly: once a close
waits, commands that come after it wait behind it, so a steady stream of pledges cannot keep a round from
closing. Lock order, in every command: round, then initiative, then pledge, claim, payout or award proposal,
then ledger accounts — so commands never deadlock (see `service.locking`).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

import asyncpg

from buurtkracht_contracts.areas import enclosing, inside_patterns
from buurtkracht_kit.paging import fetch_page

from ..domain.rounds import Mechanism, Round, RoundStatus
from .areas import in_areas

ROUND_LOCKS = 0x726F756E64  # the seed of the advisory lock keys of rounds


class RoundLock(StrEnum):
    SHARED = "pg_advisory_xact_lock_shared"  # commands that move money in the round
    EXCLUSIVE = "pg_advisory_xact_lock"  # closing it


def _round(row: asyncpg.Record) -> Round:
    return Round(
        id=row["id"],
        area_code=row["area_code"],
        name=row["name"],
        mechanism=Mechanism(row["mechanism"]),
        total_budget_cents=row["total_budget_cents"],
        voucher_amount_cents=row["voucher_amount_cents"],
        allow_wallet_claims=row["allow_wallet_claims"],
        committee_quorum=row["committee_quorum"],
        opens_at=row["opens_at"],
        closes_at=row["closes_at"],
        status=RoundStatus(row["status"]),
    )


class RoundRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, round_: Round, created_by: str) -> None:
        await self._conn.execute(
            """INSERT INTO rounds (id, area_code, name, mechanism, total_budget_cents, voucher_amount_cents,
                   allow_wallet_claims, committee_quorum, opens_at, closes_at, created_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
            round_.id,
            round_.area_code,
            round_.name,
            round_.mechanism.value,
            round_.total_budget_cents,
            round_.voucher_amount_cents,
            round_.allow_wallet_claims,
            round_.committee_quorum,
            round_.opens_at,
            round_.closes_at,
            created_by,
        )

    async def get(self, round_id: uuid.UUID, lock: RoundLock | None = None) -> Round | None:
        """The round; with `lock`, after taking the round's lock for the rest of the transaction."""
        if lock is not None:
            await self._conn.execute(f"SELECT {lock.value}(hashtextextended($1::text, $2))", str(round_id), ROUND_LOCKS)
        suffix = " FOR UPDATE" if lock is RoundLock.EXCLUSIVE else ""
        row = await self._conn.fetchrow(f"SELECT * FROM rounds WHERE id = $1{suffix}", round_id)
        return _round(row) if row else None

    async def get_all(self, round_ids: list[uuid.UUID], lock: RoundLock) -> dict[uuid.UUID, Round]:
        """The rounds that exist of these, after taking their locks one by one in id order."""
        for round_id in sorted(set(round_ids)):
            await self._conn.execute(f"SELECT {lock.value}(hashtextextended($1::text, $2))", str(round_id), ROUND_LOCKS)
        suffix = " ORDER BY id FOR UPDATE" if lock is RoundLock.EXCLUSIVE else ""
        rows = await self._conn.fetch(f"SELECT * FROM rounds WHERE id = ANY($1::uuid[]){suffix}", list(set(round_ids)))
        return {r["id"]: _round(r) for r in rows}

    async def save(self, round_: Round) -> None:
        """Its status: the only thing about a round that changes."""
        await self._conn.execute(
            """UPDATE rounds SET status = $2,
                   closed_at = CASE WHEN $2 = 'closed' THEN coalesce(closed_at, now()) END WHERE id = $1""",
            round_.id,
            round_.status.value,
        )

    async def search(
        self, area_code: str | None, status: RoundStatus | None, limit: int, offset: int
    ) -> tuple[list[Round], int]:
        """A page of rounds, newest first, and how many match in all: with `area_code`, the rounds of that area,
        of the areas inside it and of the areas it lies in."""
        inside = inside_patterns(area_code) if area_code else []
        rows, total = await fetch_page(
            self._conn,
            "*",
            f"""rounds WHERE ($1::text[] IS NULL OR {in_areas("area_code", "$1", "$2")})
                  AND ($3::text IS NULL OR status = $3)""",
            "created_at DESC, id",
            [enclosing(area_code) if area_code else None, inside, status.value if status else None],
            limit,
            offset,
        )
        return [_round(r) for r in rows], total

    async def involving(self, person: str, areas: list[str]) -> list[uuid.UUID]:
        """The rounds `person` opened, and those of `areas` (exactly those areas), in id order."""
        rows = await self._conn.fetch(
            "SELECT id FROM rounds WHERE created_by = $1 OR area_code = ANY($2::text[]) ORDER BY id", person, areas
        )
        return [r["id"] for r in rows]

    async def opened_by(self, person: str) -> list[Round]:
        rows = await self._conn.fetch("SELECT * FROM rounds WHERE created_by = $1 ORDER BY created_at, id", person)
        return [_round(r) for r in rows]

    async def forget_creator(self, person: str, tombstone: str) -> int:
        """The rounds `person` opened name `tombstone` as who opened them (their rows are locked: see `get_all`);
        returns how many."""
        result = await self._conn.execute("UPDATE rounds SET created_by = $2 WHERE created_by = $1", person, tombstone)
        return int(result.split()[-1])

    async def due(self, now: datetime) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id FROM rounds WHERE status = 'open' AND closes_at <= $1", now)
        return [r["id"] for r in rows]
