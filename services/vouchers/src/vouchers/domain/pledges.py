"""Wallets and pledges (pledge rounds): a resident gives vouchers from their wallet to an approved initiative.

Invariants:
- a pledge goes only to an approved, not yet awarded initiative of the round's area, while the round is open;
- it never takes more than the initiative still needs (the last pledge is capped, the rest stays in the wallet),
  and never more than the wallet holds;
- a pledge is withdrawn (by its resident) or given back (the initiative withdrawn, the round closed) only while
  active, and its whole amount goes back to the wallet;
- every event tells the balances as they are when its transaction commits.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Literal

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput

from .initiatives import Initiative
from .ledger import Account, Entry, InsufficientFunds, Kind
from .rounds import Round

GivenBack = Literal["initiative_withdrawn", "round_closed"]


class PledgeStatus(StrEnum):
    ACTIVE = "active"
    AWARDED = "awarded"
    WITHDRAWN = "withdrawn"
    RETURNED = "returned"


@dataclass
class Wallet:
    """A resident's vouchers in a round: a ledger account of the round."""

    round_id: uuid.UUID
    resident_id: str
    balance_cents: int

    @property
    def account(self) -> Account:
        return Account.wallet(self.resident_id)


def claimed_wallet_reference(round_id: uuid.UUID, resident_id: str) -> str:
    """The journal reference of the issuance of a wallet a resident claimed themselves. It names the resident by the
    SHA-256 of their id, not the id: forgetting them leaves the append-only journal as it is, and the reference stays
    taken, so nobody claims a second wallet in a round by being forgotten in between."""
    return f"{round_id}:claim:{hashlib.sha256(resident_id.encode()).hexdigest()}"


def pledge_take(requested_cents: int, approved_cents: int, pledged_so_far_cents: int) -> int:
    """How much of a pledge is taken: never more than the initiative still needs."""
    if requested_cents <= 0:
        raise InvalidInput("a pledge is a positive amount", "amount_cents")
    still_needed = approved_cents - pledged_so_far_cents
    if still_needed <= 0:
        raise Conflict("the initiative needs no more pledges", "awarded")
    return min(requested_cents, still_needed)


@dataclass
class Pledge:
    id: uuid.UUID
    round_id: uuid.UUID
    initiative_id: uuid.UUID
    resident_id: str
    amount_cents: int
    requested_cents: int
    status: PledgeStatus
    created_at: datetime
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def make(
        cls,
        round_: Round,
        initiative: Initiative,
        wallet: Wallet,
        requested_cents: int,
        pledged_cents: int,
        now: datetime,
    ) -> tuple[Pledge, Entry]:
        """A pledge from `wallet` to `initiative`, which has `pledged_cents` pledged in the round so far; the
        entry moves what is taken from the wallet to the initiative's pledges."""
        initiative.require_pledgeable_in(round_)
        take = pledge_take(requested_cents, initiative.approved_amount_cents, pledged_cents)
        if wallet.balance_cents < take:
            raise InsufficientFunds(f"your wallet holds {wallet.balance_cents} cents, the pledge takes {take}")
        pledge = cls(
            uuid.uuid4(),
            round_.id,
            initiative.id,
            wallet.resident_id,
            take,
            requested_cents,
            PledgeStatus.ACTIVE,
            now,
        )
        wallet.balance_cents -= take
        pledge.events.append(
            events.PledgeMade(
                round_id=round_.id,
                area_code=round_.area_code,
                pledge_id=pledge.id,
                initiative_id=initiative.id,
                resident_id=wallet.resident_id,
                amount_cents=take,
                requested_amount_cents=requested_cents,
                wallet_balance_cents=wallet.balance_cents,
                pledged_to_initiative_cents=pledged_cents + take,
            )
        )
        return pledge, Entry.transfer("pledge", str(pledge.id), wallet.account, pledge.pledged_account, take)

    @property
    def pledged_account(self) -> Account:
        return Account.of_initiative(Kind.PLEDGED, self.initiative_id)

    def require_active(self, action: str) -> None:
        if self.status is not PledgeStatus.ACTIVE:
            raise Conflict(f"the pledge is {self.status.value} and can no longer be {action}", self.status.value)

    def withdraw(self, round_: Round, wallet: Wallet, pledged_cents: int) -> Entry:
        """The resident takes the pledge back into `wallet`; the initiative had `pledged_cents` pledged."""
        self.require_active("withdrawn")
        self.status = PledgeStatus.WITHDRAWN
        wallet.balance_cents += self.amount_cents
        self.events.append(
            events.PledgeWithdrawn(
                round_id=round_.id,
                area_code=round_.area_code,
                pledge_id=self.id,
                initiative_id=self.initiative_id,
                resident_id=self.resident_id,
                amount_cents=self.amount_cents,
                wallet_balance_cents=wallet.balance_cents,
                pledged_to_initiative_cents=pledged_cents - self.amount_cents,
                reason="withdrawn_by_resident",
            )
        )
        return Entry.transfer("pledge_withdrawn", str(self.id), self.pledged_account, wallet.account, self.amount_cents)


def award(pledges: list[Pledge]) -> None:
    """The active pledges that made their initiative's award: they are its budget now."""
    for pledge in pledges:
        pledge.require_active("awarded")
        pledge.status = PledgeStatus.AWARDED


def give_back(round_: Round, pledges: list[Pledge], reason: GivenBack, wallets: Mapping[str, int]) -> list[Entry]:
    """Every active pledge of the round to the initiatives concerned back to its wallet, `wallets` holding what
    each pledger's wallet held before. The events tell the balances as they are when the transaction commits:
    each initiative holds no pledges in the round any more, and each wallet what it held plus all its pledges
    given back — or nothing when the round closes, since its wallets then expire to the pool (`wallets` is not
    needed then)."""
    after = dict(wallets)
    for pledge in pledges:
        pledge.require_active("given back")
        pledge.status = PledgeStatus.RETURNED
        after[pledge.resident_id] = after.get(pledge.resident_id, 0) + pledge.amount_cents
    entries = []
    for pledge in pledges:
        pledge.events.append(
            events.PledgeWithdrawn(
                round_id=round_.id,
                area_code=round_.area_code,
                pledge_id=pledge.id,
                initiative_id=pledge.initiative_id,
                resident_id=pledge.resident_id,
                amount_cents=pledge.amount_cents,
                wallet_balance_cents=0 if reason == "round_closed" else after[pledge.resident_id],
                pledged_to_initiative_cents=0,
                reason=reason,
            )
        )
        entries.append(
            Entry.transfer(
                "pledge_returned",
                str(pledge.id),
                pledge.pledged_account,
                Account.wallet(pledge.resident_id),
                pledge.amount_cents,
            )
        )
    return entries
