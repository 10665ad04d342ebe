"""Reactions to the initiatives service. An approved initiative may receive pledges or an award; a withdrawn one
gets its pledges returned to the wallets; an awarded one that is withdrawn, cancelled or completed returns what is
left of its budget to its round, so no money stays with an initiative that ended; a co-initiator who joins is one
of its initiators from then on, so they neither vote on its award nor decide its claims. Each reaction is
idempotent: an event delivered again finds the initiative ended, or its initiators as told, and does nothing."""

from __future__ import annotations

import uuid

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..domain.initiatives import Ending, Initiative, InitiativeStatus
from ..domain.ledger import Account, Kind
from .access import found
from .awards import lapse
from .locking import lock
from .pledges import give_back_pledges


async def initiative_approved(
    uow: VouchersUnitOfWork,
    initiative_id: uuid.UUID,
    area_code: str,
    title: str,
    initiators: list[str],
    approved_amount_cents: int,
) -> None:
    await uow.initiatives.add_approved(Initiative(initiative_id, area_code, title, initiators, approved_amount_cents))


async def co_initiator_joined(uow: VouchersUnitOfWork, initiative_id: uuid.UUID, initiators: list[str]) -> bool:
    """Who initiates it now: a co-initiator joined. It decides who may vote on its award or decide its claims, so
    it is changed under the initiative's lock, between the commands that read it. An initiative this service does
    not know (not approved yet: its approval will name every initiator) is left alone. Returns whether anything
    changed."""
    initiative = (await lock(uow, initiative_id=initiative_id)).initiative
    if initiative is None or not initiative.initiators_changed(initiators):
        return False
    await uow.initiatives.save(initiative)
    return True


async def initiative_withdrawn(uow: VouchersUnitOfWork, initiative_id: uuid.UUID) -> int:
    """Withdrawn before its award: its pledges go back to the wallets and it receives no more. Withdrawn while
    this service awarded it (the award and the withdrawal crossed): what is left of its budget goes back to its
    round, as when it is cancelled. Returns the cents returned."""
    return await _ended(uow, initiative_id, Ending.WITHDRAWN)


async def initiative_finished(uow: VouchersUnitOfWork, initiative_id: uuid.UUID, cancelled: bool) -> int:
    """Completed or cancelled: what is left of its budget returns to the round's pool (to the municipality when
    the round is closed). Claims still held stay held until decided. Returns the cents returned."""
    return await _ended(uow, initiative_id, Ending.CANCELLED if cancelled else Ending.COMPLETED)


async def _ended(uow: VouchersUnitOfWork, initiative_id: uuid.UUID, how: Ending) -> int:
    # The initiative's lock before anything is read: a pledge or an award in flight commits first, and any after
    # it finds the initiative ended.
    locked = await lock(uow, initiative_id=initiative_id)
    initiative = locked.initiative
    if initiative is None:
        return 0
    if initiative.status is InitiativeStatus.AWARDED and locked.round is not None:
        left = await uow.ledger.balance(locked.round.id, Account.of_initiative(Kind.BUDGET, initiative_id)) or 0
        entry = initiative.end(how, locked.round, left)
        if entry is not None:
            await uow.ledger.post(locked.round.id, entry)
        await uow.initiatives.save(initiative)
        uow.collect(initiative)
        return left
    if initiative.status is InitiativeStatus.APPROVED and how is Ending.WITHDRAWN:
        initiative.end(how, None, 0)
        await uow.initiatives.save(initiative)
        await lapse(uow, initiative_ids=[initiative_id])
        returned = 0
        # rounds this reaction does not hold: safe by the pledge rows it locks, see `locking`
        for round_id in await uow.pledges.rounds_with_active(initiative_id):
            round_ = found(await uow.rounds.get(round_id), f"round {round_id}")
            amount = await give_back_pledges(uow, round_, initiative_id, "initiative_withdrawn")
            initiative.pledges_given_back(round_, amount)
            uow.collect(initiative)
            returned += amount
        return returned
    return 0
