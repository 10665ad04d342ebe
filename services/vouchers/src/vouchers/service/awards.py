"""Committee awards: the steering group records its decision on an approved initiative; an award moves the amount
from the round's pool to the initiative's budget in the same transaction as the decision."""

from __future__ import annotations

import uuid
from datetime import datetime

from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.awards import Award, Vote
from ..domain.rounds import Mechanism
from .access import found, require
from .locking import lock


async def decide_award(
    uow: VouchersUnitOfWork,
    actor: Principal,
    round_id: uuid.UUID,
    initiative_id: uuid.UUID,
    amount_cents: int,
    votes: list[Vote],
    now: datetime,
) -> tuple[uuid.UUID, bool]:
    """Returns the decision's id and whether it awarded."""
    locked = await lock(uow, round_id=round_id, initiative_id=initiative_id)
    round_ = found(locked.round, f"round {round_id}")
    require(actor, {Role.STEERING_GROUP}, round_.area_code, "record a steering group decision")
    round_.require_mechanism(Mechanism.COMMITTEE, "award by committee")
    round_.require_open(now, "award")
    initiative = found(
        locked.initiative, f"initiative {initiative_id} (the vouchers service knows approved initiatives only)"
    )
    award = Award.decide(round_, initiative, amount_cents, votes, actor.subject)
    await uow.awards.add(award)
    uow.collect(award)
    if award.awarded:
        await uow.ledger.post(round_id, initiative.award_by_committee(round_, award.id, amount_cents))
        await uow.initiatives.save(initiative)
        uow.collect(initiative)
    return award.id, award.awarded
