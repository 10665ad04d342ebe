"""The files exchanged with the bank, in ISO 20022 XML: the SEPA credit-transfer initiation (pain.001.001.03, written
with sepaxml, which validates it against the official XSD it ships) and the bank-to-customer statement (camt.053.001.02,
as Dutch banks send it), read with lxml after validating it against the official XSD committed beside this module
(`schemas/`, see its NOTICE). A statement that is not well-formed XML, is not camt.053.001.02 or does not validate is
refused as invalid input naming the field `statement`; entities, DTDs and the network are never resolved."""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from pathlib import Path

from lxml import etree
from sepaxml import SepaTransfer

from buurtkracht_contracts.refusals import InvalidInput

from ..domain.banking import Debtor, PayoutBatch, Statement, StatementLine, Transfer

CAMT053 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
CAMT053_XSD = Path(__file__).resolve().parent / "schemas" / "camt.053.001.02.xsd"
PAIN001 = "pain.001.001.03"
MAX_STATEMENT_BYTES = 20 << 20


class _BatchTransfer(SepaTransfer):  # type: ignore[misc]
    """sepaxml's credit transfer, its message id (GrpHdr/MsgId) the batch's instead of a random one."""

    def __init__(self, config: dict[str, object], message_id: str) -> None:
        self._message_id = message_id
        super().__init__(config, schema=PAIN001, clean=True)

    def _create_header(self) -> None:
        self.msg_id = self._message_id
        super()._create_header()


def pain001(debtor: Debtor, batch: PayoutBatch, transfers: list[Transfer], execution_date: date) -> bytes:
    """The batch's SEPA credit-transfer file: one payment information block from the municipality's account, one
    transaction per payout, its end-to-end id the payout's reference."""
    sepa = _BatchTransfer(
        {"name": debtor.name, "IBAN": debtor.iban, "BIC": debtor.bic, "batch": True, "currency": "EUR"},
        batch.message_id,
    )
    for transfer in transfers:
        payment = {
            "name": transfer.account.holder,
            "IBAN": transfer.account.iban,
            "amount": transfer.amount_cents,
            "execution_date": execution_date,
            "description": transfer.description,
            "endtoend_id": transfer.reference,
        }
        if transfer.account.bic:
            payment["BIC"] = transfer.account.bic
        sepa.add_payment(payment)
    return sepa.export(validate=True)


@cache
def _camt053_schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(CAMT053_XSD), _parser()))


def _parser() -> etree.XMLParser:
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _refused(message: str) -> InvalidInput:
    return InvalidInput(f"statement: {message}", "statement")


def read_camt053(content: bytes) -> list[Statement]:
    """The statements of a camt.053.001.02 document, each with its lines: one per transaction of each entry."""
    if len(content) > MAX_STATEMENT_BYTES:
        raise _refused(f"larger than {MAX_STATEMENT_BYTES} bytes")
    try:
        document = etree.fromstring(content, _parser())
    except etree.XMLSyntaxError as error:
        raise _refused(f"not well-formed XML ({error})") from None
    if document.getroottree().docinfo.doctype:
        raise _refused("a document type declaration (DOCTYPE) is not allowed")
    if document.tag != f"{{{CAMT053}}}Document":
        raise _refused(f"not a camt.053.001.02 document (root {document.tag})")
    schema = _camt053_schema()
    try:
        valid = schema.validate(document)
    except etree.XMLSchemaValidateError:
        valid = False
    if not valid:
        first = schema.error_log.last_error
        where = f" (line {first.line}: {first.message})" if first is not None else ""
        raise _refused(f"not valid against the camt.053.001.02 schema{where}")
    ns = {"c": CAMT053}
    return [_statement(stmt, ns) for stmt in document.iterfind("c:BkToCstmrStmt/c:Stmt", ns)]


def _text(element: etree._Element, path: str, ns: dict[str, str]) -> str | None:
    found = element.findtext(path, namespaces=ns)
    return found.strip() if found is not None and found.strip() else None


def _cents(amount: etree._Element) -> int:
    try:
        value = Decimal(amount.text or "")
    except InvalidOperation:
        raise _refused(f"amount {amount.text!r} is not a number") from None
    cents = value * 100
    if cents != cents.to_integral_value():
        raise _refused(f"amount {amount.text} has more than two decimals")
    return int(cents)


def _statement(stmt: etree._Element, ns: dict[str, str]) -> Statement:
    statement_id = _text(stmt, "c:Id", ns) or ""
    lines: list[StatementLine] = []
    seen: set[str] = set()
    for position, entry in enumerate(stmt.iterfind("c:Ntry", ns), start=1):
        entry_ref = _text(entry, "c:NtryRef", ns) or _text(entry, "c:AcctSvcrRef", ns) or f"#{position}"
        if entry_ref in seen:  # a reference the bank repeated within the statement: its position tells them apart
            entry_ref = f"{entry_ref}#{position}"
        seen.add(entry_ref)
        debit = _text(entry, "c:CdtDbtInd", ns) == "DBIT"
        reversal = (_text(entry, "c:RvslInd", ns) or "false") == "true"
        booked = _text(entry, "c:BookgDt/c:Dt", ns) or (_text(entry, "c:BookgDt/c:DtTm", ns) or "")[:10] or None
        entry_amount = entry.find("c:Amt", ns)
        bank_reference = _text(entry, "c:AcctSvcrRef", ns) or f"{statement_id}/{entry_ref}"
        transactions = entry.findall("c:NtryDtls/c:TxDtls", ns)
        for number, tx in enumerate(transactions or [None], start=1):
            amount = entry_amount
            end_to_end, reason, returned = None, None, False
            if tx is not None:
                amount = next(
                    (
                        a
                        for a in (tx.find("c:AmtDtls/c:TxAmt/c:Amt", ns), tx.find("c:AmtDtls/c:InstdAmt/c:Amt", ns))
                        if a is not None
                    ),
                    entry_amount if len(transactions) == 1 else None,
                )
                if amount is None:
                    raise _refused(f"entry {entry_ref}, transaction {number} has no amount of its own")
                end_to_end = _text(tx, "c:Refs/c:EndToEndId", ns)
                returned = tx.find("c:RtrInf", ns) is not None
                reason = _text(tx, "c:RtrInf/c:Rsn/c:Cd", ns) or _text(tx, "c:RtrInf/c:Rsn/c:Prtry", ns)
            assert amount is not None
            lines.append(
                StatementLine(
                    line=f"{entry_ref}/{number}",
                    end_to_end_id=end_to_end if end_to_end != "NOTPROVIDED" else None,
                    amount_cents=_cents(amount),
                    currency=amount.get("Ccy", ""),
                    debit=debit,
                    reversal=reversal,
                    return_reason=reason,
                    returned=returned,
                    booked_on=date.fromisoformat(booked) if booked else None,
                    bank_reference=bank_reference if len(transactions) <= 1 else f"{bank_reference}/{number}",
                )
            )
    return Statement(statement_id, _text(stmt, "c:Acct/c:Id/c:IBAN", ns), lines)
