"""Property tests of payouts through the bank: random sequences of approvals, cancellations, batch closes and bank
statements (payments, wrong amounts, returns, unknown references, each statement sometimes uploaded twice) through
the real command functions on the real PostgreSQL, checked against a small model.

After every step: the ledger's own check finds nothing, the initiative's payable, paid and left amounts and every
payout's status, batch and attempt are what the model says, and every statement line had the outcome the model
expected; a statement uploaded again changes nothing."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from bank_statements import Booking, camt053
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from vouchers.adapters.ledger import Ledger
from vouchers.adapters.unit_of_work import VouchersUnitOfWork
from vouchers.app import SPEC
from vouchers.domain.banking import Debtor
from vouchers.domain.ledger import Account, Kind
from vouchers.domain.rounds import Mechanism
from vouchers.domain.steering import Member
from vouchers.service import awards, payouts, reactions, rounds, spending, steering

from buurtkracht_contracts.event import source_urn
from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit import migrations
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.db import create_pool
from tests.properties import run_machine

pytestmark = pytest.mark.integration

SOURCE = source_urn("00000000000000000000", "buurtkracht-vouchers")
DEBTOR = Debtor("Gemeente Amsterdam", "NL38BNGH0285012345", "BNGHNL2G")
BANKING = payouts.Banking(DEBTOR, datetime.min.time(), ZoneInfo("Europe/Amsterdam"))
AWARD = 20_000
_wijken = itertools.count(900_000, 1_000)
_statements = itertools.count(1)


@dataclass
class Stack:
    loop: asyncio.AbstractEventLoop
    pool: asyncpg.Pool

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)


@pytest.fixture(scope="module")
def stack(scratch_database):
    migrations.apply(scratch_database, SPEC.migrations)
    loop = asyncio.new_event_loop()
    pool = loop.run_until_complete(create_pool(scratch_database, min_size=1, max_size=4))
    try:
        yield Stack(loop, pool)
    finally:
        loop.run_until_complete(pool.close())
        loop.close()


@dataclass
class MPayout:
    id: uuid.UUID
    reference: str
    amount: int
    status: str = "requested"
    sent: bool = False  # in a closed batch
    attempt: int = 1


class PayoutMachine(RuleBasedStateMachine):
    stack: Stack  # set by the test before running

    def run(self, coroutine):
        return self.stack.run(coroutine)

    async def once(self, command):
        async with VouchersUnitOfWork(self.stack.pool, SOURCE) as uow:
            result = await command(uow)
            await uow.commit()
            return result

    def unit_of_work(self) -> VouchersUnitOfWork:
        return VouchersUnitOfWork(self.stack.pool, SOURCE)

    @initialize()
    def award(self):
        """A committee award of AWARD to an initiative with a bank account; whatever an earlier example left in the
        open batch is sent first, so this example's batches hold only its own payouts."""
        wijk = f"WK{next(_wijken):06d}"
        buurt = f"BU{wijk[2:]}01"
        self.official = Principal("o-1", frozenset({Role.OFFICIAL}), frozenset({wijk}))
        self.initiator = Principal("i-1", frozenset({Role.RESIDENT}), frozenset({buurt}))
        self.finance = Principal("finance", frozenset({Role.INTEGRATION}), frozenset())
        self.initiative_id, now = uuid.uuid4(), datetime.now(UTC)
        self.payouts: dict[uuid.UUID, MPayout] = {}
        self.left, self.payable, self.paid = AWARD, 0, 0
        self.invoices = itertools.count(1)
        member = Principal("sg-1", frozenset({Role.STEERING_GROUP}), frozenset({wijk}))

        async def setup():
            async with self.unit_of_work() as uow:
                batch = await uow.payout_batches.current()
            if batch is not None:
                try:
                    await self.once(lambda uow: payouts.close_batch(uow, None, batch.id, BANKING, now))
                except Conflict:
                    pass
            round_ = await self.once(
                lambda uow: rounds.open_round(
                    uow,
                    self.official,
                    area_code=wijk,
                    name="Buurtbudget",
                    mechanism=Mechanism.COMMITTEE,
                    total_budget_cents=100_000,
                    opens_at=now - timedelta(minutes=1),
                    closes_at=now + timedelta(days=30),
                    voucher_amount_cents=None,
                    allow_wallet_claims=False,
                    committee_quorum=1,
                )
            )
            await self.once(
                lambda uow: reactions.initiative_approved(uow, self.initiative_id, buurt, "Tuin", ["i-1"], AWARD)
            )
            await self.once(
                lambda uow: steering.register_steering_group(uow, self.official, wijk, [Member("sg-1", True)], now)
            )
            await self.once(lambda uow: awards.propose_award(uow, member, round_.id, self.initiative_id, AWARD, now))
            await self.once(
                lambda uow: payouts.give_bank_account(
                    uow, self.initiator, self.initiative_id, "NL91ABNA0417164300", None, "Stichting Tuin", now
                )
            )
            return round_.id

        self.round_id = self.run(setup())

    # -- commands -------------------------------------------------------------------------------
    @precondition(lambda self: self.left > 0)
    @rule(share=st.integers(min_value=1, max_value=4))
    def approve(self, share):
        amount = max(1, self.left // share)
        now = datetime.now(UTC)

        async def claim_and_decide():
            claim, _ = await self.once(
                lambda uow: spending.claim_expense(
                    uow, self.initiator, self.initiative_id, "Tuincentrum", amount, f"F-{next(self.invoices)}", now
                )
            )
            _, payout = await self.once(
                lambda uow: spending.decide_expense(uow, self.official, claim.id, True, None, now)
            )
            return payout

        payout = self.run(claim_and_decide())
        assert payout.batch_id is not None, "an initiative with a bank account: the payout waits in the open batch"
        self.payouts[payout.id] = MPayout(payout.id, payout.reference, amount)
        self.left, self.payable = self.left - amount, self.payable + amount

    @precondition(lambda self: self.payouts)
    @rule(data=st.data())
    def cancel(self, data):
        payout = data.draw(st.sampled_from(sorted(self.payouts.values(), key=lambda p: p.reference)))
        expected_ok = payout.status == "requested" and not payout.sent
        try:
            self.run(
                self.once(
                    lambda uow: payouts.cancel_payout(uow, self.official, payout.id, "vergissing", datetime.now(UTC))
                )
            )
        except Conflict:
            assert not expected_ok, "refused, but the model cancels it"
            return
        assert expected_ok, "cancelled, but the model refuses"
        payout.status = "cancelled"
        self.left, self.payable = self.left + payout.amount, self.payable - payout.amount

    @rule()
    def close_batch(self):
        waiting = [p for p in self.payouts.values() if p.status == "requested" and not p.sent]

        async def close():
            async with self.unit_of_work() as uow:
                batch = await uow.payout_batches.current()
            if batch is None:
                return None
            return await self.once(
                lambda uow: payouts.close_batch(uow, self.finance, batch.id, BANKING, datetime.now(UTC))
            )

        try:
            closed = self.run(close())
        except Conflict:
            assert not waiting, "refused as empty, but payouts wait"
            return
        if closed is None:
            assert not waiting
            return
        assert closed.payout_count == len(waiting)
        for payout in waiting:
            payout.sent = True

    @precondition(lambda self: self.payouts)
    @rule(
        data=st.data(),
        kind=st.sampled_from(["pay", "pay", "wrong_amount", "return", "unknown"]),
        twice=st.booleans(),
    )
    def statement(self, data, kind, twice):
        payout = data.draw(st.sampled_from(sorted(self.payouts.values(), key=lambda p: p.reference)))
        statement_id = f"STMT-P-{next(_statements)}-{uuid.uuid4().hex[:8]}"
        booking = {
            "pay": Booking(payout.reference, payout.amount),
            "wrong_amount": Booking(payout.reference, payout.amount + 1),
            "return": Booking(payout.reference, payout.amount, debit=False, return_reason="AC04"),
            "unknown": Booking("BK-UNKNOWN-" + uuid.uuid4().hex[:8], payout.amount),
        }[kind]
        content = camt053(statement_id, DEBTOR.iban, [booking])
        read = self.run(payouts.import_statement(self.unit_of_work, self.finance, content, BANKING, datetime.now(UTC)))
        expected = self.expect(payout, kind)
        assert [line.outcome.value for line in read] == [expected], (kind, payout)
        self.apply(payout, expected)
        if twice:
            again = self.run(
                payouts.import_statement(self.unit_of_work, self.finance, content, BANKING, datetime.now(UTC))
            )
            assert [(line.outcome.value, line.already_read) for line in again] == [(expected, True)]

    def expect(self, payout: MPayout, kind: str) -> str:
        if kind == "unknown":
            return "unknown_reference"
        if kind == "wrong_amount":
            return "amount_mismatch"
        if kind == "return":
            return "returned" if payout.sent or payout.status == "settled" else "not_sent"
        if payout.status == "settled":
            return "already_settled"
        return "settled" if payout.sent else "not_sent"

    def apply(self, payout: MPayout, outcome: str) -> None:
        if outcome == "settled":
            payout.status = "settled"
            self.payable, self.paid = self.payable - payout.amount, self.paid + payout.amount
        elif outcome == "returned":
            if payout.status == "settled":
                self.payable, self.paid = self.payable + payout.amount, self.paid - payout.amount
            payout.status, payout.sent, payout.attempt = "requested", False, payout.attempt + 1

    # -- invariants -----------------------------------------------------------------------------
    @invariant()
    def the_books_are_what_the_model_says(self):
        if not hasattr(self, "round_id"):
            return

        async def read():
            async with self.stack.pool.acquire() as conn:
                ledger = Ledger(conn)
                balances = await ledger.of_initiative(self.round_id, self.initiative_id)
                left = await ledger.balance(self.round_id, Account.of_initiative(Kind.BUDGET, self.initiative_id))
                rows = await conn.fetch(
                    """SELECT p.id, p.status, p.attempt, b.status AS batch FROM payouts p
                       LEFT JOIN payout_batches b ON b.id = p.batch_id WHERE p.initiative_id = $1""",
                    self.initiative_id,
                )
                return await ledger.check(self.round_id), balances, left, rows

        problems, balances, left, rows = self.run(read())
        assert problems == []
        assert (balances.get(Kind.PAYABLE, 0), balances.get(Kind.PAID, 0), left or 0) == (
            self.payable,
            self.paid,
            self.left,
        )
        for row in rows:
            payout = self.payouts[row["id"]]
            assert (row["status"], row["attempt"]) == (payout.status, payout.attempt)
            if payout.status == "requested":
                assert (row["batch"] == "closed") == payout.sent, (row, payout)


def test_random_payout_sequences_keep_the_books_right_and_each_statement_line_counts_once(stack):
    PayoutMachine.stack = stack
    run_machine(PayoutMachine, max_examples=15, steps=25)
