"""An initiative's bank account as it comes in over HTTP: with a claim, or on its own."""

from __future__ import annotations

from pydantic import Field

from buurtkracht_kit.inputs import Line, Strict

from ...domain.banking import BankAccount


class BankAccountIn(Strict):
    iban: Line = Field(min_length=1, max_length=64, examples=["NL91 ABNA 0417 1643 00"])
    bic: Line | None = Field(None, min_length=1, max_length=20, description="Derived from the IBAN when left out")
    account_holder: Line = Field(min_length=1, max_length=70, description="The name of the account's holder")

    def account(self, field_prefix: str = "") -> BankAccount:
        return BankAccount.parse(self.iban, self.bic, self.account_holder, field_prefix)
