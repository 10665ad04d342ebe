"""Expense claims and payouts in PostgreSQL. An invoice is claimed once per initiative (a unique key); a payout
is found by its id or by its own reference, which the finance side reconciles by."""

from __future__ import annotations

import uuid

import asyncpg

from buurtkracht_contracts.refusals import Conflict

from ..domain.spending import Claim, ClaimStatus, Payout, PayoutStatus

_CLAIM = """id, initiative_id, round_id, claimed_by, supplier, amount_cents, invoice_reference, status, decided_by,
    decision_reason, created_at"""
_PAYOUT = "id, claim_id, initiative_id, round_id, reference, amount_cents, status, bank_reference, settled_at"


def _claim(row: asyncpg.Record) -> Claim:
    return Claim(**{**dict(row), "status": ClaimStatus(row["status"])})


def _payout(row: asyncpg.Record) -> Payout:
    return Payout(**{**dict(row), "status": PayoutStatus(row["status"])})


class ClaimRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, claim: Claim) -> None:
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
                claim.status.value,
                claim.created_at,
            )
        except asyncpg.UniqueViolationError:
            raise Conflict("this invoice was claimed before", "claimed") from None

    async def get(self, claim_id: uuid.UUID, *, for_update: bool = False) -> Claim | None:
        row = await self._conn.fetchrow(
            f"SELECT {_CLAIM} FROM expense_claims WHERE id = $1" + (" FOR UPDATE" if for_update else ""), claim_id
        )
        return _claim(row) if row else None

    async def save(self, claim: Claim) -> None:
        """Its decision."""
        await self._conn.execute(
            """UPDATE expense_claims SET status = $2, decided_by = $3, decision_reason = $4, decided_at = now()
               WHERE id = $1""",
            claim.id,
            claim.status.value,
            claim.decided_by,
            claim.decision_reason,
        )


class PayoutRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def add(self, payout: Payout) -> None:
        await self._conn.execute(
            """INSERT INTO payouts (id, claim_id, initiative_id, round_id, reference, amount_cents, status)
               VALUES ($1, $2, $3, $4, $5, $6, $7)""",
            payout.id,
            payout.claim_id,
            payout.initiative_id,
            payout.round_id,
            payout.reference,
            payout.amount_cents,
            payout.status.value,
        )

    async def get(self, payout_id: uuid.UUID, *, for_update: bool = False) -> Payout | None:
        row = await self._conn.fetchrow(
            f"SELECT {_PAYOUT} FROM payouts WHERE id = $1" + (" FOR UPDATE" if for_update else ""), payout_id
        )
        return _payout(row) if row else None

    async def id_of(self, reference: str) -> uuid.UUID | None:
        """The id of the payout with this reference of ours (`BK-...`)."""
        return await self._conn.fetchval("SELECT id FROM payouts WHERE reference = $1", reference)

    async def save(self, payout: Payout) -> None:
        """Its settlement."""
        await self._conn.execute(
            "UPDATE payouts SET status = $2, bank_reference = $3, settled_at = $4 WHERE id = $1",
            payout.id,
            payout.status.value,
            payout.bank_reference,
            payout.settled_at,
        )
