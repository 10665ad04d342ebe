"""The ledger in PostgreSQL.

Concurrency, chosen deliberately: transactions run at READ COMMITTED, and a balance changes only by
`UPDATE accounts SET balance_cents = balance_cents + delta`, one account at a time in id order. The
update takes the row lock and works on the latest committed balance, so concurrent movements queue
on an account instead of losing each other's updates, and the `no_overdraft` CHECK refuses any update
that would take a balance below zero — the transaction then rolls back and nothing moves. Serializable
isolation would add retries for no extra safety here. Commands that decide an amount from a balance
(the pledge cap, what is left of a budget) first lock the row that serialises them (the initiative), and
a wallet they take from (`for_update`), see the service layer.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from ..domain.initiatives import ENDED
from ..domain.ledger import Account, Entry, InsufficientFunds, Kind
from ..domain.pledges import Wallet


@dataclass(frozen=True)
class Balance:
    kind: Kind
    owner: str
    balance_cents: int


BULK_TIMEOUT = 600.0  # seconds a statement of a bulk issuance may take (a million wallets take seconds)


def _issue_wallets(resolve_conflicts: bool) -> str:
    """A bulk issuance in one statement: the wallets, the pool's debit, the entry and its lines, set-based. `held`
    are the named residents who already had a wallet when the statement began, left out. Without
    `resolve_conflicts` the unique key refuses a wallet opened concurrently after that; with it each such conflict
    is skipped too, and the skipped are found against what was inserted."""
    conflict, returning, skipped = (
        (
            "ON CONFLICT (round_id, kind, owner) DO NOTHING",
            "id, owner",
            "SELECT resident FROM incoming WHERE NOT EXISTS (SELECT FROM issued WHERE owner = incoming.resident)",
        )
        if resolve_conflicts
        else ("", "id", "SELECT owner FROM held")
    )
    return f"""
    WITH incoming AS MATERIALIZED (SELECT resident FROM unnest($2::text[]) AS t(resident)),
    held AS MATERIALIZED (
        SELECT a.owner FROM accounts a JOIN incoming ON a.owner = incoming.resident
        WHERE a.round_id = $1 AND a.kind = 'wallet'),
    issued AS (
        INSERT INTO accounts (round_id, kind, owner, balance_cents)
        SELECT $1, 'wallet', resident, $3 FROM incoming
        WHERE NOT EXISTS (SELECT FROM held WHERE held.owner = incoming.resident)
        {conflict} RETURNING {returning}),
    total AS (SELECT count(*) AS wallets, count(*) * $3::bigint AS cents FROM issued),
    entry AS (
        INSERT INTO journal_entries (round_id, kind, reference)
        SELECT $1, 'wallets_issued', $4 FROM total WHERE wallets > 0 RETURNING id),
    debit AS (
        UPDATE accounts SET balance_cents = balance_cents - total.cents FROM total
        WHERE accounts.id = $5 AND total.wallets > 0 RETURNING accounts.id),
    lines AS (
        INSERT INTO journal_lines (entry_id, account_id, amount_cents)
        SELECT entry.id, $5, -total.cents FROM entry, total
        UNION ALL
        SELECT entry.id, issued.id, $3 FROM entry, issued)
    SELECT (SELECT wallets FROM total) AS wallets, (SELECT count(*) FROM debit) AS debited,
           array({skipped}) AS skipped"""


ISSUE_WALLETS = _issue_wallets(resolve_conflicts=False)
ISSUE_WALLETS_RESOLVING_CONFLICTS = _issue_wallets(resolve_conflicts=True)


class DuplicateEntry(Exception):
    """The command this entry records was booked before."""


class Ledger:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    async def open_accounts(self, round_id: uuid.UUID, accounts: list[Account]) -> dict[Account, int]:
        """The ids of the round's accounts, opening those that do not exist yet."""
        kinds = [a.kind.value for a in accounts]
        owners = [a.owner for a in accounts]
        await self._conn.execute(
            """INSERT INTO accounts (round_id, kind, owner)
               SELECT $1, k, o FROM unnest($2::text[], $3::text[]) AS t(k, o)
               ON CONFLICT (round_id, kind, owner) DO NOTHING""",
            round_id,
            kinds,
            owners,
        )
        rows = await self._conn.fetch(
            """SELECT a.id, a.kind, a.owner FROM accounts a JOIN unnest($2::text[], $3::text[]) AS t(k, o)
               ON a.kind = t.k AND a.owner = t.o WHERE a.round_id = $1""",
            round_id,
            kinds,
            owners,
        )
        return {Account(Kind(r["kind"]), r["owner"]): r["id"] for r in rows}

    async def post(self, round_id: uuid.UUID, entry: Entry) -> int:
        """Book a balanced entry; raises InsufficientFunds when it would overdraw an account."""
        ids = await self.open_accounts(round_id, [account for account, _ in entry.lines])
        deltas: dict[int, int] = {}
        for account, amount in entry.lines:
            deltas[ids[account]] = deltas.get(ids[account], 0) + amount
        for account_id in sorted(deltas):  # one lock order for every command: no deadlocks between them
            try:
                await self._conn.execute(
                    "UPDATE accounts SET balance_cents = balance_cents + $2 WHERE id = $1",
                    account_id,
                    deltas[account_id],
                )
            except asyncpg.CheckViolationError:
                raise InsufficientFunds("not enough money in the account for this") from None
        try:
            entry_id = await self._conn.fetchval(
                "INSERT INTO journal_entries (round_id, kind, reference) VALUES ($1, $2, $3) RETURNING id",
                round_id,
                entry.kind,
                entry.reference,
            )
        except asyncpg.UniqueViolationError:
            raise DuplicateEntry(f"{entry.kind}/{entry.reference}") from None
        await self._conn.execute(
            """INSERT INTO journal_lines (entry_id, account_id, amount_cents)
               SELECT $1, a, c FROM unnest($2::bigint[], $3::bigint[]) AS t(a, c)""",
            entry_id,
            [ids[a] for a, _ in entry.lines],
            [c for _, c in entry.lines],
        )
        return entry_id

    async def post_all(self, round_id: uuid.UUID, entries: list[Entry]) -> None:
        for entry in entries:
            await self.post(round_id, entry)

    async def post_together(self, entries: list[tuple[uuid.UUID, Entry]]) -> None:
        """Book many balanced entries of (round, entry) in five statements, whatever their number: accounts opened,
        balances moved (the accounts locked in id order; the caller locked those it took money from before it
        decided), entries and lines written. Raises like `post`, and then nothing of it stands."""
        needed = sorted({(round_id, account) for round_id, entry in entries for account, _ in entry.lines}, key=str)
        await self._conn.execute(
            """INSERT INTO accounts (round_id, kind, owner)
               SELECT r, k, o FROM unnest($1::uuid[], $2::text[], $3::text[]) AS t(r, k, o)
               ON CONFLICT (round_id, kind, owner) DO NOTHING""",
            [round_id for round_id, _ in needed],
            [account.kind.value for _, account in needed],
            [account.owner for _, account in needed],
        )
        rows = await self._conn.fetch(
            """SELECT a.id, a.round_id, a.kind, a.owner FROM accounts a
               JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS t(r, k, o)
                 ON a.round_id = t.r AND a.kind = t.k AND a.owner = t.o""",
            [round_id for round_id, _ in needed],
            [account.kind.value for _, account in needed],
            [account.owner for _, account in needed],
        )
        ids = {(r["round_id"], Account(Kind(r["kind"]), r["owner"])): r["id"] for r in rows}
        deltas: dict[int, int] = {}
        lines: list[tuple[int, int, int]] = []  # (entry's position, account id, cents)
        for position, (round_id, entry) in enumerate(entries):
            for account, amount in entry.lines:
                account_id = ids[(round_id, account)]
                deltas[account_id] = deltas.get(account_id, 0) + amount
                lines.append((position, account_id, amount))
        moved = sorted(deltas)
        try:
            await self._conn.execute(
                """UPDATE accounts a SET balance_cents = a.balance_cents + t.d
                   FROM unnest($1::bigint[], $2::bigint[]) AS t(id, d) WHERE a.id = t.id""",
                moved,
                [deltas[account_id] for account_id in moved],
            )
        except asyncpg.CheckViolationError:
            raise InsufficientFunds("not enough money in the account for this") from None
        try:
            entry_ids = await self._conn.fetch(
                """INSERT INTO journal_entries (round_id, kind, reference)
                   SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) RETURNING id, kind, reference""",
                [round_id for round_id, _ in entries],
                [entry.kind for _, entry in entries],
                [entry.reference for _, entry in entries],
            )
        except asyncpg.UniqueViolationError as duplicate:
            raise DuplicateEntry(str(duplicate)) from None
        by_reference = {(r["kind"], r["reference"]): r["id"] for r in entry_ids}  # (kind, reference) is unique
        by_position = [by_reference[(entry.kind, entry.reference)] for _, entry in entries]
        await self._conn.execute(
            """INSERT INTO journal_lines (entry_id, account_id, amount_cents)
               SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])""",
            [by_position[position] for position, _, _ in lines],
            [account_id for _, account_id, _ in lines],
            [cents for _, _, cents in lines],
        )

    async def balance(self, round_id: uuid.UUID, account: Account, *, for_update: bool = False) -> int | None:
        """The account's balance, or None when it was never opened."""
        return await self._conn.fetchval(
            "SELECT balance_cents FROM accounts WHERE round_id = $1 AND kind = $2 AND owner = $3"
            + (" FOR UPDATE" if for_update else ""),
            round_id,
            account.kind.value,
            account.owner,
        )

    async def wallet(self, round_id: uuid.UUID, resident_id: str, *, for_update: bool = False) -> Wallet | None:
        """The resident's wallet in the round, or None when they have none; `for_update` locks it."""
        balance = await self.balance(round_id, Account.wallet(resident_id), for_update=for_update)
        return None if balance is None else Wallet(round_id, resident_id, balance)

    async def locked_balances(self, accounts: list[tuple[uuid.UUID, Account]]) -> dict[tuple[uuid.UUID, Account], int]:
        """The balances of these accounts of (round, account), locked in account order in one statement; an
        account never opened is not in the answer."""
        rows = await self._conn.fetch(
            """SELECT a.round_id, a.kind, a.owner, a.balance_cents FROM accounts a
               JOIN unnest($1::uuid[], $2::text[], $3::text[]) AS t(r, k, o)
                 ON a.round_id = t.r AND a.kind = t.k AND a.owner = t.o
               ORDER BY a.id FOR UPDATE OF a""",
            [round_id for round_id, _ in accounts],
            [account.kind.value for _, account in accounts],
            [account.owner for _, account in accounts],
        )
        return {(r["round_id"], Account(Kind(r["kind"]), r["owner"])): r["balance_cents"] for r in rows}

    async def wallet_balances(self, round_id: uuid.UUID, resident_ids: list[str]) -> dict[str, int]:
        """The balances of these residents' wallets in the round, locked (in account order)."""
        rows = await self._conn.fetch(
            """SELECT owner, balance_cents FROM accounts WHERE round_id = $1 AND kind = 'wallet'
               AND owner = ANY($2::text[]) ORDER BY id FOR UPDATE""",
            round_id,
            resident_ids,
        )
        return {r["owner"]: r["balance_cents"] for r in rows}

    async def wallets_of(self, resident_id: str) -> list[Wallet]:
        """The resident's wallets, one per round they have one in (found round by round, by the unique key)."""
        rows = await self._conn.fetch(
            """SELECT a.round_id, a.balance_cents FROM rounds r
               JOIN accounts a ON a.round_id = r.id AND a.kind = 'wallet' AND a.owner = $1
               ORDER BY r.created_at, r.id""",
            resident_id,
        )
        return [Wallet(r["round_id"], resident_id, r["balance_cents"]) for r in rows]

    async def forget_wallets(self, resident_id: str, tombstone: str) -> list[uuid.UUID]:
        """The resident's wallets keep their balances and journal lines, with `tombstone` as owner; returns the rounds
        of the wallets, in id order (the rows were locked in that order). No amount changes."""
        rows = await self._conn.fetch(
            """WITH theirs AS (
                   SELECT a.id, a.round_id FROM rounds r
                   JOIN accounts a ON a.round_id = r.id AND a.kind = 'wallet' AND a.owner = $1
                   ORDER BY a.id FOR UPDATE OF a)
               UPDATE accounts a SET owner = $2 FROM theirs WHERE a.id = theirs.id RETURNING a.round_id""",
            resident_id,
            tombstone,
        )
        return sorted(r["round_id"] for r in rows)

    async def balances(self, round_id: uuid.UUID, owner: str | None = None) -> list[Balance]:
        rows = await self._conn.fetch(
            """SELECT kind, owner, balance_cents FROM accounts WHERE round_id = $1 AND ($2::text IS NULL OR owner = $2)
               ORDER BY kind, owner""",
            round_id,
            owner,
        )
        return [Balance(Kind(r["kind"]), r["owner"], r["balance_cents"]) for r in rows]

    async def of_initiative(self, round_id: uuid.UUID, initiative_id: uuid.UUID) -> dict[Kind, int]:
        """The balances of an initiative's accounts in the round, by kind."""
        return {b.kind: b.balance_cents for b in await self.balances(round_id, str(initiative_id))}

    async def totals(self, round_id: uuid.UUID) -> dict[Kind, int]:
        """The round's money per kind of account (all wallets together, all budgets together, ...)."""
        rows = await self._conn.fetch(
            "SELECT kind, sum(balance_cents) AS total FROM accounts WHERE round_id = $1 GROUP BY kind", round_id
        )
        return {Kind(r["kind"]): int(r["total"]) for r in rows}

    async def issue_wallets(
        self, round_id: uuid.UUID, resident_ids: list[str], amount_cents: int, reference: str
    ) -> list[str]:
        """Open a wallet holding `amount_cents` for each resident who has none yet, funded from the pool, in one
        entry; returns the residents who got one, in the order given (`resident_ids` names each once). One
        statement opens the wallets, books their lines and debits the pool, so a million residents take seconds;
        only the residents who already had a wallet come back from the database. Nothing is booked when nobody
        gets a wallet. The residents who hold one are left out before inserting; should a concurrent command open
        one of the others' wallets meanwhile, the unique key refuses the insert (the savepoint undoes it) and the
        statement runs again resolving each conflict on its own: the same outcome, slower. A reference booked
        before raises DuplicateEntry."""
        if not resident_ids:
            return []
        pool_id = (await self.open_accounts(round_id, [Account.pool()]))[Account.pool()]
        arguments = (round_id, resident_ids, amount_cents, reference, pool_id)
        try:
            try:
                async with self._conn.transaction():
                    row = await self._conn.fetchrow(ISSUE_WALLETS, *arguments, timeout=BULK_TIMEOUT)
            except asyncpg.UniqueViolationError as error:
                if error.constraint_name != "accounts_round_id_kind_owner_key":
                    raise
                row = await self._conn.fetchrow(ISSUE_WALLETS_RESOLVING_CONFLICTS, *arguments, timeout=BULK_TIMEOUT)
        except asyncpg.UniqueViolationError as error:
            if error.constraint_name == "journal_entries_kind_reference_key":
                raise DuplicateEntry(f"wallets_issued/{reference}") from None
            raise
        except asyncpg.CheckViolationError:
            raise InsufficientFunds(f"the pool cannot fund the wallets of {amount_cents} cents") from None
        if not row["wallets"]:
            return []
        skipped = set(row["skipped"])
        issued = [resident for resident in resident_ids if resident not in skipped] if skipped else list(resident_ids)
        if row["debited"] != 1 or len(issued) != row["wallets"]:
            raise RuntimeError(
                f"wallet issuance {reference}: {row['wallets']} wallets opened for {len(issued)} residents, "
                f"the pool debited {row['debited']} times"
            )
        return issued

    async def sweep(self, round_id: uuid.UUID, kind: Kind, target: Account, entry_kind: str, reference: str) -> int:
        """Move every positive balance of accounts of `kind` into `target`, in one entry; returns the total moved."""
        rows = await self._conn.fetch(
            """UPDATE accounts SET balance_cents = 0 FROM (
                   SELECT id, balance_cents AS moved FROM accounts
                   WHERE round_id = $1 AND kind = $2 AND balance_cents > 0 ORDER BY id FOR UPDATE) AS old
               WHERE accounts.id = old.id RETURNING accounts.id, old.moved""",
            round_id,
            kind.value,
        )
        total = sum(r["moved"] for r in rows)
        if not total:
            return 0
        target_id = (await self.open_accounts(round_id, [target]))[target]
        await self._conn.execute(
            "UPDATE accounts SET balance_cents = balance_cents + $2 WHERE id = $1", target_id, total
        )
        entry_id = await self._conn.fetchval(
            "INSERT INTO journal_entries (round_id, kind, reference) VALUES ($1, $2, $3) RETURNING id",
            round_id,
            entry_kind,
            reference,
        )
        await self._conn.copy_records_to_table(
            "journal_lines",
            records=[(entry_id, r["id"], -r["moved"]) for r in rows] + [(entry_id, target_id, total)],
            columns=["entry_id", "account_id", "amount_cents"],
        )
        return total

    async def journal(self, round_id: uuid.UUID, limit: int, after_id: int) -> list[asyncpg.Record]:
        return await self._conn.fetch(
            """SELECT e.id, e.kind, e.reference, e.created_at,
                      json_agg(json_build_object(
                          'account', a.kind || CASE WHEN a.owner = '' THEN '' ELSE ':' || a.owner END,
                          'amount_cents', l.amount_cents) ORDER BY l.amount_cents) AS lines
               FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id JOIN accounts a ON a.id = l.account_id
               WHERE e.round_id = $1 AND e.id > $2 GROUP BY e.id ORDER BY e.id LIMIT $3""",
            round_id,
            after_id,
            limit,
        )

    async def extent(self) -> tuple[int, int]:
        """How many rounds and journal entries the ledger holds."""
        row = await self._conn.fetchrow(
            "SELECT (SELECT count(*) FROM rounds) AS rounds, (SELECT count(*) FROM journal_entries) AS entries"
        )
        return row["rounds"], row["entries"]

    async def check(self, round_id: uuid.UUID | None = None) -> list[str]:
        """Every violated ledger invariant, for one round or all; empty when the books are right. Besides the
        money, it finds what foreign keys would have refused: accounts, entries and pledges of a round that does
        not exist, and journal lines whose entry or account is missing or belongs to another round."""
        problems = await self._orphans(round_id)
        for row in await self._conn.fetch(
            """SELECT e.id, e.kind, e.reference, sum(l.amount_cents) AS total FROM journal_entries e
               LEFT JOIN journal_lines l ON l.entry_id = e.id WHERE ($1::uuid IS NULL OR e.round_id = $1)
               GROUP BY e.id HAVING coalesce(sum(l.amount_cents), 0) <> 0 OR count(l.*) = 0""",
            round_id,
        ):
            problems.append(f"entry {row['id']} ({row['kind']} {row['reference']}) does not balance: {row['total']}")
        for row in await self._conn.fetch(
            """SELECT a.id, a.round_id, a.kind, a.owner, a.balance_cents, coalesce(sum(l.amount_cents), 0) AS booked
               FROM accounts a LEFT JOIN journal_lines l ON l.account_id = a.id
               WHERE ($1::uuid IS NULL OR a.round_id = $1)
               GROUP BY a.id HAVING a.balance_cents <> coalesce(sum(l.amount_cents), 0)""",
            round_id,
        ):
            problems.append(
                f"account {row['kind']}:{row['owner']} of round {row['round_id']} holds "
                f"{row['balance_cents']} but its journal lines add up to {row['booked']}"
            )
        for row in await self._conn.fetch(
            """SELECT id, kind, owner, balance_cents FROM accounts
               WHERE ($1::uuid IS NULL OR round_id = $1) AND kind <> 'municipality' AND balance_cents < 0""",
            round_id,
        ):
            problems.append(f"account {row['kind']}:{row['owner']} is below zero: {row['balance_cents']}")
        for row in await self._conn.fetch(
            """SELECT r.id, r.total_budget_cents, coalesce(sum(a.balance_cents), 0) AS total,
                      coalesce(sum(a.balance_cents) FILTER (WHERE a.kind = 'municipality'), 0) AS municipality
               FROM rounds r LEFT JOIN accounts a ON a.round_id = r.id WHERE ($1::uuid IS NULL OR r.id = $1)
               GROUP BY r.id HAVING coalesce(sum(a.balance_cents), 0) <> 0
                   OR coalesce(sum(a.balance_cents) FILTER (WHERE a.kind = 'municipality'), 0)
                      <> -r.total_budget_cents""",
            round_id,
        ):
            problems.append(
                f"round {row['id']} does not balance: accounts add up to {row['total']}, "
                f"the municipality put in {-row['municipality']} of a budget of {row['total_budget_cents']}"
            )
        for row in await self._conn.fetch(
            """SELECT a.round_id, a.owner, a.balance_cents, coalesce(p.active, 0) AS active FROM accounts a
               LEFT JOIN (SELECT round_id, initiative_id::text AS owner, sum(amount_cents) AS active FROM pledges
                          WHERE status = 'active' GROUP BY 1, 2) p ON p.round_id = a.round_id AND p.owner = a.owner
               WHERE a.kind = 'pledged' AND ($1::uuid IS NULL OR a.round_id = $1)
                 AND a.balance_cents <> coalesce(p.active, 0)""",
            round_id,
        ):
            problems.append(
                f"pledged account of initiative {row['owner']} holds {row['balance_cents']} but its "
                f"active pledges add up to {row['active']}"
            )
        for row in await self._conn.fetch(
            """SELECT a.round_id, a.owner, a.balance_cents, i.status FROM accounts a
               JOIN initiatives i ON a.kind = 'budget' AND i.id::text = a.owner
               WHERE i.status = ANY($2::text[]) AND a.balance_cents > 0 AND ($1::uuid IS NULL OR a.round_id = $1)""",
            round_id,
            sorted(status.value for status in ENDED),
        ):
            problems.append(
                f"initiative {row['owner']} is {row['status']} but its budget in round {row['round_id']} still "
                f"holds {row['balance_cents']}: what is left of an award goes back when the initiative ends"
            )
        for row in await self._conn.fetch(
            """SELECT p.id FROM pledges p LEFT JOIN journal_entries e ON e.kind = 'pledge' AND e.reference = p.id::text
               WHERE e.id IS NULL AND ($1::uuid IS NULL OR p.round_id = $1)""",
            round_id,
        ):
            problems.append(f"pledge {row['id']} was accepted but never booked")
        return problems

    async def _orphans(self, round_id: uuid.UUID | None) -> list[str]:
        """Rows of the ledger that point at nothing, or across rounds; for one round (through its entries and
        accounts, and by its id where the round itself is gone) or all."""
        problems: list[str] = []
        if round_id is None:
            homeless = """SELECT 'account' AS what, a.id::text AS id, a.round_id FROM accounts a
                              WHERE NOT EXISTS (SELECT FROM rounds r WHERE r.id = a.round_id)
                          UNION ALL SELECT 'journal entry', e.id::text, e.round_id FROM journal_entries e
                              WHERE NOT EXISTS (SELECT FROM rounds r WHERE r.id = e.round_id)
                          UNION ALL SELECT 'pledge', p.id::text, p.round_id FROM pledges p
                              WHERE NOT EXISTS (SELECT FROM rounds r WHERE r.id = p.round_id)"""
            stray = """SELECT l.entry_id, l.account_id, l.amount_cents, e.round_id AS entry_round,
                              a.round_id AS account_round
                       FROM journal_lines l LEFT JOIN journal_entries e ON e.id = l.entry_id
                       LEFT JOIN accounts a ON a.id = l.account_id
                       WHERE e.id IS NULL OR a.id IS NULL OR e.round_id <> a.round_id"""
            arguments: tuple[uuid.UUID, ...] = ()
        else:
            homeless = """SELECT what, id, $1::uuid AS round_id FROM (
                              SELECT 'account' AS what, a.id::text AS id FROM accounts a WHERE a.round_id = $1
                              UNION ALL SELECT 'journal entry', e.id::text FROM journal_entries e
                                  WHERE e.round_id = $1
                              UNION ALL SELECT 'pledge', p.id::text FROM pledges p WHERE p.round_id = $1) AS rows
                          WHERE NOT EXISTS (SELECT FROM rounds r WHERE r.id = $1)"""
            stray = """SELECT l.entry_id, l.account_id, l.amount_cents, e.round_id AS entry_round,
                              a.round_id AS account_round
                       FROM journal_entries e JOIN journal_lines l ON l.entry_id = e.id
                       LEFT JOIN accounts a ON a.id = l.account_id
                       WHERE e.round_id = $1 AND a.round_id IS DISTINCT FROM $1
                       UNION
                       SELECT l.entry_id, l.account_id, l.amount_cents, e.round_id, a.round_id
                       FROM accounts a JOIN journal_lines l ON l.account_id = a.id
                       LEFT JOIN journal_entries e ON e.id = l.entry_id
                       WHERE a.round_id = $1 AND e.round_id IS DISTINCT FROM $1"""
            arguments = (round_id,)
        for row in await self._conn.fetch(homeless, *arguments):
            problems.append(f"{row['what']} {row['id']} belongs to round {row['round_id']}, which does not exist")
        for row in await self._conn.fetch(stray, *arguments):
            entry = "a missing entry" if row["entry_round"] is None else f"an entry of round {row['entry_round']}"
            account = (
                "a missing account" if row["account_round"] is None else f"an account of round {row['account_round']}"
            )
            problems.append(
                f"journal line of {row['amount_cents']} (entry {row['entry_id']}, account {row['account_id']}) "
                f"joins {entry} to {account}"
            )
        return problems
