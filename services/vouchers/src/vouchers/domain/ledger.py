"""The double-entry ledger, in integer euro cents.

Every movement of money is one journal entry whose lines add up to exactly zero; entries are never
changed or removed. Each round has its own accounts. Only the `municipality` account of a round may
go below zero: its balance is minus the round's total budget, the money the municipality put in.
Every other balance is zero or more, so no account is ever overdrawn and, because every entry is
balanced, the accounts of a round always add up to zero: no cent is created or lost.

    municipality → pool → wallet (residents, pledge rounds) → pledged (per initiative, until awarded)
                    pool / pledged → budget (per initiative, awarded and unspent) → held (claims) →
                    payable (payout requested) → paid (payout confirmed);  unspent → pool → returned
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from buurtkracht_contracts.refusals import Conflict


class Kind(StrEnum):
    MUNICIPALITY = "municipality"
    POOL = "pool"
    WALLET = "wallet"
    PLEDGED = "pledged"
    BUDGET = "budget"
    HELD = "held"
    PAYABLE = "payable"
    PAID = "paid"
    RETURNED = "returned"


@dataclass(frozen=True)
class Account:
    """An account of a round: its kind and, for wallets and initiative accounts, whose it is."""

    kind: Kind
    owner: str = ""

    @classmethod
    def municipality(cls) -> Account:
        return cls(Kind.MUNICIPALITY)

    @classmethod
    def pool(cls) -> Account:
        return cls(Kind.POOL)

    @classmethod
    def returned(cls) -> Account:
        return cls(Kind.RETURNED)

    @classmethod
    def wallet(cls, resident_id: str) -> Account:
        return cls(Kind.WALLET, resident_id)

    @classmethod
    def of_initiative(cls, kind: Kind, initiative_id: object) -> Account:
        return cls(kind, str(initiative_id))


class Unbalanced(ValueError):
    pass


class InsufficientFunds(Conflict):
    """The account a movement would take money from does not hold enough."""

    kind = "insufficient-funds"
    CURRENT_STATUS = "insufficient_funds"

    def __init__(self, message: str) -> None:
        super().__init__(message, self.CURRENT_STATUS)


@dataclass(frozen=True)
class Entry:
    """One balanced journal entry. `reference` names the command it records; (kind, reference) is unique,
    so a command is booked at most once."""

    kind: str
    reference: str
    lines: tuple[tuple[Account, int], ...]

    def __post_init__(self) -> None:
        if not self.lines:
            raise Unbalanced("an entry needs lines")
        if sum(amount for _, amount in self.lines) != 0:
            raise Unbalanced(f"entry {self.kind}/{self.reference} does not balance")
        if any(amount == 0 or not isinstance(amount, int) for _, amount in self.lines):
            raise Unbalanced("every line moves a non-zero integer number of cents")

    @classmethod
    def transfer(cls, kind: str, reference: str, source: Account, target: Account, cents: int) -> Entry:
        """Move `cents` (> 0) from `source` to `target`."""
        if cents <= 0:
            raise Unbalanced("a transfer moves a positive amount")
        return cls(kind, reference, ((source, -cents), (target, cents)))
