"""Reactions to the initiatives service: an approved initiative may receive pledges or an award; a
withdrawn one gets its pledges returned; an awarded one that is withdrawn, completed or cancelled returns its
unspent budget; a co-initiator who joins counts as one of its initiators. And to a resident's request to be
forgotten (told by the notifications service)."""

from __future__ import annotations

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts.notifications import ResidentForgetRequested

from ..adapters.unit_of_work import VouchersUnitOfWork
from ..service import privacy, reactions


async def on_approved(uow: VouchersUnitOfWork, event: events.InitiativeApproved, envelope: Envelope) -> None:
    await reactions.initiative_approved(
        uow, event.initiative_id, event.area_code, event.title, event.initiators, event.approved_amount_cents
    )


async def on_co_initiator_joined(uow: VouchersUnitOfWork, event: events.CoInitiatorJoined, envelope: Envelope) -> None:
    await reactions.co_initiator_joined(uow, event.initiative_id, event.initiators)


async def on_withdrawn(uow: VouchersUnitOfWork, event: events.InitiativeWithdrawn, envelope: Envelope) -> None:
    await reactions.initiative_withdrawn(uow, event.initiative_id)


async def on_completed(uow: VouchersUnitOfWork, event: events.InitiativeCompleted, envelope: Envelope) -> None:
    await reactions.initiative_finished(uow, event.initiative_id, cancelled=False)


async def on_cancelled(uow: VouchersUnitOfWork, event: events.InitiativeCancelled, envelope: Envelope) -> None:
    await reactions.initiative_finished(uow, event.initiative_id, cancelled=True)


async def on_resident_forget_requested(
    uow: VouchersUnitOfWork, event: ResidentForgetRequested, envelope: Envelope
) -> None:
    await privacy.forget_resident(uow, event.resident_id, event.tombstone)


HANDLERS = {
    events.InitiativeApproved: on_approved,
    events.CoInitiatorJoined: on_co_initiator_joined,
    events.InitiativeWithdrawn: on_withdrawn,
    events.InitiativeCompleted: on_completed,
    events.InitiativeCancelled: on_cancelled,
    ResidentForgetRequested: on_resident_forget_requested,
}
