"""The bank, without infrastructure: bank accounts checked with schwifty, the daily closing time, what a statement
line means for a payout, a payout cancelled or returned in the ledger, the pain.001 file valid against the XSD
sepaxml ships, and camt.053 statements read (and refused) against the committed official XSD."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

import pytest
from bank_statements import Booking, camt053, pain001_transactions
from vouchers.adapters import bank_files
from vouchers.domain.banking import (
    BankAccount,
    Debtor,
    Outcome,
    PayoutBatch,
    StatementLine,
    Transfer,
    closing_due,
    due_execution_date,
    judge,
    masked,
)
from vouchers.domain.initiatives import Initiative, InitiativeStatus
from vouchers.domain.ledger import Account, Kind
from vouchers.domain.rounds import Mechanism, Round
from vouchers.domain.spending import Payout, PayoutStatus

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.refusals import Conflict, InvalidInput

pytestmark = pytest.mark.unit

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
MUNICIPALITY = Debtor("Gemeente Amsterdam", "NL38BNGH0285012345", "BNGHNL2G")


@pytest.mark.parametrize(
    "iban, why",
    [
        ("NL91ABNA0417164301", "checksum"),  # one digit off: the check digits do not match
        ("NL91ABNA04171643", "length"),
        ("XX91ABNA0417164300", "country"),
        ("hello", "characters"),
    ],
)
def test_a_bad_iban_is_refused_naming_the_field(iban, why):
    with pytest.raises(InvalidInput) as refused:
        BankAccount.parse(iban, None, "Stichting Groen", "bank_account.")
    assert refused.value.field == "bank_account.iban" and str(refused.value).startswith("iban:")


def test_an_iban_outside_the_sepa_zone_and_a_bad_bic_and_no_holder_are_refused_naming_the_field():
    with pytest.raises(InvalidInput) as outside:
        BankAccount.parse("BR1800360305000010009795493C1", None, "Holder")
    assert outside.value.field == "iban" and "SEPA" in str(outside.value)
    with pytest.raises(InvalidInput) as bic:
        BankAccount.parse("NL91ABNA0417164300", "ABN", "Holder")
    assert bic.value.field == "bic"
    with pytest.raises(InvalidInput) as holder:
        BankAccount.parse("NL91ABNA0417164300", None, "  ")
    assert holder.value.field == "account_holder"


def test_an_iban_is_kept_compact_its_bic_derived_and_it_shows_only_its_last_four_characters():
    account = BankAccount.parse("nl91 abna 0417 1643 00", None, " Stichting Groen ")
    assert account == BankAccount("NL91ABNA0417164300", "ABNANL2A", "Stichting Groen")
    assert BankAccount.parse("NL91ABNA0417164300", "abnanl2a", "X").bic == "ABNANL2A"
    assert account.masked_iban == masked(account.iban) == "…4300"


def test_a_batch_closes_once_a_daily_closing_time_passed_since_it_opened():
    three = time(15, 0)
    opened = datetime(2026, 12, 1, 10, 0, tzinfo=AMSTERDAM)
    assert not closing_due(opened, datetime(2026, 12, 1, 14, 59, tzinfo=AMSTERDAM), three, AMSTERDAM)
    assert closing_due(opened, datetime(2026, 12, 1, 15, 0, tzinfo=AMSTERDAM), three, AMSTERDAM)
    late = datetime(2026, 12, 1, 16, 0, tzinfo=AMSTERDAM)  # opened after today's closing: closes tomorrow
    assert not closing_due(late, datetime(2026, 12, 2, 9, 0, tzinfo=AMSTERDAM), three, AMSTERDAM)
    assert closing_due(late, datetime(2026, 12, 2, 15, 1, tzinfo=AMSTERDAM), three, AMSTERDAM)


def test_the_bank_is_asked_to_pay_on_the_next_working_day():
    assert due_execution_date(datetime(2026, 12, 1, 14, 0, tzinfo=UTC), AMSTERDAM) == date(2026, 12, 2)  # Tuesday
    assert due_execution_date(datetime(2026, 12, 4, 14, 0, tzinfo=UTC), AMSTERDAM) == date(2026, 12, 7)  # Friday
    assert due_execution_date(datetime(2026, 12, 4, 23, 30, tzinfo=UTC), AMSTERDAM) == date(2026, 12, 7)  # Sat


def line(**changes) -> StatementLine:
    values = dict(
        line="E1/1",
        end_to_end_id="BK-1",
        amount_cents=2_500,
        currency="EUR",
        debit=True,
        reversal=False,
        return_reason=None,
        returned=False,
        booked_on=date(2026, 12, 2),
        bank_reference="B1",
    )
    return StatementLine(**(values | changes))


@pytest.mark.parametrize(
    "statement_line, known, sent, settled, outcome",
    [
        (line(), True, True, False, Outcome.SETTLED),
        (line(amount_cents=2_499), True, True, False, Outcome.AMOUNT_MISMATCH),
        (line(), False, False, False, Outcome.UNKNOWN_REFERENCE),
        (line(), True, False, False, Outcome.NOT_SENT),
        (line(), True, True, True, Outcome.ALREADY_SETTLED),
        (line(debit=False, returned=True, return_reason="AC04"), True, True, False, Outcome.RETURNED),
        (line(reversal=True), True, True, True, Outcome.RETURNED),
        (line(debit=False, returned=True), True, False, False, Outcome.NOT_SENT),
        (line(debit=False), True, True, False, Outcome.NOT_A_PAYOUT),
        (line(currency="USD"), True, True, False, Outcome.NOT_A_PAYOUT),
    ],
)
def test_a_statement_line_settles_only_a_sent_payout_for_exactly_its_amount(
    statement_line, known, sent, settled, outcome
):
    assert judge(statement_line, known, 2_500, sent, settled).outcome is outcome


def awarded() -> tuple[Round, Initiative, Payout]:
    round_ = Round.open(
        area_code="WK036300",
        name="Buurtbudget",
        mechanism=Mechanism.COMMITTEE,
        total_budget_cents=10_000,
        opens_at=datetime(2026, 1, 1, tzinfo=UTC),
        closes_at=datetime(2027, 1, 1, tzinfo=UTC),
        voucher_amount_cents=None,
        allow_wallet_claims=False,
        committee_quorum=1,
    )[0]
    initiative = Initiative(
        uuid.uuid4(), "BU03630001", "Geveltuinen", ["r-owner"], 5_000, InitiativeStatus.AWARDED, round_.id, 5_000
    )
    payout = Payout(
        uuid.uuid4(), uuid.uuid4(), initiative.id, round_.id, "BK-0123456789ABCDEF", 2_500, PayoutStatus.REQUESTED
    )
    return round_, initiative, payout


def test_a_cancelled_payout_gives_its_amount_back_to_the_budget_and_only_before_its_batch_closed():
    round_, initiative, payout = awarded()
    with pytest.raises(Conflict):
        payout.cancel(round_, initiative, "o-1", "dubbel ingediend", 2_500, sent=True)
    with pytest.raises(InvalidInput):
        payout.cancel(round_, initiative, "o-1", " ", 2_500, sent=False)
    entry = payout.cancel(round_, initiative, "o-1", "dubbel ingediend", 2_500, sent=False)
    assert entry.lines == (
        (Account.of_initiative(Kind.PAYABLE, initiative.id), -2_500),
        (Account.of_initiative(Kind.BUDGET, initiative.id), 2_500),
    )
    assert payout.status is PayoutStatus.CANCELLED and isinstance(payout.events[-1], events.PayoutCancelled)
    with pytest.raises(Conflict):
        payout.cancel(round_, initiative, "o-1", "nogmaals", 2_500, sent=False)
    with pytest.raises(Conflict):
        payout.settle(round_, initiative, "B1", datetime.now(UTC), 2_500)


def test_a_returned_payout_waits_to_be_sent_again_and_a_returned_settlement_is_undone_once_per_attempt():
    round_, initiative, payout = awarded()
    payout.batch_id = uuid.uuid4()
    assert payout.returned(round_, initiative, "STMT-1", "AC04") is None, "not settled: the ledger does not move"
    assert (payout.status, payout.batch_id, payout.attempt) == (PayoutStatus.REQUESTED, None, 2)
    returned = payout.events[-1]
    assert isinstance(returned, events.PayoutReturned) and returned.return_reason == "AC04"
    assert not returned.was_settled

    settled = payout.settle(round_, initiative, "B2", datetime.now(UTC), 2_500)
    assert settled is not None and settled.reference == f"{payout.id}:2"
    undone = payout.returned(round_, initiative, "STMT-2", None)
    assert undone is not None and (undone.kind, undone.reference) == ("payout_returned", f"{payout.id}:2")
    assert undone.lines[0] == (Account.of_initiative(Kind.PAID, initiative.id), -2_500)
    assert payout.attempt == 3 and payout.events[-1].was_settled
    assert payout.settle(round_, initiative, "B3", datetime.now(UTC), 2_500).reference == f"{payout.id}:3"


def test_a_closed_batch_is_a_pain001_file_valid_against_the_official_xsd_with_each_payout_reference_as_end_to_end_id():
    batch = PayoutBatch.open(datetime.now(UTC))
    transfers = [
        Transfer(
            uuid.uuid4(),
            "BK-0000000000000001",
            30_000,
            BankAccount("NL91ABNA0417164300", "ABNANL2A", "Stichting Groen"),
            "BK-0000000000000001 F-1 Tuincentrum",
        ),
        Transfer(
            uuid.uuid4(),
            "BK-0000000000000002",
            1_250,
            BankAccount("DE89370400440532013000", None, "Gärtnerei Müller"),
            "BK-0000000000000002 F-2 Gärtnerei",
        ),
    ]
    with pytest.raises(Conflict):
        batch.close([], "o-1", datetime.now(UTC), date(2026, 12, 2))
    batch.close(transfers, "o-1", datetime.now(UTC), date(2026, 12, 2))
    content = bank_files.pain001(MUNICIPALITY, batch, transfers, date(2026, 12, 2))
    debtor, transactions = pain001_transactions(content)
    assert debtor == MUNICIPALITY.iban and batch.message_id.encode() in content
    assert [(t["end_to_end_id"], t["amount"], t["iban"], t["bic"]) for t in transactions] == [
        ("BK-0000000000000001", "300.00", "NL91ABNA0417164300", "ABNANL2A"),
        ("BK-0000000000000002", "12.50", "DE89370400440532013000", None),
    ]
    assert transactions[1]["name"] == "Gartnerei Muller", "names are written in the SEPA character set"
    closed = batch.events[-1]
    assert isinstance(closed, events.PayoutBatchClosed) and closed.total_cents == 31_250 and closed.payout_count == 2
    assert "NL91" not in closed.model_dump_json(), "no bank account in the event"
    with pytest.raises(Conflict):
        batch.close(transfers, "o-1", datetime.now(UTC), date(2026, 12, 2))


def test_a_camt053_statement_is_read_line_by_line_with_its_references_returns_and_reversals():
    content = camt053(
        "STMT-7",
        MUNICIPALITY.iban,
        [
            Booking("BK-1", 30_000),
            Booking("BK-2", 1_250, debit=False, return_reason="AC04"),
            Booking("BK-3", 500, reversal=True, entry_reference="R1"),
            Booking(None, 99),
        ],
    )
    (statement,) = bank_files.read_camt053(content)
    assert statement.statement_id == "STMT-7" and statement.account_iban == MUNICIPALITY.iban
    assert [
        (x.line, x.end_to_end_id, x.amount_cents, x.debit, x.returned, x.reversal, x.return_reason)
        for x in statement.lines
    ] == [
        ("STMT-7-1/1", "BK-1", 30_000, True, False, False, None),
        ("STMT-7-2/1", "BK-2", 1_250, False, True, False, "AC04"),
        ("R1/1", "BK-3", 500, True, False, True, None),
        ("STMT-7-4/1", None, 99, True, False, False, None),
    ]
    assert bank_files.read_camt053(content) == [statement], "the same statement reads as the same lines"


@pytest.mark.parametrize(
    "content, why",
    [
        (b"not xml", "not well-formed"),
        (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.052.001.02'/>", "not a camt.053.001.02"),
        (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'><BkToCstmrStmt/></Document>", "not valid"),
        (
            b"<?xml version='1.0'?><!DOCTYPE d [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>"
            b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.02'>&e;</Document>",
            "DOCTYPE",
        ),
    ],
)
def test_a_statement_that_is_not_a_valid_camt053_is_refused_naming_the_field(content, why):
    with pytest.raises(InvalidInput) as refused:
        bank_files.read_camt053(content)
    assert refused.value.field == "statement" and why in str(refused.value)
