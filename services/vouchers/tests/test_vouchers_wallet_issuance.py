"""Bulk wallet issuance and the ledger check that stands in for the foreign keys the hot tables no longer carry.
Issuance is one set-based statement: each named resident without a wallet gets one, in one balanced entry that
debits the pool exactly, the WalletsIssued events name exactly them (in the order given), and a wallet opened
concurrently is skipped, not doubled. Rounds and accounts cannot be deleted, and the ledger check reports rows that
point at a missing round, entry or account, or across rounds. Real PostgreSQL, a scratch database."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
from vouchers.adapters.ledger import DuplicateEntry, Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.domain.ledger import Account, InsufficientFunds, Kind
from vouchers.domain.rounds import Mechanism
from vouchers.service import wallets

from buurtkracht_contracts.event import source_urn
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import create_pool

pytestmark = pytest.mark.integration

WIJK = "WK036300"
OFFICIAL = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({WIJK}))
SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, SPEC.migrations)
    pool = await create_pool(scratch_database, min_size=2, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


async def books(pool, round_id: uuid.UUID) -> tuple[dict[Kind, int], list[asyncpg.Record], list[str]]:
    """The round's money per kind, its wallets_issued entries with their line count and sum, and the check."""
    async with pool.acquire() as conn:
        ledger = Ledger(conn)
        entries = await conn.fetch(
            """SELECT e.id, count(l.*) AS lines, sum(l.amount_cents) AS total FROM journal_entries e
               JOIN journal_lines l ON l.entry_id = e.id WHERE e.round_id = $1 AND e.kind = 'wallets_issued'
               GROUP BY e.id ORDER BY e.id""",
            round_id,
        )
        return await ledger.totals(round_id), entries, await ledger.check(round_id)


async def issued_in_events(pool, round_id: uuid.UUID) -> list[str]:
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT payload FROM outbox WHERE aggregate_id = $1 AND event_type LIKE '%.wallets-issued.%' ORDER BY id",
            str(round_id),
        )
    return [resident for row in rows for resident in row["payload"]["resident_ids"]]


async def test_a_bulk_issuance_skips_who_has_a_wallet_books_one_entry_and_tells_exactly_who_got_one(
    pool, once, open_round
):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK, total=1_000_000, voucher=2_000)).id
    first = await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-2", "r-4"], datetime.now(UTC)))
    named = [f"r-{i}" for i in range(9, 0, -1)] + ["r-3", "r-9"]  # repeated names count once
    second = await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, named, datetime.now(UTC)))

    assert (first.issued, first.already_had_a_wallet, first.issued_cents) == (2, 0, 4_000)
    assert (second.issued, second.already_had_a_wallet, second.issued_cents) == (7, 2, 14_000)
    totals, entries, problems = await books(pool, round_id)
    assert totals[Kind.WALLET] == 18_000 and totals[Kind.POOL] == 1_000_000 - 18_000
    assert [(e["lines"], e["total"]) for e in entries] == [(3, 0), (8, 0)], "one balanced entry per issuance"
    assert problems == []
    assert await issued_in_events(pool, round_id) == ["r-2", "r-4", "r-9", "r-8", "r-7", "r-6", "r-5", "r-3", "r-1"]


async def test_an_issuance_naming_only_residents_with_a_wallet_books_nothing(pool, once, open_round):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1"], datetime.now(UTC)))
    again = await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1"], datetime.now(UTC)))

    assert (again.issued, again.already_had_a_wallet, again.issued_cents) == (0, 1, 0)
    _, entries, problems = await books(pool, round_id)
    assert len(entries) == 1 and problems == []
    assert await issued_in_events(pool, round_id) == ["r-1"]


async def test_an_issuance_the_pool_cannot_fund_is_refused_and_nothing_moves(pool, once, open_round):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK, total=5_000, voucher=2_000)).id
    with pytest.raises(InsufficientFunds):
        await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1", "r-2", "r-3"], datetime.now(UTC)))

    totals, entries, problems = await books(pool, round_id)
    assert totals.get(Kind.WALLET, 0) == 0 and totals[Kind.POOL] == 5_000 and entries == [] and problems == []


async def test_an_issuance_reference_is_booked_once(pool, open_round):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    async with pool.acquire() as conn:
        async with conn.transaction():
            assert await Ledger(conn).issue_wallets(round_id, ["r-1"], 2_000, "issuance-1") == ["r-1"]
        with pytest.raises(DuplicateEntry):
            async with conn.transaction():
                await Ledger(conn).issue_wallets(round_id, ["r-2"], 2_000, "issuance-1")
    totals, entries, problems = await books(pool, round_id)
    assert totals[Kind.WALLET] == 2_000 and len(entries) == 1 and problems == []


async def test_a_wallet_opened_while_a_bulk_issuance_runs_is_skipped_by_it_not_issued_twice(pool, open_round):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK, total=1_000_000, voucher=2_000)).id
    residents = [f"r-{i}" for i in range(1, 101)]
    claimant = await pool.acquire()
    try:
        claim = claimant.transaction()
        await claim.start()
        await Ledger(claimant).open_accounts(round_id, [Account.wallet("r-50")])  # touches no other account

        async def bulk() -> list[str]:
            async with VouchersUnitOfWork(pool, SOURCE) as uow:
                issued = await uow.ledger.issue_wallets(round_id, residents, 2_000, "bulk")
                await uow.commit()
                return issued

        issuing = asyncio.create_task(bulk())
        async with pool.acquire() as watcher:  # the bulk insert waits on the claim's uncommitted wallet
            for _ in range(500):
                waiting = await watcher.fetchval(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%held AS%'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.01)
            assert waiting, "the bulk issuance met the concurrent wallet while inserting"
        await claim.commit()
        issued = await asyncio.wait_for(issuing, 30)
    finally:
        await pool.release(claimant)

    assert issued == [r for r in residents if r != "r-50"]
    totals, entries, problems = await books(pool, round_id)
    assert totals[Kind.WALLET] == 198_000 and totals[Kind.POOL] == 1_000_000 - 198_000
    assert [e["lines"] for e in entries] == [100] and problems == []


async def test_rounds_and_accounts_cannot_be_deleted_nor_the_ledger_truncated(pool, open_round):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    async with pool.acquire() as conn:
        for statement in (
            "DELETE FROM rounds WHERE id = $1",
            "UPDATE rounds SET id = gen_random_uuid() WHERE id = $1",
            "DELETE FROM accounts WHERE round_id = $1",
            "UPDATE accounts SET round_id = gen_random_uuid() WHERE round_id = $1",
        ):
            with pytest.raises(asyncpg.RaiseError, match="refused"):
                await conn.execute(statement, round_id)
        for table in ("rounds", "accounts", "journal_entries", "journal_lines"):
            with pytest.raises(asyncpg.RaiseError, match="refused"):
                await conn.execute(f"TRUNCATE {table} CASCADE")
        assert await conn.fetchval("SELECT count(*) FROM accounts WHERE round_id = $1", round_id) == 2


async def test_the_ledger_check_finds_rows_of_a_missing_round_and_lines_pointing_nowhere_or_across_rounds(
    pool, once, open_round
):
    round_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    other_id = (await open_round(Mechanism.PLEDGE, WIJK)).id
    await once(lambda uow: wallets.issue_wallets(uow, OFFICIAL, round_id, ["r-1"], datetime.now(UTC)))
    gone = uuid.uuid4()
    async with pool.acquire() as conn:
        ledger = Ledger(conn)
        assert await ledger.check() == []
        transaction = conn.transaction()
        await transaction.start()
        try:
            pool_of = {
                r["round_id"]: r["id"]
                for r in await conn.fetch(
                    "SELECT round_id, id FROM accounts WHERE kind = 'pool' AND round_id = ANY($1::uuid[])",
                    [round_id, other_id],
                )
            }
            orphan_account = await conn.fetchval(
                "INSERT INTO accounts (round_id, kind, owner) VALUES ($1, 'wallet', 'r-x') RETURNING id", gone
            )
            orphan_entry = await conn.fetchval(
                "INSERT INTO journal_entries (round_id, kind, reference) VALUES ($1, 'x', 'x') RETURNING id", gone
            )
            initiative = uuid.uuid4()
            await conn.execute(
                """INSERT INTO initiatives (id, area_code, title, initiators, approved_amount_cents, status)
                   VALUES ($1, 'BU03630001', 't', ARRAY['i-1'], 100, 'approved')""",
                initiative,
            )
            orphan_pledge = uuid.uuid4()
            await conn.execute(
                """INSERT INTO pledges (id, round_id, initiative_id, resident_id, amount_cents, requested_cents, status)
                   VALUES ($1, $2, $3, 'r-1', 1, 1, 'withdrawn')""",
                orphan_pledge,
                gone,
                initiative,
            )
            entry = await conn.fetchval(
                "INSERT INTO journal_entries (round_id, kind, reference) VALUES ($1, 'y', 'y') RETURNING id", round_id
            )
            missing = 10**12
            await conn.execute(
                """INSERT INTO journal_lines (entry_id, account_id, amount_cents)
                   VALUES ($1, $2, 7), ($1, $3, -7), ($4, $2, 5), ($4, $5, -5)""",
                entry,
                missing,
                pool_of[other_id],
                missing + 1,
                pool_of[round_id],
            )
            await conn.execute("SET CONSTRAINTS ALL IMMEDIATE")  # every entry above balances

            of_round, of_other, of_gone, everywhere = (
                await ledger.check(round_id),
                await ledger.check(other_id),
                await ledger.check(gone),
                await ledger.check(),
            )
        finally:
            await transaction.rollback()
        assert await ledger.check() == []

    homeless = {
        f"account {orphan_account} belongs to round {gone}, which does not exist",
        f"journal entry {orphan_entry} belongs to round {gone}, which does not exist",
        f"pledge {orphan_pledge} belongs to round {gone}, which does not exist",
    }
    to_nowhere = (
        f"journal line of 7 (entry {entry}, account {missing}) joins an entry of round {round_id} to a missing account"
    )
    across = (
        f"journal line of -7 (entry {entry}, account {pool_of[other_id]}) joins an entry of round {round_id} "
        f"to an account of round {other_id}"
    )
    from_nowhere = (
        f"journal line of -5 (entry {missing + 1}, account {pool_of[round_id]}) joins a missing entry "
        f"to an account of round {round_id}"
    )
    wholly_lost = (
        f"journal line of 5 (entry {missing + 1}, account {missing}) joins a missing entry to a missing account"
    )
    assert homeless <= set(of_gone) and homeless <= set(everywhere)
    assert {to_nowhere, across, from_nowhere} <= set(of_round)
    assert across in of_other
    assert {to_nowhere, across, from_nowhere, wholly_lost} <= set(everywhere)
