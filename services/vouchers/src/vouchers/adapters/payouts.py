"""Payees, payout batches and bank statements in PostgreSQL.

Locks: the one open batch is taken `FOR SHARE` by a command that puts a payout in it or takes one out (after the
payout's row, see `service.locking`), and `FOR UPDATE` by its close, which takes no other lock: so a close waits for
the payouts joining or leaving the batch to commit, reads the batch's payouts after them, and no command waits for
a close while holding what the close needs.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import asyncpg

from buurtkracht_kit.paging import fetch_page

from ..domain.banking import BankAccount, BatchStatus, Outcome, Payee, PayoutBatch, Statement, StatementLine, Transfer

_BATCH = """id, status, opened_at, closed_at, closed_by, message_reference, requested_execution_date, payout_count,
    total_cents"""


def _batch(row: asyncpg.Record) -> PayoutBatch:
    return PayoutBatch(
        id=row["id"],
        status=BatchStatus(row["status"]),
        opened_at=row["opened_at"],
        closed_at=row["closed_at"],
        closed_by=row["closed_by"],
        message_reference=row["message_reference"],
        requested_execution_date=row["requested_execution_date"],
        payout_count=row["payout_count"],
        total_cents=row["total_cents"],
    )


def _payee(row: asyncpg.Record) -> Payee:
    return Payee(
        row["initiative_id"],
        BankAccount(row["iban"], row["bic"], row["account_holder"]),
        row["given_by"],
        row["given_at"],
    )


class PayeeRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def get(self, initiative_id: uuid.UUID) -> Payee | None:
        row = await self._conn.fetchrow("SELECT * FROM payees WHERE initiative_id = $1", initiative_id)
        return _payee(row) if row else None

    async def put(self, payee: Payee) -> None:
        await self._conn.execute(
            """INSERT INTO payees (initiative_id, iban, bic, account_holder, given_by, given_at)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (initiative_id) DO UPDATE SET iban = $2, bic = $3, account_holder = $4, given_by = $5,
                   given_at = $6""",
            payee.initiative_id,
            payee.account.iban,
            payee.account.bic,
            payee.account.holder,
            payee.given_by,
            payee.given_at,
        )

    async def given_by(self, person: str) -> list[Payee]:
        rows = await self._conn.fetch("SELECT * FROM payees WHERE given_by = $1 ORDER BY given_at", person)
        return [_payee(r) for r in rows]

    async def forget_person(self, person: str) -> list[uuid.UUID]:
        """The bank accounts `person` gave are removed (an IBAN and its holder's name may be theirs); returns the
        initiatives they were of."""
        rows = await self._conn.fetch("DELETE FROM payees WHERE given_by = $1 RETURNING initiative_id", person)
        return sorted(r["initiative_id"] for r in rows)


class BatchRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def open_one(self, now: datetime) -> PayoutBatch:
        """The open batch, held `FOR SHARE` until the transaction ends (it stays open meanwhile); opened when
        there is none."""
        while True:
            row = await self._conn.fetchrow(f"SELECT {_BATCH} FROM payout_batches WHERE status = 'open' FOR SHARE")
            if row:
                return _batch(row)
            fresh = PayoutBatch.open(now)
            await self._conn.execute(
                "INSERT INTO payout_batches (id, status, opened_at) VALUES ($1, 'open', $2) ON CONFLICT DO NOTHING",
                fresh.id,
                fresh.opened_at,
            )

    async def status_of(self, batch_id: uuid.UUID, *, share: bool = False) -> BatchStatus | None:
        """The batch's status; with `share`, held `FOR SHARE` so it stays open while the transaction runs."""
        suffix = " FOR SHARE" if share else ""
        status = await self._conn.fetchval(f"SELECT status FROM payout_batches WHERE id = $1{suffix}", batch_id)
        return BatchStatus(status) if status else None

    async def get(self, batch_id: uuid.UUID, *, for_update: bool = False) -> PayoutBatch | None:
        suffix = " FOR UPDATE" if for_update else ""
        row = await self._conn.fetchrow(f"SELECT {_BATCH} FROM payout_batches WHERE id = $1{suffix}", batch_id)
        return _batch(row) if row else None

    async def current(self) -> PayoutBatch | None:
        """The open batch, if there is one (not locked)."""
        row = await self._conn.fetchrow(f"SELECT {_BATCH} FROM payout_batches WHERE status = 'open'")
        return _batch(row) if row else None

    async def transfers(self, batch_id: uuid.UUID) -> list[Transfer]:
        """The batch's payouts as credit transfers to their initiatives' bank accounts, in reference order."""
        rows = await self._conn.fetch(
            """SELECT p.id, p.reference, p.amount_cents, c.invoice_reference, c.supplier, i.title,
                      y.iban, y.bic, y.account_holder
               FROM payouts p JOIN expense_claims c ON c.id = p.claim_id JOIN initiatives i ON i.id = p.initiative_id
                    JOIN payees y ON y.initiative_id = p.initiative_id
               WHERE p.batch_id = $1 AND p.status = 'requested' ORDER BY p.reference""",
            batch_id,
        )
        return [
            Transfer(
                r["id"],
                r["reference"],
                r["amount_cents"],
                BankAccount(r["iban"], r["bic"], r["account_holder"]),
                f"{r['reference']} {r['invoice_reference']} {r['supplier']}",
            )
            for r in rows
        ]

    async def save_closed(self, batch: PayoutBatch, pain001: bytes) -> None:
        await self._conn.execute(
            """UPDATE payout_batches SET status = 'closed', closed_at = $2, closed_by = $3, message_reference = $4,
                   requested_execution_date = $5, payout_count = $6, total_cents = $7, pain001 = $8
               WHERE id = $1 AND status = 'open'""",
            batch.id,
            batch.closed_at,
            batch.closed_by,
            batch.message_reference,
            batch.requested_execution_date,
            batch.payout_count,
            batch.total_cents,
            pain001,
        )

    async def pain001(self, batch_id: uuid.UUID) -> bytes | None:
        return await self._conn.fetchval("SELECT pain001 FROM payout_batches WHERE id = $1", batch_id)

    async def search(self, status: BatchStatus | None, limit: int, offset: int) -> tuple[list[PayoutBatch], int]:
        """A page of batches, the open one first, then newest closed first."""
        rows, total = await fetch_page(
            self._conn,
            _BATCH,
            "payout_batches WHERE ($1::text IS NULL OR status = $1)",
            "status DESC, closed_at DESC NULLS FIRST, id",
            [status.value if status else None],
            limit,
            offset,
        )
        return [_batch(r) for r in rows], total

    async def leave_open(self, initiative_ids: list[uuid.UUID]) -> int:
        """The requested payouts of these initiatives leave the open batch (held `FOR SHARE` meanwhile); returns how
        many."""
        if not initiative_ids:
            return 0
        result = await self._conn.execute(
            """UPDATE payouts SET batch_id = NULL
               WHERE initiative_id = ANY($1::uuid[]) AND status = 'requested'
                 AND batch_id = (SELECT id FROM payout_batches WHERE status = 'open' FOR SHARE)""",
            initiative_ids,
        )
        return int(result.split()[-1])

    async def closed_by(self, person: str) -> list[PayoutBatch]:
        rows = await self._conn.fetch(
            f"SELECT {_BATCH} FROM payout_batches WHERE closed_by = $1 ORDER BY closed_at, id", person
        )
        return [_batch(r) for r in rows]

    async def forget_closer(self, person: str, tombstone: str) -> int:
        result = await self._conn.execute(
            "UPDATE payout_batches SET closed_by = $2 WHERE closed_by = $1", person, tombstone
        )
        return int(result.split()[-1])


class StatementRepository:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def begin(self, statement: Statement, uploaded_by: str) -> None:
        """Records the statement once (a second upload finds it)."""
        await self._conn.execute(
            """INSERT INTO bank_statements (statement_id, account_iban, uploaded_by) VALUES ($1, $2, $3)
               ON CONFLICT (statement_id) DO NOTHING""",
            statement.statement_id,
            statement.account_iban,
            uploaded_by,
        )

    async def record(
        self, statement_id: str, line: StatementLine, outcome: Outcome, detail: str, payout_id: uuid.UUID | None
    ) -> bool:
        """Records what the line meant; False when it was read before (and nothing is recorded)."""
        inserted = await self._conn.fetchval(
            """INSERT INTO bank_statement_lines (statement_id, line, end_to_end_id, amount_cents, debit, outcome,
                   detail, payout_id, booked_on) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (statement_id, line) DO NOTHING RETURNING true""",
            statement_id,
            line.line,
            line.end_to_end_id,
            line.amount_cents,
            line.debit,
            outcome.value,
            detail,
            payout_id,
            line.booked_on,
        )
        return bool(inserted)

    async def recorded(self, statement_id: str, line: str) -> asyncpg.Record | None:
        return await self._conn.fetchrow(
            "SELECT outcome, detail, payout_id FROM bank_statement_lines WHERE statement_id = $1 AND line = $2",
            statement_id,
            line,
        )

    async def lines_of(self, statement_id: str) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            """SELECT line, end_to_end_id, amount_cents, debit, outcome, detail, payout_id, booked_on
               FROM bank_statement_lines WHERE statement_id = $1 ORDER BY read_at, line""",
            statement_id,
        )

    async def uploaded_by(self, person: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT statement_id FROM bank_statements WHERE uploaded_by = $1 ORDER BY uploaded_at", person
        )
        return [r["statement_id"] for r in rows]

    async def forget_uploader(self, person: str, tombstone: str) -> int:
        result = await self._conn.execute(
            "UPDATE bank_statements SET uploaded_by = $2 WHERE uploaded_by = $1", person, tombstone
        )
        return int(result.split()[-1])
