"""Expense claims and payouts in PostgreSQL. An invoice is claimed once per initiative (a unique key); a payout
is found by its id or by its own reference, which the finance side reconciles by."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg

from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit.paging import fetch_page

from ..domain.spending import Claim, ClaimStatus, Payout, PayoutStatus
from .areas import in_areas, inside_any

_CLAIM = """id, initiative_id, round_id, claimed_by, supplier, amount_cents, invoice_reference, status, decided_by,
    decision_reason, created_at, decided_at"""
_PAYOUT = (
    "id, claim_id, initiative_id, round_id, reference, amount_cents, status, bank_reference, settled_at, created_at, "
    "batch_id, attempt, cancelled_by, cancel_reason"
)
_CLAIM_COLUMNS = [column.strip() for column in _CLAIM.split(",")]
_PAYOUT_COLUMNS = [column.strip() for column in _PAYOUT.split(",")]
# A claim with its payout, if it has one: the claim's columns as they are, the payout's prefixed `payout_`.
_CLAIM_AND_PAYOUT = ", ".join(
    [f"c.{column}" for column in _CLAIM_COLUMNS] + [f"p.{column} AS payout_{column}" for column in _PAYOUT_COLUMNS]
)
_CLAIM_WITH_PAYOUT = "expense_claims c LEFT JOIN payouts p ON p.claim_id = c.id"


def _claim(row: asyncpg.Record) -> Claim:
    claim = Claim(**{column: row[column] for column in _CLAIM_COLUMNS} | {"status": ClaimStatus(row["status"])})
    if row.get("payout_id") is not None:
        claim.payout = _payout({column: row[f"payout_{column}"] for column in _PAYOUT_COLUMNS})
    return claim


def _payout(row: Mapping[str, Any]) -> Payout:
    return Payout(**{column: row[column] for column in _PAYOUT_COLUMNS} | {"status": PayoutStatus(row["status"])})


def _visible(areas: str, inside: str, member_areas: str, subject: str) -> str:
    """Whose claims a caller sees: those of rounds in the areas they are an official for (`areas`, and the areas
    inside them: the patterns `inside`), of rounds of the areas whose steering group they are a member of
    (`member_areas`), and their own initiatives'."""
    return f"""({in_areas("r.area_code", areas, inside)}
               OR r.area_code = ANY({member_areas}::text[])
               OR c.claimed_by = {subject} OR {subject} = ANY(i.initiators))"""


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

    async def read(self, claim_id: uuid.UUID) -> Claim | None:
        """The claim with its payout, if it has one."""
        row = await self._conn.fetchrow(
            f"SELECT {_CLAIM_AND_PAYOUT} FROM {_CLAIM_WITH_PAYOUT} WHERE c.id = $1", claim_id
        )
        return _claim(row) if row else None

    async def search(
        self,
        *,
        round_id: uuid.UUID | None,
        status: ClaimStatus | None,
        official_areas: list[str],
        member_areas: list[str],
        subject: str,
        limit: int,
        offset: int,
    ) -> tuple[list[Claim], int]:
        """A page of the claims the caller may see (see `_visible`), newest first, and how many in all."""
        rows, total = await fetch_page(
            self._conn,
            _CLAIM_AND_PAYOUT,
            f"""{_CLAIM_WITH_PAYOUT} JOIN rounds r ON r.id = c.round_id JOIN initiatives i ON i.id = c.initiative_id
                WHERE ($1::uuid IS NULL OR c.round_id = $1) AND ($2::text IS NULL OR c.status = $2)
                  AND {_visible("$3", "$4", "$5", "$6")}""",
            "c.created_at DESC, c.id",
            [
                round_id,
                status.value if status else None,
                official_areas,
                inside_any(official_areas),
                member_areas,
                subject,
            ],
            limit,
            offset,
        )
        return [_claim(r) for r in rows], total

    async def of_person(self, person: str) -> list[Claim]:
        """The claims `person` made or decided, with their payouts, oldest first."""
        rows = await self._conn.fetch(
            f"""SELECT {_CLAIM_AND_PAYOUT} FROM {_CLAIM_WITH_PAYOUT} WHERE c.claimed_by = $1 OR c.decided_by = $1
                ORDER BY c.created_at, c.id""",
            person,
        )
        return [_claim(r) for r in rows]

    async def forget_person(self, person: str, tombstone: str) -> int:
        """The claims `person` made or decided keep their amounts, invoices and decisions, with `tombstone` as
        claimant or decider; returns how many."""
        result = await self._conn.execute(
            """UPDATE expense_claims
               SET claimed_by = CASE WHEN claimed_by = $1 THEN $2 ELSE claimed_by END,
                   decided_by = CASE WHEN decided_by = $1 THEN $2 ELSE decided_by END
               WHERE claimed_by = $1 OR decided_by = $1""",
            person,
            tombstone,
        )
        return int(result.split()[-1])

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
            """INSERT INTO payouts (id, claim_id, initiative_id, round_id, reference, amount_cents, status, batch_id)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)""",
            payout.id,
            payout.claim_id,
            payout.initiative_id,
            payout.round_id,
            payout.reference,
            payout.amount_cents,
            payout.status.value,
            payout.batch_id,
        )

    async def get(self, payout_id: uuid.UUID, *, for_update: bool = False) -> Payout | None:
        row = await self._conn.fetchrow(
            f"SELECT {_PAYOUT} FROM payouts WHERE id = $1" + (" FOR UPDATE" if for_update else ""), payout_id
        )
        return _payout(row) if row else None

    async def search(
        self, *, status: PayoutStatus | None, every_area: bool, official_areas: list[str], limit: int, offset: int
    ) -> tuple[list[Payout], int]:
        """A page of payouts, newest first, and how many in all: of every round (`every_area`), or of the rounds in
        the areas the caller is an official for."""
        rows, total = await fetch_page(
            self._conn,
            ", ".join(f"p.{column}" for column in _PAYOUT_COLUMNS),
            f"""payouts p JOIN rounds r ON r.id = p.round_id
                WHERE ($1::text IS NULL OR p.status = $1) AND ($2 OR {in_areas("r.area_code", "$3", "$4")})""",
            "p.created_at DESC, p.id",
            [status.value if status else None, every_area, official_areas, inside_any(official_areas)],
            limit,
            offset,
        )
        return [_payout(r) for r in rows], total

    async def id_of(self, reference: str) -> uuid.UUID | None:
        """The id of the payout with this reference of ours (`BK-...`)."""
        return await self._conn.fetchval("SELECT id FROM payouts WHERE reference = $1", reference)

    async def save(self, payout: Payout) -> None:
        """Its settlement, cancellation, return or batch."""
        await self._conn.execute(
            """UPDATE payouts SET status = $2, bank_reference = $3, settled_at = $4, batch_id = $5, attempt = $6,
                   cancelled_by = $7, cancel_reason = $8,
                   cancelled_at = CASE WHEN $2 = 'cancelled' THEN coalesce(cancelled_at, now()) END
               WHERE id = $1""",
            payout.id,
            payout.status.value,
            payout.bank_reference,
            payout.settled_at,
            payout.batch_id,
            payout.attempt,
            payout.cancelled_by,
            payout.cancel_reason,
        )

    async def waiting_of(self, initiative_id: uuid.UUID) -> list[uuid.UUID]:
        """The initiative's payouts that wait for a batch (requested, in none), oldest first."""
        rows = await self._conn.fetch(
            """SELECT id FROM payouts WHERE initiative_id = $1 AND status = 'requested' AND batch_id IS NULL
               ORDER BY created_at, id""",
            initiative_id,
        )
        return [r["id"] for r in rows]

    async def cancelled_by(self, person: str) -> list[Payout]:
        rows = await self._conn.fetch(
            f"SELECT {_PAYOUT} FROM payouts WHERE cancelled_by = $1 ORDER BY created_at, id", person
        )
        return [_payout(r) for r in rows]

    async def forget_canceller(self, person: str, tombstone: str) -> int:
        result = await self._conn.execute(
            "UPDATE payouts SET cancelled_by = $2 WHERE cancelled_by = $1", person, tombstone
        )
        return int(result.split()[-1])
