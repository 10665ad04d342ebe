"""Payouts through the bank: an initiative's bank account (the payee), payout batches sent as one SEPA credit-transfer
file, and the bank statement that comes back.

Invariants:
- a bank account is a valid IBAN (its check digits and its country's length and structure, as schwifty knows them) in
  the SEPA zone, with the name of its holder; its BIC is the one given (valid) or the one schwifty derives from the
  IBAN, when it can. Outside this service's own records an IBAN appears only masked (its last four characters);
- there is at most one open batch; an approved payout of an initiative with a bank account waits in it until it
  closes, and can be cancelled until then. A closed batch never changes: its file is written once, at the close;
- a statement line settles a payout only when its end-to-end id is the payout's reference, it is a debit for exactly
  the payout's amount, and the payout is in a closed batch and not settled; everything else is reported, never
  settled. A returned transfer (return information, or a reversal) sends the payout back to wait for the next batch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from enum import StrEnum

from schwifty import BIC, IBAN
from schwifty.exceptions import SchwiftyException

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput


def masked(iban: str) -> str:
    """An IBAN as it may appear outside the service's records: its last four characters."""
    return "…" + iban[-4:]


@dataclass(frozen=True)
class BankAccount:
    """Where the payouts of an initiative go: a SEPA IBAN (compact), its BIC when known, and its holder's name."""

    iban: str
    bic: str | None
    holder: str

    @classmethod
    def parse(cls, iban: str, bic: str | None, holder: str, field_prefix: str = "") -> BankAccount:
        """The account as given, validated; each refusal names its field (`field_prefix` + `iban`, `bic`, ...)."""
        try:
            parsed = IBAN(iban)
        except SchwiftyException as error:
            raise InvalidInput(f"iban: not a valid IBAN ({error})", f"{field_prefix}iban") from None
        if not parsed.in_sepa_zone:
            raise InvalidInput(f"iban: {parsed.country_code} is not in the SEPA zone", f"{field_prefix}iban")
        if bic:
            try:
                checked = BIC(bic)
            except SchwiftyException as error:
                raise InvalidInput(f"bic: not a valid BIC ({error})", f"{field_prefix}bic") from None
            bic = checked.compact
        else:
            derived = parsed.bic
            bic = derived.compact if derived is not None else None
        if not holder.strip():
            raise InvalidInput(
                "account_holder: the name of the account's holder is required", f"{field_prefix}account_holder"
            )
        return cls(parsed.compact, bic, holder.strip())

    @property
    def masked_iban(self) -> str:
        return masked(self.iban)


@dataclass(frozen=True)
class Payee:
    """An initiative's bank account, and who gave it when."""

    initiative_id: uuid.UUID
    account: BankAccount
    given_by: str
    given_at: datetime


@dataclass(frozen=True)
class Debtor:
    """The municipality's account the payouts are paid from."""

    name: str
    iban: str
    bic: str


@dataclass(frozen=True)
class Transfer:
    """One payout as a credit transfer in a batch's file."""

    payout_id: uuid.UUID
    reference: str
    amount_cents: int
    account: BankAccount
    description: str


class BatchStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


def due_execution_date(now: datetime, zone: tzinfo) -> date:
    """The day the bank is asked to execute a batch closed at `now`: the next working day (Monday to Friday) after
    today in the municipality's time zone."""
    day = now.astimezone(zone).date() + timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


def closing_due(opened_at: datetime, now: datetime, closing_time: time, zone: tzinfo) -> bool:
    """A batch closes daily at `closing_time` (local): it is due once a closing time passed since it opened."""
    local_now = now.astimezone(zone)
    last_closing = datetime.combine(local_now.date(), closing_time, zone)
    if last_closing > local_now:
        last_closing -= timedelta(days=1)
    return opened_at <= last_closing


@dataclass
class PayoutBatch:
    id: uuid.UUID
    status: BatchStatus
    opened_at: datetime
    closed_at: datetime | None = None
    closed_by: str | None = None
    message_reference: str | None = None
    requested_execution_date: date | None = None
    payout_count: int = 0
    total_cents: int = 0
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(cls, now: datetime) -> PayoutBatch:
        return cls(uuid.uuid4(), BatchStatus.OPEN, now)

    @property
    def message_id(self) -> str:
        """The file's message id (GrpHdr/MsgId, at most 35 characters): derived from the batch, so the same batch
        always names the same message."""
        return f"BK-BATCH-{self.id.hex[:24].upper()}"

    def close(self, transfers: list[Transfer], closed_by: str | None, now: datetime, execution_date: date) -> None:
        """Closed with `transfers` (at least one) in its file; records PayoutBatchClosed."""
        if self.status is not BatchStatus.OPEN:
            raise Conflict("the payout batch was closed already", self.status.value)
        if not transfers:
            raise Conflict("the payout batch holds no payouts yet: there is nothing to send", "empty")
        self.status, self.closed_at, self.closed_by = BatchStatus.CLOSED, now, closed_by
        self.message_reference, self.requested_execution_date = self.message_id, execution_date
        self.payout_count, self.total_cents = len(transfers), sum(t.amount_cents for t in transfers)
        self.events.append(
            events.PayoutBatchClosed(
                batch_id=self.id,
                closed_by=closed_by,
                payout_ids=[t.payout_id for t in transfers],
                payout_references=[t.reference for t in transfers],
                payout_count=self.payout_count,
                total_cents=self.total_cents,
                message_reference=self.message_id,
                requested_execution_date=execution_date,
            )
        )


# -- the statement that comes back --------------------------------------------------------------


@dataclass(frozen=True)
class StatementLine:
    """One transaction of a camt.053 statement. `line` names it within its statement (the entry's reference, or
    its position, and the transaction's position), so the same statement read twice names the same lines."""

    line: str
    end_to_end_id: str | None
    amount_cents: int
    currency: str
    debit: bool
    reversal: bool
    return_reason: str | None
    returned: bool
    booked_on: date | None
    bank_reference: str


@dataclass(frozen=True)
class Statement:
    statement_id: str
    account_iban: str | None
    lines: list[StatementLine]


class Outcome(StrEnum):
    SETTLED = "settled"
    RETURNED = "returned"
    AMOUNT_MISMATCH = "amount_mismatch"
    UNKNOWN_REFERENCE = "unknown_reference"
    NOT_SENT = "not_sent"  # the payout is in no closed batch: the bank cannot have paid it from one of our files
    ALREADY_SETTLED = "already_settled"
    NOT_A_PAYOUT = "not_a_payout"  # a credit, or another currency: nothing of ours


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    detail: str


def judge(line: StatementLine, reference_known: bool, amount_cents: int, sent: bool, settled: bool) -> Verdict:
    """What a statement line means for the payout whose reference is its end-to-end id (`reference_known`), of
    `amount_cents`, in a closed batch (`sent`) or not, `settled` or not."""
    if line.currency != "EUR":
        return Verdict(Outcome.NOT_A_PAYOUT, f"in {line.currency}, not EUR")
    if not reference_known:
        return Verdict(Outcome.UNKNOWN_REFERENCE, f"no payout has the reference {line.end_to_end_id or '(none)'}")
    if line.amount_cents != amount_cents:
        return Verdict(
            Outcome.AMOUNT_MISMATCH, f"the bank booked {line.amount_cents} cents, the payout is for {amount_cents}"
        )
    if line.returned or line.reversal:
        if not (sent or settled):
            return Verdict(Outcome.NOT_SENT, "a return of a payout that is in no closed batch")
        reason = f" (reason {line.return_reason})" if line.return_reason else ""
        return Verdict(Outcome.RETURNED, f"the transfer came back{reason}; the payout waits for the next batch")
    if not line.debit:
        return Verdict(Outcome.NOT_A_PAYOUT, "a credit without return information")
    if settled:
        return Verdict(Outcome.ALREADY_SETTLED, "the payout was settled before")
    if not sent:
        return Verdict(Outcome.NOT_SENT, "the payout is in no closed batch")
    return Verdict(Outcome.SETTLED, "paid")
