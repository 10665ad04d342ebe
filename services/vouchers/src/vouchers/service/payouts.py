"""Payouts through the bank: the initiators give their initiative's bank account; approved payouts wait in the open
payout batch; the batch closes (daily, or by an official or the finance integration) into a SEPA pain.001 file; the
bank's camt.053 statement settles each payout it paid and reports the rest.

Locks, in the one order (see `locking`): round, initiative, payout, then the open batch `FOR SHARE` (joining or
leaving it), then ledger accounts. Closing a batch takes only the batch `FOR UPDATE`. A statement is read one line
per unit of work: each line's outcome is recorded (statement id and line, unique) in the same transaction as what it
does, so a statement uploaded again, or after a crash halfway, does each line once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters import bank_files
from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.banking import (
    BankAccount,
    BatchStatus,
    Debtor,
    Outcome,
    Payee,
    PayoutBatch,
    StatementLine,
    closing_due,
    due_execution_date,
    judge,
)
from ..domain.initiatives import Initiative
from ..domain.ledger import Account, Kind
from ..domain.spending import Payout, PayoutStatus
from .access import found, is_official_for
from .locking import lock

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Banking:
    """The municipality's side of the bank: its account, and when the open batch closes each day."""

    debtor: Debtor
    closing_time: time
    zone: ZoneInfo


def require_finance_or_official(actor: Principal, action: str) -> None:
    if not (actor.has(Role.INTEGRATION) or actor.has(Role.OFFICIAL)):
        raise NotAllowed(f"only the finance integration and officials {action}")


def require_finance(actor: Principal, action: str) -> None:
    if not actor.has(Role.INTEGRATION):
        raise NotAllowed(f"only the finance integration {action}")


# -- the payee ------------------------------------------------------------------------------------


async def put_payee(
    uow: VouchersUnitOfWork, initiative: Initiative, actor: Principal, account: BankAccount, now: datetime
) -> Payee:
    """The initiative's bank account, given by an initiator (the initiative's row is locked); its payouts that waited
    for one join the open batch."""
    if actor.subject not in initiative.initiators:
        raise NotAllowed("only the initiators give their initiative's bank account")
    payee = Payee(initiative.id, account, actor.subject, now)
    await uow.payees.put(payee)
    for payout_id in await uow.payouts.waiting_of(initiative.id):
        payout = found(await uow.payouts.get(payout_id, for_update=True), f"payout {payout_id}")
        await join_open_batch(uow, payout, now)
        await uow.payouts.save(payout)
    return payee


async def give_bank_account(
    uow: VouchersUnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    iban: str,
    bic: str | None,
    holder: str,
    now: datetime,
) -> Payee:
    account = BankAccount.parse(iban, bic, holder)
    initiative = found((await lock(uow, initiative_id=initiative_id)).initiative, f"initiative {initiative_id}")
    return await put_payee(uow, initiative, actor, account, now)


async def bank_account_of(uow: VouchersUnitOfWork, actor: Principal, initiative_id: uuid.UUID) -> Payee:
    """The initiative's bank account, for its initiators and the finance integration; to anyone else it does not
    exist."""
    initiative = found(await uow.initiatives.get(initiative_id), f"initiative {initiative_id}")
    payee = await uow.payees.get(initiative_id)
    if payee is None or not (actor.subject in initiative.initiators or actor.has(Role.INTEGRATION)):
        raise NotFound(f"bank account of initiative {initiative_id}")
    return payee


async def join_open_batch(uow: VouchersUnitOfWork, payout: Payout, now: datetime) -> None:
    """A requested payout of an initiative with a bank account waits in the open batch (opened if there is none);
    without a bank account it waits outside any batch until the initiators give one."""
    if payout.status is PayoutStatus.REQUESTED and await uow.payees.get(payout.initiative_id) is not None:
        payout.batch_id = (await uow.payout_batches.open_one(now)).id


async def leave_open_batch(uow: VouchersUnitOfWork, payout: Payout) -> bool:
    """Takes the payout out of its batch while that is open (holding it open until commit); returns whether its
    batch had closed (its file went to the bank)."""
    if payout.batch_id is None:
        return False
    if await uow.payout_batches.status_of(payout.batch_id, share=True) is BatchStatus.CLOSED:
        return True
    payout.batch_id = None
    return False


# -- cancelling -----------------------------------------------------------------------------------


async def cancel_payout(
    uow: VouchersUnitOfWork, actor: Principal, payout_id: uuid.UUID, reason: str, now: datetime
) -> Payout:
    """An official of the round's area, or the finance integration, cancels a payout whose batch has not closed:
    the hold returns to the initiative's budget (or its round, when the initiative ended)."""
    locked = await lock(uow, payout_id=payout_id)
    payout = found(locked.payout, f"payout {payout_id}")
    round_, initiative = found(locked.round, "its round"), found(locked.initiative, "its initiative")
    if not (is_official_for(actor, round_.area_code) or actor.has(Role.INTEGRATION)):
        raise NotAllowed(
            f"only an official responsible for {round_.area_code} or the finance integration cancels payouts"
        )
    sent = await leave_open_batch(uow, payout) if payout.status is PayoutStatus.REQUESTED else False
    left = await uow.ledger.balance(round_.id, Account.of_initiative(Kind.BUDGET, initiative.id)) or 0
    entry = payout.cancel(round_, initiative, actor.subject, reason, left, sent)
    await uow.ledger.post(payout.round_id, entry)
    await uow.payouts.save(payout)
    uow.collect(payout)
    return payout


# -- closing a batch ------------------------------------------------------------------------------


async def close_batch(
    uow: VouchersUnitOfWork, actor: Principal | None, batch_id: uuid.UUID, banking: Banking, now: datetime
) -> PayoutBatch:
    """Close the batch into its pain.001 file: by an official or the finance integration (`actor`), or at its daily
    time (None). A batch without payouts stays open."""
    if actor is not None:
        require_finance_or_official(actor, "close payout batches")
    batch = found(await uow.payout_batches.get(batch_id, for_update=True), f"payout batch {batch_id}")
    transfers = await uow.payout_batches.transfers(batch_id) if batch.status is BatchStatus.OPEN else []
    execution_date = due_execution_date(now, banking.zone)
    batch.close(transfers, actor.subject if actor else None, now, execution_date)
    content = bank_files.pain001(banking.debtor, batch, transfers, execution_date)
    await uow.payout_batches.save_closed(batch, content)
    uow.collect(batch)
    return batch


async def close_due_batch(
    unit_of_work: Callable[[], VouchersUnitOfWork], banking: Banking, now: datetime
) -> PayoutBatch | None:
    """The open batch closes once its daily closing time passed, when it holds payouts. Several replicas may try
    at once: the batch's row lock lets one close it, the others find it closed and do nothing."""
    async with unit_of_work() as uow:
        batch = await uow.payout_batches.current()
    if batch is None or not closing_due(batch.opened_at, now, banking.closing_time, banking.zone):
        return None
    async with unit_of_work() as uow:
        try:
            closed = await close_batch(uow, None, batch.id, banking, now)
        except Conflict:
            return None  # empty, or another replica closed it
        await uow.commit()
    return closed


async def batches(
    uow: VouchersUnitOfWork, actor: Principal, status: BatchStatus | None, limit: int, offset: int
) -> tuple[list[PayoutBatch], int]:
    require_finance_or_official(actor, "see payout batches")
    return await uow.payout_batches.search(status, limit, offset)


async def batch_of(uow: VouchersUnitOfWork, actor: Principal, batch_id: uuid.UUID) -> PayoutBatch:
    require_finance_or_official(actor, "see payout batches")
    return found(await uow.payout_batches.get(batch_id), f"payout batch {batch_id}")


async def pain001_of(uow: VouchersUnitOfWork, actor: Principal, batch_id: uuid.UUID) -> tuple[PayoutBatch, bytes]:
    """The closed batch's file, for the finance integration (it names the payees' bank accounts)."""
    require_finance(actor, "downloads payout files")
    batch = found(await uow.payout_batches.get(batch_id), f"payout batch {batch_id}")
    content = await uow.payout_batches.pain001(batch_id)
    if batch.status is BatchStatus.OPEN or content is None:
        raise Conflict("the payout batch is still open: its file is written when it closes", batch.status.value)
    return batch, content


# -- the bank statement ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LineRead:
    """What one statement line did (or, `already_read`, did when it was read before)."""

    statement_id: str
    line: str
    end_to_end_id: str | None
    amount_cents: int
    outcome: Outcome
    detail: str
    payout_id: uuid.UUID | None
    already_read: bool


async def import_statement(
    unit_of_work: Callable[[], VouchersUnitOfWork], actor: Principal, content: bytes, banking: Banking, now: datetime
) -> list[LineRead]:
    """The finance integration uploads a camt.053 statement of the municipality's payout account."""
    require_finance(actor, "uploads bank statements")
    statements = bank_files.read_camt053(content)
    if not statements:
        raise InvalidInput("statement: the document holds no statement", "statement")
    for statement in statements:
        if not statement.statement_id:
            raise InvalidInput("statement: a statement without an id (Stmt/Id)", "statement")
        if statement.account_iban and statement.account_iban != banking.debtor.iban:
            raise InvalidInput(
                f"statement: {statement.statement_id} is of another account than the municipality's payout account",
                "statement",
            )
    read: list[LineRead] = []
    for statement in statements:
        async with unit_of_work() as uow:
            await uow.statements.begin(statement, actor.subject)
            await uow.commit()
        for line in statement.lines:
            read.append(await _read_line(unit_of_work, statement.statement_id, line, now))
    return read


async def _read_line(
    unit_of_work: Callable[[], VouchersUnitOfWork], statement_id: str, line: StatementLine, now: datetime
) -> LineRead:
    async with unit_of_work() as uow:
        before = await uow.statements.recorded(statement_id, line.line)
        if before is not None:
            return _seen(statement_id, line, before)
        payout_id = await uow.payouts.id_of(line.end_to_end_id) if line.end_to_end_id else None
        locked = await lock(uow, payout_id=payout_id) if payout_id else None
        payout = locked.payout if locked else None
        sent = (
            payout is not None
            and payout.batch_id is not None
            and await uow.payout_batches.status_of(payout.batch_id) is BatchStatus.CLOSED
        )
        verdict = judge(
            line,
            payout is not None,
            payout.amount_cents if payout else 0,
            sent,
            payout is not None and payout.status is PayoutStatus.SETTLED,
        )
        if not await uow.statements.record(statement_id, line, verdict.outcome, verdict.detail, payout_id):
            before = found(await uow.statements.recorded(statement_id, line.line), "the line read meanwhile")
            return _seen(statement_id, line, before)  # read meanwhile by an upload of the same statement
        if payout is not None and locked is not None and verdict.outcome in (Outcome.SETTLED, Outcome.RETURNED):
            round_, initiative = found(locked.round, "its round"), found(locked.initiative, "its initiative")
            if verdict.outcome is Outcome.SETTLED:
                paid_at = datetime.combine(line.booked_on, time(), UTC) if line.booked_on else now
                entry = payout.settle(round_, initiative, line.bank_reference, paid_at, line.amount_cents)
            else:
                entry = payout.returned(round_, initiative, statement_id, line.return_reason)
                await join_open_batch(uow, payout, now)
            if entry is not None:
                await uow.ledger.post(payout.round_id, entry)
            await uow.payouts.save(payout)
            uow.collect(payout)
        await uow.commit()
    logger.info("statement %s line %s: %s (%s)", statement_id, line.line, verdict.outcome.value, verdict.detail)
    return LineRead(
        statement_id,
        line.line,
        line.end_to_end_id,
        line.amount_cents,
        verdict.outcome,
        verdict.detail,
        payout_id,
        False,
    )


def _seen(statement_id: str, line: StatementLine, before) -> LineRead:  # type: ignore[no-untyped-def]
    return LineRead(
        statement_id,
        line.line,
        line.end_to_end_id,
        line.amount_cents,
        Outcome(before["outcome"]),
        before["detail"],
        before["payout_id"],
        True,
    )


async def statement_lines(uow: VouchersUnitOfWork, actor: Principal, statement_id: str) -> list[LineRead]:
    require_finance_or_official(actor, "see bank statements")
    rows = await uow.statements.lines_of(statement_id)
    if not rows:
        raise NotFound(f"bank statement {statement_id}")
    return [
        LineRead(
            statement_id,
            r["line"],
            r["end_to_end_id"],
            r["amount_cents"],
            Outcome(r["outcome"]),
            r["detail"],
            r["payout_id"],
            True,
        )
        for r in rows
    ]
