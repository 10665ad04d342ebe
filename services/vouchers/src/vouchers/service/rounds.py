"""Opening and closing budget rounds. Opening books the whole budget into the round's pool with the round;
closing (by an official, or at `closes_at`) holds the round exclusively, so no command of the round is in
flight: an Equal Shares round decides and books its awards (`equal_shares.decide`), pledges go back, wallets expire
to the pool, and the pool goes back to the municipality."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from buurtkracht_contracts.refusals import Conflict
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.ledger import Account, Kind
from ..domain.rounds import Mechanism, Round
from . import equal_shares
from .access import found, require
from .awards import lapse
from .locking import lock
from .pledges import give_back_pledges


async def open_round(
    uow: VouchersUnitOfWork,
    actor: Principal,
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
) -> Round:
    require(actor, {Role.OFFICIAL}, area_code, "open a budget round")
    round_, funding = Round.open(
        area_code=area_code,
        name=name,
        mechanism=mechanism,
        total_budget_cents=total_budget_cents,
        opens_at=opens_at,
        closes_at=closes_at,
        voucher_amount_cents=voucher_amount_cents,
        allow_wallet_claims=allow_wallet_claims,
        committee_quorum=committee_quorum,
    )
    await uow.rounds.add(round_, actor.subject)
    await uow.ledger.post(round_.id, funding)
    uow.collect(round_)
    return round_


async def close_round(
    uow: VouchersUnitOfWork, actor: Principal | None, round_id: uuid.UUID, now: datetime
) -> dict[str, int]:
    """Close the round: by an official (`actor`), or by the service itself (None) once `closes_at` passed."""
    round_ = found((await lock(uow, round_id=round_id, exclusive=True)).round, f"round {round_id}")
    if actor is not None:
        require(actor, {Role.OFFICIAL}, round_.area_code, "close this round")
    round_.require_closable()
    if round_.mechanism is Mechanism.EQUAL_SHARES:
        await equal_shares.decide(uow, round_)
    candidates = await uow.initiatives.left_unawarded_by(round_)
    unawarded = await uow.initiatives.expire_if_still_approved(candidates)  # re-checked under each row's lock
    await lapse(uow, round_id=round_id, initiative_ids=unawarded)  # after the initiatives' rows: the lock order
    await give_back_pledges(uow, round_, None, "round_closed")
    await uow.ledger.sweep(round_id, Kind.WALLET, Account.pool(), "wallets_expired", str(round_id))
    returned = await uow.ledger.sweep(round_id, Kind.POOL, Account.returned(), "round_closed", str(round_id))
    awarded_ids, awarded_cents = await uow.initiatives.awarded_in(round_id)
    round_.close(returned, awarded_cents, awarded_ids, unawarded)
    await uow.rounds.save(round_)
    uow.collect(round_)
    return {"awarded_cents": awarded_cents, "returned_cents": returned}


async def close_due_rounds(unit_of_work: Callable[[], VouchersUnitOfWork], now: datetime) -> int:
    """Close every open round whose closing time passed, each in a unit of work of its own; returns how many."""
    async with unit_of_work() as uow:
        due = await uow.rounds.due(now)
    closed = 0
    for round_id in due:
        async with unit_of_work() as uow:
            try:
                await close_round(uow, None, round_id, now)
            except Conflict:
                continue  # another replica closed it
            await uow.commit()
            closed += 1
    return closed
