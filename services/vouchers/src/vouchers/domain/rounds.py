"""Budget rounds: an area's budget, held for its residents from opening to closing.

Invariants:
- a round opens with a positive budget and closes after it opens; a pledge round gives every wallet the same
  positive voucher amount, never more than the budget; a committee round needs a quorum of at least one; an Equal
  Shares round has neither: its residents cast ballots, and its close decides (see `equal_shares`);
- opening moves the whole budget from the municipality to the round's pool, once;
- nothing moves in a round before it opens or after it closed (wallets may be issued before it opens);
- a round closes once; closing returns what was not awarded to the municipality.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from buurtkracht_contracts import vouchers as events
from buurtkracht_contracts.event import Event
from buurtkracht_contracts.refusals import Conflict, InvalidInput, NotAllowed

from .ledger import Account, Entry

WALLETS_PER_EVENT = 5_000
EVENT_IDS_BYTES = 256 * 1024  # the resident ids of one event at most, as JSON: far below Kafka's 1 MB a record


class Mechanism(StrEnum):
    COMMITTEE = "committee"
    PLEDGE = "pledge"
    EQUAL_SHARES = "equal_shares"


class RoundStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


@dataclass
class Round:
    id: uuid.UUID
    area_code: str
    name: str
    mechanism: Mechanism
    total_budget_cents: int
    voucher_amount_cents: int | None
    allow_wallet_claims: bool
    committee_quorum: int | None
    opens_at: datetime
    closes_at: datetime
    status: RoundStatus = RoundStatus.OPEN
    events: list[Event] = field(default_factory=list, repr=False, compare=False)

    @classmethod
    def open(
        cls,
        *,
        area_code: str,
        name: str,
        mechanism: Mechanism,
        total_budget_cents: int,
        opens_at: datetime,
        closes_at: datetime,
        voucher_amount_cents: int | None,
        allow_wallet_claims: bool,
        committee_quorum: int | None,
    ) -> tuple[Round, Entry]:
        """The new round, and the entry that moves its budget from the municipality to its pool."""
        if total_budget_cents <= 0:
            raise InvalidInput("the total budget must be positive", "total_budget_cents")
        if closes_at <= opens_at:
            raise InvalidInput("a round closes after it opens", "closes_at")
        if mechanism is Mechanism.PLEDGE:
            if not voucher_amount_cents or voucher_amount_cents <= 0:
                raise InvalidInput(
                    "a pledge round needs a positive voucher amount per resident", "voucher_amount_cents"
                )
            if voucher_amount_cents > total_budget_cents:
                raise InvalidInput("one voucher cannot exceed the total budget", "voucher_amount_cents")
        if mechanism is Mechanism.COMMITTEE and (not committee_quorum or committee_quorum < 1):
            raise InvalidInput("a committee round needs a quorum of at least one member", "committee_quorum")
        round_ = cls(
            id=uuid.uuid4(),
            area_code=area_code,
            name=name,
            mechanism=mechanism,
            total_budget_cents=total_budget_cents,
            voucher_amount_cents=voucher_amount_cents if mechanism is Mechanism.PLEDGE else None,
            allow_wallet_claims=allow_wallet_claims and mechanism is Mechanism.PLEDGE,
            committee_quorum=committee_quorum if mechanism is Mechanism.COMMITTEE else None,
            opens_at=opens_at,
            closes_at=closes_at,
        )
        round_.events.append(
            events.RoundOpened(
                round_id=round_.id,
                area_code=area_code,
                name=name,
                mechanism=mechanism.value,
                total_budget_cents=total_budget_cents,
                voucher_amount_cents=round_.voucher_amount_cents,
                opens_at=opens_at,
                closes_at=closes_at,
            )
        )
        funding = Entry.transfer(
            "round_opened", str(round_.id), Account.municipality(), Account.pool(), total_budget_cents
        )
        return round_, funding

    def is_closed(self, now: datetime) -> bool:
        return self.status is RoundStatus.CLOSED or now >= self.closes_at

    def require_open(self, now: datetime, action: str) -> None:
        if self.is_closed(now):
            raise Conflict(f"cannot {action}: the round is closed", "closed")
        if now < self.opens_at:
            raise Conflict(f"cannot {action}: the round opens at {self.opens_at.isoformat()}", "not_yet_open")

    def require_mechanism(self, mechanism: Mechanism, action: str) -> None:
        if self.mechanism is not mechanism:
            raise Conflict(f"cannot {action} in a {self.mechanism.value} round", self.mechanism.value)

    # -- wallets ---------------------------------------------------------------------------------

    def wallets_for(self, resident_ids: list[str], now: datetime) -> list[str]:
        """The residents to issue a wallet to (each once), where the round still issues wallets."""
        self.require_mechanism(Mechanism.PLEDGE, "issue wallets")
        if self.is_closed(now):
            raise Conflict("cannot issue wallets: the round is closed", "closed")
        unique = list(dict.fromkeys(resident_ids))
        if not unique:
            raise InvalidInput("name at least one resident", "resident_ids")
        if any(not rid or len(rid) > 100 or "," in rid for rid in unique):
            raise InvalidInput("resident ids are 1 to 100 characters, without commas", "resident_ids")
        return unique

    def wallet_claimable(self, lives_in_area: bool, now: datetime) -> None:
        """Whether a resident may claim their own wallet now (issuing it may still find they have one)."""
        self.require_mechanism(Mechanism.PLEDGE, "claim a wallet")
        self.require_open(now, "claim a wallet")
        if not lives_in_area:
            raise NotAllowed(f"only residents of {self.area_code} can claim a wallet in this round")
        if not self.allow_wallet_claims:
            raise Conflict("this round issues wallets to a list of residents; it does not take claims", "no_claims")

    def wallets_issued(self, resident_ids: list[str]) -> None:
        """Record the wallets the ledger opened, in order, in events of at most `WALLETS_PER_EVENT` residents whose
        ids take at most `EVENT_IDS_BYTES` as JSON (an id of 100 four-byte characters escapes to 600 bytes), so
        every event fits in one Kafka record."""
        amount = self.voucher_amount_cents or 0
        for batch in _chunks(resident_ids, WALLETS_PER_EVENT, EVENT_IDS_BYTES):
            self.events.append(
                events.WalletsIssued(
                    round_id=self.id,
                    area_code=self.area_code,
                    resident_ids=batch,
                    voucher_amount_cents=amount,
                    issued_cents=amount * len(batch),
                )
            )

    # -- ballots (Equal Shares rounds) -------------------------------------------------------------

    def ballot_castable(self, lives_in_area: bool, now: datetime) -> None:
        """Whether a resident may cast (or change) their ballot now: only in an open Equal Shares round, only a
        resident of its area."""
        self.require_mechanism(Mechanism.EQUAL_SHARES, "cast a ballot")
        if not lives_in_area:
            raise NotAllowed(f"only residents of {self.area_code} can cast a ballot in this round")
        self.require_open(now, "cast a ballot")

    def ballot_cast(self, resident_id: str, initiative_ids: list[uuid.UUID]) -> None:
        """A resident's ballot changed: the whole ballot, replacing the one before."""
        self.events.append(
            events.BallotCast(
                round_id=self.id, area_code=self.area_code, resident_id=resident_id, initiative_ids=initiative_ids
            )
        )

    # -- closing ---------------------------------------------------------------------------------

    def require_closable(self) -> None:
        if self.status is RoundStatus.CLOSED:
            raise Conflict("the round is closed already", "closed")

    def close(
        self,
        returned_cents: int,
        awarded_cents: int,
        awarded_ids: list[uuid.UUID],
        unawarded_ids: list[uuid.UUID],
    ) -> None:
        """Closed: `returned_cents` went from the pool to the municipality; the summary says what was awarded."""
        self.require_closable()
        self.status = RoundStatus.CLOSED
        if returned_cents:
            self.events.append(self.funds_returned(returned_cents, "round_closed"))
        self.events.append(
            events.RoundClosed(
                round_id=self.id,
                area_code=self.area_code,
                name=self.name,
                mechanism=self.mechanism.value,
                summary=events.RoundSummary(
                    total_budget_cents=self.total_budget_cents,
                    awarded_cents=awarded_cents,
                    returned_to_pool_cents=returned_cents,
                    awarded_initiative_ids=awarded_ids,
                    unawarded_initiative_ids=unawarded_ids,
                ),
            )
        )

    def returns_to(self) -> tuple[Account, str]:
        """Where money an initiative gives back goes: the pool while the round is open, else the municipality
        (the `returned` account), and how FundsReturned names that."""
        if self.status is RoundStatus.CLOSED:
            return Account.returned(), "municipality"
        return Account.pool(), "pool"

    def funds_returned(
        self, amount_cents: int, reason: str, initiative_id: uuid.UUID | None = None, *, to: str | None = None
    ) -> events.FundsReturned:
        """The FundsReturned that tells `amount_cents` of this round went back for `reason` (of an initiative, or
        of the round itself): to where `returns_to()` sends it now, unless `to` names where (the wallets)."""
        return events.FundsReturned(
            round_id=self.id,
            area_code=self.area_code,
            initiative_id=initiative_id,
            amount_cents=amount_cents,
            reason=reason,
            to=to or self.returns_to()[1],
        )


def _chunks(ids: list[str], most: int, most_bytes: int) -> Iterator[list[str]]:
    """`ids` in order, in chunks of at most `most` ids taking at most `most_bytes` as a JSON list."""
    chunk: list[str] = []
    size = 2
    for resident_id in ids:
        grows = len(json.dumps(resident_id)) + 1  # the string, escaped, and its comma
        if chunk and (len(chunk) == most or size + grows > most_bytes):
            yield chunk
            chunk, size = [], 2
        chunk.append(resident_id)
        size += grows
    if chunk:
        yield chunk
