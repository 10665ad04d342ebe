"""Reminders in PostgreSQL (the only SQL about them): the deadlines learnt from the events (rounds' close, initiatives'
status and support period, undecided expense claims), the residents' wallets, ballots and areas, and the reminders
sent.

Invariants kept here:
- every read model is written by the consumer in the transaction of the event's inbox row, so a redelivered event
  changes nothing; an event may be late but never applied twice;
- a reminder is recorded at most once per (kind, subject, resident, moment) (`reminders_sent`'s key), in the same
  transaction as its messages: a reminder pass that runs again, in another replica or after a restart, sends nothing
  twice;
- one reminder pass at a time: a transaction-scoped advisory lock (`take_turn`) that the others skip instead of
  waiting for.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg

from buurtkracht_contracts.areas import inside_patterns
from buurtkracht_kit.housekeeping import Sweep

from ..domain.reminders import ClaimKnown, InitiativeKnown, Kind, RoundKnown

REMINDER_LOCK_KEY = 0x72656D696E64  # "remind": one reminder pass per database at a time
DEADLINES = (Kind.ROUND_CLOSING, Kind.SUPPORT_ENDING, Kind.BALLOT_OPEN)  # reminders of a moment that passes


def sweeps(decided_days: float) -> list[Sweep]:
    """Housekeeping: a decided claim goes after `decided_days` (the consumer's inbox retention: no event of it can
    come any more); the record of a reminder of a deadline a week after the deadline (no pass sends one after it).
    The record of a reminder of a wait stays: the wait may go on."""
    return [
        Sweep("claims_known", "decided_at", timedelta(days=decided_days)),
        Sweep(
            "reminders_sent",
            "moment",
            timedelta(days=7),
            where="kind IN (" + ", ".join(f"'{kind.value}'" for kind in DEADLINES) + ")",
        ),
    ]


class Reminders:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    # -- what the events tell ----------------------------------------------------------------
    async def round_opened(self, round_id: uuid.UUID, mechanism: str, opens_at: datetime, closes_at: datetime) -> None:
        """The round's mechanism and period (its name and area: `People.learn_round`, in the same transaction)."""
        await self._conn.execute(
            "UPDATE rounds_known SET mechanism = $2, opens_at = $3, closes_at = $4 WHERE round_id = $1",
            round_id,
            mechanism,
            opens_at,
            closes_at,
        )

    async def round_closed(self, round_id: uuid.UUID) -> None:
        """A closed round reminds nobody again; its wallets expired and its ballots were counted."""
        await self._conn.execute("UPDATE rounds_known SET closed = true WHERE round_id = $1", round_id)
        await self._conn.execute("DELETE FROM wallets_known WHERE round_id = $1", round_id)
        await self._conn.execute("DELETE FROM ballots_cast WHERE round_id = $1", round_id)

    async def wallets_issued(self, round_id: uuid.UUID, resident_ids: list[str], amount_cents: int) -> None:
        """New wallets hold the voucher amount; a wallet already known (a pledge told first) keeps its balance."""
        await self._conn.execute(
            """INSERT INTO wallets_known (round_id, resident_id, balance_cents)
               SELECT $1, r, $3 FROM unnest($2::text[]) r ON CONFLICT DO NOTHING""",
            round_id,
            resident_ids,
            amount_cents,
        )

    async def wallet_balance(self, round_id: uuid.UUID, resident_id: str, balance_cents: int) -> None:
        """The wallet holds what the pledge's event says it holds after the pledge."""
        await self._conn.execute(
            """INSERT INTO wallets_known (round_id, resident_id, balance_cents) VALUES ($1, $2, $3)
               ON CONFLICT (round_id, resident_id) DO UPDATE SET balance_cents = EXCLUDED.balance_cents""",
            round_id,
            resident_id,
            balance_cents,
        )

    async def lives_in(self, area_code: str, resident_ids: list[str]) -> None:
        """The residents live in the area (a wallet of its round, support for its initiative, their home buurt)."""
        await self._conn.execute(
            """INSERT INTO area_residents (area_code, resident_id)
               SELECT $1, r FROM unnest($2::text[]) r ON CONFLICT DO NOTHING""",
            area_code,
            resident_ids,
        )

    async def ballot_cast(self, round_id: uuid.UUID, resident_id: str) -> None:
        await self._conn.execute(
            "INSERT INTO ballots_cast (round_id, resident_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            round_id,
            resident_id,
        )

    async def initiative_status(self, initiative_id: uuid.UUID, status: str, since: datetime) -> None:
        """The initiative's status and since when (a repeat of the same status keeps the earlier moment)."""
        await self._conn.execute(
            """UPDATE initiatives_known SET status_since = CASE WHEN status IS DISTINCT FROM $2 THEN $3
                                                                ELSE status_since END,
                                            status = $2
               WHERE initiative_id = $1""",
            initiative_id,
            status,
            since,
        )

    async def support_period(self, initiative_id: uuid.UUID, threshold: int, deadline: datetime | None) -> None:
        await self._conn.execute(
            "UPDATE initiatives_known SET support_threshold = $2, support_deadline = $3 WHERE initiative_id = $1",
            initiative_id,
            threshold,
            deadline,
        )

    async def support_count(self, initiative_id: uuid.UUID, count: int) -> None:
        await self._conn.execute(
            "UPDATE initiatives_known SET support_count = $2 WHERE initiative_id = $1", initiative_id, count
        )

    async def claim_made(
        self,
        claim_id: uuid.UUID,
        round_id: uuid.UUID,
        initiative_id: uuid.UUID,
        area_code: str,
        supplier: str,
        amount_cents: int,
        claimed_at: datetime,
    ) -> None:
        await self._conn.execute(
            """INSERT INTO claims_known
                   (claim_id, round_id, initiative_id, area_code, supplier, amount_cents, claimed_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (claim_id) DO UPDATE SET supplier = EXCLUDED.supplier, amount_cents = EXCLUDED.amount_cents,
                   claimed_at = EXCLUDED.claimed_at""",
            claim_id,
            round_id,
            initiative_id,
            area_code,
            supplier,
            amount_cents,
            claimed_at,
        )

    async def claim_decided(
        self, claim_id: uuid.UUID, round_id: uuid.UUID, initiative_id: uuid.UUID, area_code: str, decided_at: datetime
    ) -> None:
        """A decided claim waits no more (also when its decision is heard before the claim itself)."""
        await self._conn.execute(
            """INSERT INTO claims_known (claim_id, round_id, initiative_id, area_code, decided_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (claim_id) DO UPDATE SET decided_at = EXCLUDED.decided_at""",
            claim_id,
            round_id,
            initiative_id,
            area_code,
            decided_at,
        )

    # -- the reminder pass -------------------------------------------------------------------
    async def take_turn(self) -> bool:
        """Whether this transaction may run the reminder pass: no other holds the lock (held until it ends)."""
        return bool(await self._conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", REMINDER_LOCK_KEY))

    async def open_rounds(self) -> list[RoundKnown]:
        """Rounds known with their period that have not closed."""
        rows = await self._conn.fetch(
            """SELECT round_id, name, area_code, mechanism, opens_at, closes_at, closed FROM rounds_known
               WHERE NOT closed AND closes_at IS NOT NULL AND mechanism IS NOT NULL ORDER BY closes_at, round_id"""
        )
        return [RoundKnown(**dict(row)) for row in rows]

    async def initiatives_in(self, statuses: list[str]) -> list[InitiativeKnown]:
        rows = await self._conn.fetch(
            """SELECT initiative_id, title, area_code, status, status_since, support_threshold, support_deadline,
                      support_count
               FROM initiatives_known WHERE status = ANY($1::text[]) AND status_since IS NOT NULL
               ORDER BY status_since, initiative_id""",
            statuses,
        )
        return [InitiativeKnown(**dict(row)) for row in rows]

    async def undecided_claims(self) -> list[ClaimKnown]:
        rows = await self._conn.fetch(
            """SELECT claim_id, initiative_id, area_code, supplier, amount_cents, claimed_at FROM claims_known
               WHERE decided_at IS NULL AND claimed_at IS NOT NULL ORDER BY claimed_at, claim_id"""
        )
        return [ClaimKnown(**dict(row)) for row in rows]

    async def holders_with_vouchers(
        self, round_id: uuid.UUID, kind: str, moment: datetime, limit: int
    ) -> list[tuple[str, int]]:
        """Up to `limit` residents of the round's wallets who still hold vouchers and were not reminded of `kind`
        for `moment`, with their balance."""
        rows = await self._conn.fetch(
            """SELECT w.resident_id, w.balance_cents FROM wallets_known w
               WHERE w.round_id = $1 AND w.balance_cents > 0
                 AND NOT EXISTS (SELECT 1 FROM reminders_sent s WHERE s.kind = $2 AND s.subject = $1::text
                                 AND s.resident_id = w.resident_id AND s.moment = $3)
               ORDER BY w.resident_id LIMIT $4""",
            round_id,
            kind,
            moment,
            limit,
        )
        return [(row["resident_id"], row["balance_cents"]) for row in rows]

    async def residents_without_ballot(
        self, round_id: uuid.UUID, area_code: str, kind: str, moment: datetime, limit: int
    ) -> list[str]:
        """Up to `limit` residents this service knows in the area (`area_code` or an area inside it) who have not cast
        a ballot in the round and were not reminded of `kind` for `moment`. Known in the area: living there as far as
        this service learnt (`area_residents`), or following it."""
        inside = inside_patterns(area_code)
        rows = await self._conn.fetch(
            """WITH known AS (
                   SELECT resident_id FROM area_residents WHERE area_code = $2 OR area_code LIKE ANY($3::text[])
                   UNION
                   SELECT resident_id FROM area_follows WHERE area_code = $2 OR area_code LIKE ANY($3::text[])
               )
               SELECT resident_id FROM known k
               WHERE NOT EXISTS (SELECT 1 FROM ballots_cast b WHERE b.round_id = $1 AND b.resident_id = k.resident_id)
                 AND NOT EXISTS (SELECT 1 FROM reminders_sent s WHERE s.kind = $4 AND s.subject = $1::text
                                 AND s.resident_id = k.resident_id AND s.moment = $5)
               ORDER BY resident_id LIMIT $6""",
            round_id,
            area_code,
            inside,
            kind,
            moment,
            limit,
        )
        return [row["resident_id"] for row in rows]

    async def record_sent(self, kind: str, subject: str, moment: datetime, resident_ids: list[str]) -> list[str]:
        """Record the reminder for those of `resident_ids` who did not have it yet; returns them (in this transaction,
        with their messages: a concurrent pass waits on the key and then finds them taken)."""
        rows = await self._conn.fetch(
            """INSERT INTO reminders_sent (kind, subject, resident_id, moment)
               SELECT $1, $2, r, $3 FROM unnest($4::text[]) r ON CONFLICT DO NOTHING RETURNING resident_id""",
            kind,
            subject,
            moment,
            resident_ids,
        )
        return [row["resident_id"] for row in rows]

    # -- what a person may read of themself, and forgetting them --------------------------------
    async def wallets_of(self, resident_id: str) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            "SELECT round_id, balance_cents FROM wallets_known WHERE resident_id = $1 ORDER BY round_id", resident_id
        )

    async def areas_of(self, resident_id: str) -> list[str]:
        rows = await self._conn.fetch(
            "SELECT area_code FROM area_residents WHERE resident_id = $1 ORDER BY area_code", resident_id
        )
        return [row["area_code"] for row in rows]

    async def ballots_of(self, resident_id: str) -> list[uuid.UUID]:
        rows = await self._conn.fetch(
            "SELECT round_id FROM ballots_cast WHERE resident_id = $1 ORDER BY round_id", resident_id
        )
        return [row["round_id"] for row in rows]

    async def forget(self, resident_id: str) -> None:
        """Remove the resident's areas, wallets, ballots and the record of their reminders (their messages go with
        them)."""
        for table in ("area_residents", "wallets_known", "ballots_cast", "reminders_sent"):
            await self._conn.execute(f"DELETE FROM {table} WHERE resident_id = $1", resident_id)
