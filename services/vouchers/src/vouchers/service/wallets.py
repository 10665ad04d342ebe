"""Issuing wallets (pledge rounds): in bulk from a list of residents, or to a resident who claims their own.
Issuance is set-based (the ledger opens every new wallet and funds them from the pool in one entry, in one
statement), so a city of a million residents is issued in seconds; a resident never gets a second wallet in a
round. The WalletsIssued events name exactly the residents who got one and leave through the outbox with the
same commit."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit.auth import Principal, Role

from ..adapters.ledger import DuplicateEntry
from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.pledges import claimed_wallet_reference
from .access import found, require
from .locking import lock


@dataclass(frozen=True)
class Issuance:
    issued: int
    already_had_a_wallet: int
    issued_cents: int


async def issue_wallets(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, resident_ids: list[str], now: datetime
) -> Issuance:
    round_ = found((await lock(uow, round_id=round_id)).round, f"round {round_id}")
    require(actor, {Role.OFFICIAL}, round_.area_code, "issue wallets")
    residents = round_.wallets_for(resident_ids, now)
    amount = round_.voucher_amount_cents or 0
    issued = await uow.ledger.issue_wallets(round_id, residents, amount, reference=f"{round_id}:{uuid.uuid4()}")
    round_.wallets_issued(issued)
    uow.collect(round_)
    return Issuance(len(issued), len(residents) - len(issued), amount * len(issued))


async def claim_wallet(uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, now: datetime) -> int:
    """A resident of the round's area claims their own wallet, where the round allows it; returns what it holds."""
    round_ = found((await lock(uow, round_id=round_id)).round, f"round {round_id}")
    round_.wallet_claimable(actor.has(Role.RESIDENT) and actor.lives_in(round_.area_code), now)
    amount = round_.voucher_amount_cents or 0
    try:
        issued = await uow.ledger.issue_wallets(
            round_id, [actor.subject], amount, reference=claimed_wallet_reference(round_id, actor.subject)
        )
    except DuplicateEntry:  # claimed before, under an id since forgotten
        issued = []
    if not issued:
        raise Conflict("you already have a wallet in this round", "has_wallet")
    round_.wallets_issued(issued)
    uow.collect(round_)
    return amount
