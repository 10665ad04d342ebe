"""Rounds, initiatives, pledges, award decisions, expense claims and payouts in PostgreSQL.

`for_update` locks the row for the rest of the unit of work. Lock order, in every command:
round, then initiative, then pledge or claim, then ledger accounts — so commands never deadlock.

A round is locked with a transaction-scoped advisory lock on its id: shared by the commands that move
money in it, exclusive for closing it. Unlike row locks (`FOR SHARE`), PostgreSQL queues these fairly:
once a close waits, commands that come after it wait behind it, so a steady stream of pledges cannot
keep a round from closing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from ..domain.model import Conflict, Initiative, InitiativeStatus, Mechanism, Round, RoundStatus, within

ROUND_LOCKS = 0x726F756E64  # the seed of the advisory lock keys of rounds


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


@dataclass(frozen=True)
class Pledge:
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    resident_id: str
    amount_cents: int
    requested_cents: int
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Claim:
    id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    claimed_by: str
    supplier: str
    amount_cents: int
    invoice_reference: str
    status: str
    decided_by: str | None
    decision_reason: str | None
    created_at: datetime


@dataclass(frozen=True)
class Payout:
    id: uuid.UUID
    claim_id: uuid.UUID
    initiative_id: uuid.UUID
    round_id: uuid.UUID
    reference: str
    amount_cents: int
    status: str
    bank_reference: str | None
    settled_at: datetime | None


class Repository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    # -- rounds ------------------------------------------------------------------------------
    async def add_round(self, round_: Round, created_by: str) -> None:
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

    async def round(self, round_id: uuid.UUID, lock: str | None = None) -> Round | None:
        """`lock`: None, "share" (commands that move money in the round) or "update" (closing it)."""
        if lock is not None:
            take = {"share": "pg_advisory_xact_lock_shared", "update": "pg_advisory_xact_lock"}[lock]
            await self._conn.execute(f"SELECT {take}(hashtextextended($1::text, $2))", str(round_id), ROUND_LOCKS)
        suffix = " FOR UPDATE" if lock == "update" else ""
        row = await self._conn.fetchrow(f"SELECT * FROM rounds WHERE id = $1{suffix}", round_id)
        return _round(row) if row else None

    async def close_round(self, round_id: uuid.UUID) -> None:
        await self._conn.execute("UPDATE rounds SET status = 'closed', closed_at = now() WHERE id = $1", round_id)

    async def rounds_due(self, now: datetime) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id FROM rounds WHERE status = 'open' AND closes_at <= $1", now)
        return [r["id"] for r in rows]

    async def open_rounds_around(self, area_code: str) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id, area_code FROM rounds WHERE status = 'open'")
        return [r["id"] for r in rows if within(area_code, r["area_code"])]

    # -- initiatives -------------------------------------------------------------------------
    async def upsert_approved(self, initiative: Initiative) -> None:
        await self._conn.execute(
            """INSERT INTO initiatives (id, area_code, title, initiators, approved_amount_cents, status)
               VALUES ($1, $2, $3, $4, $5, 'approved') ON CONFLICT (id) DO NOTHING""",
            initiative.id,
            initiative.area_code,
            initiative.title,
            initiative.initiators,
            initiative.approved_amount_cents,
        )

    async def initiative(self, initiative_id: uuid.UUID, *, for_update: bool = False) -> Initiative | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM initiatives WHERE id = $1" + (" FOR UPDATE" if for_update else ""), initiative_id
        )
        return _initiative(row) if row else None

    async def set_initiative_status(
        self,
        initiative_id: uuid.UUID,
        status: InitiativeStatus,
        round_id: uuid.UUID | None = None,
        awarded_cents: int | None = None,
    ) -> None:
        await self._conn.execute(
            """UPDATE initiatives SET status = $2, round_id = coalesce($3, round_id),
                   awarded_cents = coalesce($4, awarded_cents), updated_at = now() WHERE id = $1""",
            initiative_id,
            status.value,
            round_id,
            awarded_cents,
        )

    async def approved_in(self, round_: Round) -> list[uuid.UUID]:
        """Approved, unawarded initiatives of the round's area."""
        rows = await self._conn.fetch("SELECT id, area_code FROM initiatives WHERE status = 'approved'")
        return [r["id"] for r in rows if within(r["area_code"], round_.area_code)]

    async def expire_if_still_approved(self, initiative_ids: list[uuid.UUID]) -> list[uuid.UUID]:
        """Expire those still approved (an award committed meanwhile wins); returns the ids expired."""
        rows = await self._conn.fetch(
            """UPDATE initiatives SET status = 'expired', updated_at = now()
               WHERE id = ANY($1::uuid[]) AND status = 'approved' RETURNING id""",
            initiative_ids,
        )
        return sorted((r["id"] for r in rows), key=initiative_ids.index)

    async def other_open_round_covers(self, initiative_id: uuid.UUID, closing_round_id: uuid.UUID) -> bool:
        area = await self._conn.fetchval("SELECT area_code FROM initiatives WHERE id = $1", initiative_id)
        return any(r != closing_round_id for r in await self.open_rounds_around(area))

    async def awarded_total(self, round_id: uuid.UUID) -> int:
        return await self._conn.fetchval(
            "SELECT coalesce(sum(awarded_cents), 0)::bigint FROM initiatives WHERE round_id = $1", round_id
        )

    async def awarded_in(self, round_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._conn.fetch("SELECT id FROM initiatives WHERE round_id = $1", round_id)
        return [r["id"] for r in rows]

    # -- pledges -----------------------------------------------------------------------------
    async def add_pledge(self, pledge: Pledge) -> None:
        await self._conn.execute(
            """INSERT INTO pledges (id, round_id, initiative_id, resident_id, amount_cents, requested_cents, status,
                   created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            pledge.id,
            pledge.round_id,
            pledge.initiative_id,
            pledge.resident_id,
            pledge.amount_cents,
            pledge.requested_cents,
            pledge.status,
            pledge.created_at,
        )

    async def pledge(self, pledge_id: uuid.UUID, *, for_update: bool = False) -> Pledge | None:
        row = await self._conn.fetchrow(
            "SELECT * FROM pledges WHERE id = $1" + (" FOR UPDATE" if for_update else ""), pledge_id
        )
        return Pledge(**dict(row)) if row else None

    async def active_pledges(self, round_id: uuid.UUID, initiative_id: uuid.UUID | None = None) -> list[Pledge]:
        rows = await self._conn.fetch(
            """SELECT * FROM pledges WHERE round_id = $1 AND status = 'active'
               AND ($2::uuid IS NULL OR initiative_id = $2) ORDER BY created_at FOR UPDATE""",
            round_id,
            initiative_id,
        )
        return [Pledge(**dict(r)) for r in rows]

    async def pledges_of(self, round_id: uuid.UUID, resident_id: str) -> list[Pledge]:
        rows = await self._conn.fetch(
            "SELECT * FROM pledges WHERE round_id = $1 AND resident_id = $2 ORDER BY created_at", round_id, resident_id
        )
        return [Pledge(**dict(r)) for r in rows]

    async def set_pledge_status(self, pledge_ids: list[uuid.UUID], status: str) -> None:
        await self._conn.execute("UPDATE pledges SET status = $2 WHERE id = ANY($1::uuid[])", pledge_ids, status)

    async def rounds_with_active_pledges(self, initiative_id: uuid.UUID) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT DISTINCT round_id FROM pledges WHERE initiative_id = $1 AND status = 'active'", initiative_id
        )
        return [r["round_id"] for r in rows]

    # -- committee ---------------------------------------------------------------------------
    async def add_decision(
        self,
        decision_id: uuid.UUID,
        round_id: uuid.UUID,
        initiative_id: uuid.UUID,
        amount_cents: int,
        awarded: bool,
        quorum: int,
        votes: list[dict[str, str]],
        recorded_by: str,
    ) -> None:
        await self._conn.execute(
            """INSERT INTO award_decisions
                   (id, round_id, initiative_id, amount_cents, awarded, quorum, votes, recorded_by)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            decision_id,
            round_id,
            initiative_id,
            amount_cents,
            awarded,
            quorum,
            votes,
            recorded_by,
        )

    # -- spending ----------------------------------------------------------------------------
    async def add_claim(self, claim: Claim) -> None:
        try:
            await self._conn.execute(
                """INSERT INTO expense_claims (id, initiative_id, round_id, claimed_by, supplier, amount_cents,
                       invoice_reference, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)""",
                claim.id,
                claim.initiative_id,
                claim.round_id,
                claim.claimed_by,
                claim.supplier,
                claim.amount_cents,
                claim.invoice_reference,
                claim.status,
                claim.created_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("this invoice was claimed before", "claimed") from None

    async def claim(self, claim_id: uuid.UUID, *, for_update: bool = False) -> Claim | None:
        row = await self._conn.fetchrow(
            """SELECT id, initiative_id, round_id, claimed_by, supplier, amount_cents, invoice_reference, status,
                      decided_by, decision_reason, created_at FROM expense_claims WHERE id = $1"""
            + (" FOR UPDATE" if for_update else ""),
            claim_id,
        )
        return Claim(**dict(row)) if row else None

    async def decide_claim(self, claim_id: uuid.UUID, status: str, decided_by: str, reason: str | None) -> None:
        await self._conn.execute(
            """UPDATE expense_claims SET status = $2, decided_by = $3, decision_reason = $4, decided_at = now()
               WHERE id = $1""",
            claim_id,
            status,
            decided_by,
            reason,
        )

    async def add_payout(self, payout: Payout) -> None:
        await self._conn.execute(
            """INSERT INTO payouts (id, claim_id, initiative_id, round_id, reference, amount_cents, status)
               VALUES ($1, $2, $3, $4, $5, $6, 'requested')""",
            payout.id,
            payout.claim_id,
            payout.initiative_id,
            payout.round_id,
            payout.reference,
            payout.amount_cents,
        )

    async def payout(self, payout_id: uuid.UUID, *, for_update: bool = False) -> Payout | None:
        row = await self._conn.fetchrow(
            """SELECT id, claim_id, initiative_id, round_id, reference, amount_cents, status, bank_reference, settled_at
               FROM payouts WHERE id = $1"""
            + (" FOR UPDATE" if for_update else ""),
            payout_id,
        )
        return Payout(**dict(row)) if row else None

    async def settle_payout(self, payout_id: uuid.UUID, bank_reference: str, settled_at: datetime) -> None:
        await self._conn.execute(
            "UPDATE payouts SET status = 'settled', bank_reference = $2, settled_at = $3 WHERE id = $1",
            payout_id,
            bank_reference,
            settled_at,
        )


def votes_json(votes: list[tuple[str, str]]) -> list[dict[str, str]]:
    return [{"member_id": member, "vote": vote} for member, vote in votes]
