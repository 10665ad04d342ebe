"""camt.053.001.02 bank statements as a Dutch bank sends them, built for tests and checked against the official XSD
the service validates uploads with; and a reader of pain.001 files that validates them against sepaxml's XSD."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import sepaxml
import xmlschema
from lxml import etree
from lxml.builder import ElementMaker
from vouchers.adapters.bank_files import CAMT053, CAMT053_XSD

PAIN001_XSD = Path(sepaxml.__file__).resolve().parent / "schemas" / "pain.001.001.03.xsd"
PAIN001 = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"


@dataclass(frozen=True)
class Booking:
    """One entry of a statement: a transfer the bank booked (a debit of our account), or a transfer that came back
    (a credit with return information, or the same debit reversed)."""

    end_to_end_id: str | None
    amount_cents: int
    debit: bool = True
    reversal: bool = False
    return_reason: str | None = None
    entry_reference: str | None = None


def _amount(cents: int) -> str:
    return f"{Decimal(cents) / 100:.2f}"


def camt053(statement_id: str, iban: str, bookings: list[Booking], booked_on: date = date(2026, 12, 2)) -> bytes:
    """A statement of account `iban`, each booking an entry with one transaction; valid against the XSD."""
    E = ElementMaker(namespace=CAMT053, nsmap={None: CAMT053})
    day = booked_on.isoformat()
    entries = []
    for n, booking in enumerate(bookings, start=1):
        details = [E.Refs(E.EndToEndId(booking.end_to_end_id or "NOTPROVIDED"))]
        details.append(E.AmtDtls(E.TxAmt(E.Amt(_amount(booking.amount_cents), Ccy="EUR"))))
        if booking.return_reason:
            details.append(E.RtrInf(E.Rsn(E.Cd(booking.return_reason))))
        parts = [
            E.NtryRef(booking.entry_reference or f"{statement_id}-{n}"),
            E.Amt(_amount(booking.amount_cents), Ccy="EUR"),
            E.CdtDbtInd("DBIT" if booking.debit else "CRDT"),
        ]
        if booking.reversal:
            parts.append(E.RvslInd("true"))
        parts += [
            E.Sts("BOOK"),
            E.BookgDt(E.Dt(day)),
            E.ValDt(E.Dt(day)),
            E.AcctSvcrRef(f"BANKREF-{statement_id}-{n}"),
            E.BkTxCd(
                E.Domn(E.Cd("PMNT"), E.Fmly(E.Cd("ICDT"), E.SubFmlyCd("RRTN" if booking.return_reason else "ESCT")))
            ),
            E.NtryDtls(E.TxDtls(*details)),
        ]
        entries.append(E.Ntry(*parts))
    document = E.Document(
        E.BkToCstmrStmt(
            E.GrpHdr(E.MsgId(f"MSG-{statement_id}"), E.CreDtTm(f"{day}T18:00:00")),
            E.Stmt(
                E.Id(statement_id),
                E.CreDtTm(f"{day}T18:00:00"),
                E.Acct(E.Id(E.IBAN(iban))),
                E.Bal(
                    E.Tp(E.CdOrPrtry(E.Cd("OPBD"))),
                    E.Amt("100000.00", Ccy="EUR"),
                    E.CdtDbtInd("CRDT"),
                    E.Dt(E.Dt(day)),
                ),
                *entries,
            ),
        )
    )
    etree.XMLSchema(etree.parse(str(CAMT053_XSD))).assertValid(document)
    return etree.tostring(document, xml_declaration=True, encoding="UTF-8")


def pain001_transactions(content: bytes) -> tuple[str, list[dict[str, str | None]]]:
    """The debtor's IBAN and the transactions of a pain.001.001.03 file, after validating it against the XSD
    sepaxml ships."""
    schema = xmlschema.XMLSchema(str(PAIN001_XSD))
    schema.validate(content.decode())
    document = etree.fromstring(content)
    ns = {"p": PAIN001}
    debtor = document.findtext(".//p:DbtrAcct/p:Id/p:IBAN", namespaces=ns) or ""
    return debtor, [
        {
            "end_to_end_id": tx.findtext("p:PmtId/p:EndToEndId", namespaces=ns),
            "amount": tx.findtext("p:Amt/p:InstdAmt", namespaces=ns),
            "iban": tx.findtext("p:CdtrAcct/p:Id/p:IBAN", namespaces=ns),
            "name": tx.findtext("p:Cdtr/p:Nm", namespaces=ns),
            "bic": tx.findtext("p:CdtrAgt/p:FinInstnId/p:BIC", namespaces=ns),
        }
        for tx in document.iterfind(".//p:CdtTrfTxInf", ns)
    ]
