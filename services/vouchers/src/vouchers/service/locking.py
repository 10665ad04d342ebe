"""The one lock order of every command: the round (an advisory lock, shared by the commands that move money in
it, exclusive for closing it), then the initiative's row, then the pledge, claim, payout or award proposal row,
then ledger accounts. No two commands wait for each other in opposite orders, so they never deadlock; and whatever
a command decides on it reads once it holds the locks (read to learn what to lock, lock, read again). Lapsing open
award proposals keeps the order: an award or a withdrawal lapses the initiative's proposals in every round while it
holds the initiative's row, a close lapses its round's proposals while it holds the round exclusively and after
the initiatives' rows it expires; and a command on a proposal takes its round and initiative before its row.

One command moves money in rounds it does not hold: an initiative withdrawn before its award gives its active
pledges back to the wallets in every round it has them in (`reactions.initiative_withdrawn`). It learns those
rounds for certain only once it holds the initiative's row (a pledge in flight commits first), and taking a round
after that row would invert the order: a pledge in that round holds the round and waits for the row, a close
queued on the round waits for the pledge, and the reaction would wait for the close. It is safe without the rounds
because of the pledge rows: it gives back only pledges it locked (`FOR UPDATE`, in the order they were made) and
read again as active, while a close locks every active pledge of its round before it moves any money in it, and no
pledge becomes active in a round while its close holds it. So either the reaction's give-back commits before the
close reads the pledges — the close waits for those rows, then sweeps the wallets the give-back filled — or the
close gave them back first and the reaction finds none active there. The accounts it moves (the initiative's
pledged account, the wallets) it locks after the pledges, in account order, as every command does.

An area's steering group has a lock of its own, taken only by the command that registers the group, which holds
no other lock; the commands that read the group (awards, claim decisions) do not lock it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from ..adapters.rounds import RoundLock
from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.awards import Award
from ..domain.initiatives import Initiative
from ..domain.pledges import Pledge
from ..domain.rounds import Round
from ..domain.spending import Claim, Payout
from ..domain.steering import SteeringGroup


@dataclass(frozen=True)
class Locked:
    """What a command holds the locks of; None where it does not exist (the command says what that means)."""

    round: Round | None = None
    initiative: Initiative | None = None
    pledge: Pledge | None = None
    claim: Claim | None = None
    payout: Payout | None = None
    award: Award | None = None


async def lock(
    uow: VouchersUnitOfWork,
    *,
    round_id: uuid.UUID | None = None,
    exclusive: bool = False,
    initiative_id: uuid.UUID | None = None,
    pledge_id: uuid.UUID | None = None,
    claim_id: uuid.UUID | None = None,
    payout_id: uuid.UUID | None = None,
    award_id: uuid.UUID | None = None,
) -> Locked:
    """Lock, in order, the round, the initiative and the pledge, claim, payout or award proposal a command names,
    and load them.

    A pledge, claim, payout or proposal names its round and initiative; an initiative without a named round, the
    round that awarded it. A pledge or proposal counts only in the round named with it. When a named round,
    initiative or pledge, claim, payout or proposal does not exist, nothing after it is locked."""
    pledge = claim = payout = award = None
    if pledge_id is not None:
        pledge = await uow.pledges.get(pledge_id)
        if pledge is None or round_id not in (None, pledge.round_id):
            return Locked(round=await _round(uow, round_id, exclusive))
        round_id, initiative_id = pledge.round_id, pledge.initiative_id
    if claim_id is not None:
        claim = await uow.claims.get(claim_id)
        if claim is None:
            return Locked()
        round_id, initiative_id = claim.round_id, claim.initiative_id
    if payout_id is not None:
        payout = await uow.payouts.get(payout_id)
        if payout is None:
            return Locked()
        round_id, initiative_id = payout.round_id, payout.initiative_id
    if award_id is not None:
        award = await uow.awards.get(award_id)
        if award is None or round_id not in (None, award.round_id):
            return Locked(round=await _round(uow, round_id, exclusive))
        round_id, initiative_id = award.round_id, award.initiative_id
    if round_id is None and initiative_id is not None:
        seen = await uow.initiatives.get(initiative_id)
        if seen is None:
            return Locked()
        round_id = seen.round_id

    round_ = await _round(uow, round_id, exclusive)
    if round_id is not None and round_ is None:
        return Locked()
    initiative = await uow.initiatives.get(initiative_id, for_update=True) if initiative_id is not None else None
    if initiative is not None and initiative.round_id is not None and round_ is None:
        # awarded since it was first read: its round after it, the one exception to the order, and a safe one —
        # the award held that round, so a close of it started after the award and does not wait for this row
        round_ = await _round(uow, initiative.round_id, exclusive)
    return Locked(
        round_,
        initiative,
        await uow.pledges.get(pledge.id, for_update=True) if pledge else None,
        await uow.claims.get(claim.id, for_update=True) if claim else None,
        await uow.payouts.get(payout.id, for_update=True) if payout else None,
        await uow.awards.get(award.id, for_update=True) if award else None,
    )


async def lock_steering_group(uow: VouchersUnitOfWork, area_code: str) -> SteeringGroup:
    """The area's steering group, locked for the command that registers it anew (it holds no other lock)."""
    return await uow.steering_groups.get(area_code, for_update=True)


async def _round(uow: VouchersUnitOfWork, round_id: uuid.UUID | None, exclusive: bool) -> Round | None:
    if round_id is None:
        return None
    return await uow.rounds.get(round_id, RoundLock.EXCLUSIVE if exclusive else RoundLock.SHARED)
