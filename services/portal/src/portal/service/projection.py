"""Building the read model from the events: one function per kind of fact, each loading what it changes, letting
the domain take the event over, and saving it, in the unit of work of the consumer (whose inbox row commits with
the change, so an event delivered twice changes the read model once)."""

from __future__ import annotations

from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts import vouchers as round_events

from ..adapters.unit_of_work import PortalUnitOfWork
from ..domain.areas import PublicArea
from ..domain.model import PublicInitiative, PublicRound


async def initiative_changed(uow: PortalUnitOfWork, event: events.InitiativeEvent) -> PublicInitiative:
    initiative = await uow.read_model.initiative(event.initiative_id, for_update=True)
    if initiative is None:
        initiative = PublicInitiative.first_seen(event)
    initiative.apply(event)
    await uow.read_model.save_initiative(initiative)
    return initiative


async def round_opened(uow: PortalUnitOfWork, event: round_events.RoundOpened) -> None:
    await uow.read_model.save_round(PublicRound.opened(event))


async def round_closed(uow: PortalUnitOfWork, event: round_events.RoundClosed) -> None:
    public_round = await uow.read_model.round(event.round_id, for_update=True)
    if public_round is None:  # opened before the read model began: what the close tells is all there is
        return
    public_round.close(event)
    await uow.read_model.save_round(public_round)


async def share_changed(
    uow: PortalUnitOfWork, event: round_events.PledgeEvent | round_events.InitiativeAwarded
) -> None:
    """A pledge made or withdrawn, or an award: what the initiative has in the round."""
    share = await uow.read_model.share(event.round_id, event.initiative_id)
    share.apply(event)
    await uow.read_model.save_share(share)


async def area_registered(uow: PortalUnitOfWork, event: events.AreaRegistered) -> PublicArea:
    """An area new to the registry, or changed: the read model shows it as it now reads."""
    area = PublicArea.registered(event)
    await uow.read_model.save_area(area)
    return area
