"""Pledging and withdrawing pledges. A pledge holds its round (shared), then its initiative's row — which
serialises the pledges to one initiative, so the cap is exact and the award happens exactly once — then the
resident's wallet."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from buurtkracht_contracts.refusals import NotFound
from buurtkracht_kit.auth import Principal

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain import pledges
from ..domain.ledger import Account, Kind
from ..domain.pledges import GivenBack, Pledge
from ..domain.rounds import Mechanism, Round
from .access import found
from .awards import KNOWN_APPROVED, lapse
from .locking import lock


@dataclass(frozen=True)
class PledgeResult:
    pledge: Pledge
    wallet_balance_cents: int
    pledged_to_initiative_cents: int
    awarded: bool


async def pledge(
    uow: VouchersUnitOfWork,
    actor: Principal,
    round_id: uuid.UUID,
    initiative_id: uuid.UUID,
    amount_cents: int,
    now: datetime,
) -> PledgeResult:
    locked = await lock(uow, round_id=round_id, initiative_id=initiative_id)
    round_ = found(locked.round, f"round {round_id}")
    round_.require_mechanism(Mechanism.PLEDGE, "pledge")
    round_.require_open(now, "pledge")
    initiative = found(locked.initiative, f"initiative {initiative_id} {KNOWN_APPROVED}")
    initiative.require_pledgeable_in(round_)
    wallet = found(
        await uow.ledger.wallet(round_id, actor.subject, for_update=True), f"your wallet in round {round_id}"
    )
    pledged = await uow.ledger.balance(round_id, Account.of_initiative(Kind.PLEDGED, initiative_id)) or 0
    made, entry = Pledge.make(round_, initiative, wallet, amount_cents, pledged, now)
    await uow.ledger.post(round_id, entry)
    await uow.pledges.add(made)
    uow.collect(made)
    pledged += made.amount_cents
    award = initiative.award_by_pledges(round_, pledged)
    if award is not None:
        awarded = await uow.pledges.active(round_id, initiative_id)
        pledges.award(awarded)
        await uow.pledges.save(awarded)
        await uow.ledger.post(round_id, award)
        await uow.initiatives.save(initiative)
        await lapse(uow, initiative_ids=[initiative_id])
        uow.collect(initiative)
    return PledgeResult(made, wallet.balance_cents, pledged, award is not None)


async def withdraw_pledge(
    uow: VouchersUnitOfWork, actor: Principal, round_id: uuid.UUID, pledge_id: uuid.UUID, now: datetime
) -> PledgeResult:
    locked = await lock(uow, round_id=round_id, pledge_id=pledge_id)
    round_ = found(locked.round, f"round {round_id}")
    round_.require_open(now, "withdraw a pledge")
    if locked.pledge is None or locked.pledge.resident_id != actor.subject:
        raise NotFound(f"pledge {pledge_id}")
    withdrawn = locked.pledge
    withdrawn.require_active("withdrawn")
    wallet = found(await uow.ledger.wallet(round_id, actor.subject, for_update=True), "your wallet")
    pledged = await uow.ledger.balance(round_id, withdrawn.pledged_account) or 0
    entry = withdrawn.withdraw(round_, wallet, pledged)
    await uow.ledger.post(round_id, entry)
    await uow.pledges.save([withdrawn])
    uow.collect(withdrawn)
    return PledgeResult(withdrawn, wallet.balance_cents, pledged - withdrawn.amount_cents, False)


async def give_back_pledges(
    uow: VouchersUnitOfWork, round_: Round, initiative_id: uuid.UUID | None, reason: GivenBack
) -> int:
    """Every active pledge of the round (to one initiative, or to all) back to its wallet; returns the cents."""
    given_back = await uow.pledges.active(round_.id, initiative_id)
    if not given_back:
        return 0
    wallets = {}
    if reason != "round_closed":
        wallets = await uow.ledger.wallet_balances(round_.id, sorted({p.resident_id for p in given_back}))
    await uow.ledger.post_all(round_.id, pledges.give_back(round_, given_back, reason, wallets))
    await uow.pledges.save(given_back)
    uow.collect(*given_back)
    return sum(p.amount_cents for p in given_back)
