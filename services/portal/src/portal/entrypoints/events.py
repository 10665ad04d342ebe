"""The events the public read model is built from: every change of an initiative the public may see, and the
rounds, pledges and awards of the vouchers service, and the areas of the initiatives service's registry (their names
and outlines). Each handler only hands the event to the projection; the
kit's consumer makes it take effect once (inbox in the same transaction). Events that carry only who did
something (volunteers, co-initiators, votes, wallets, help requests and the asks and answers they lead to) or
money after the award (claims, payouts) are not handled.
"""

from __future__ import annotations

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as events
from buurtkracht_contracts import vouchers as round_events

from ..adapters.unit_of_work import PortalUnitOfWork
from ..service import projection


async def on_initiative_event(uow: PortalUnitOfWork, event: events.InitiativeEvent, envelope: Envelope) -> None:
    await projection.initiative_changed(uow, event)


async def on_area_registered(uow: PortalUnitOfWork, event: events.AreaRegistered, envelope: Envelope) -> None:
    await projection.area_registered(uow, event)


async def on_round_opened(uow: PortalUnitOfWork, event: round_events.RoundOpened, envelope: Envelope) -> None:
    await projection.round_opened(uow, event)


async def on_round_closed(uow: PortalUnitOfWork, event: round_events.RoundClosed, envelope: Envelope) -> None:
    await projection.round_closed(uow, event)


async def on_share_changed(
    uow: PortalUnitOfWork, event: round_events.PledgeEvent | round_events.InitiativeAwarded, envelope: Envelope
) -> None:
    await projection.share_changed(uow, event)


INITIATIVE_EVENTS = (
    events.InitiativeSubmitted,
    events.InitiativeSupported,
    events.InitiativeSupportWithdrawn,
    events.SupportThresholdReached,
    events.InitiativeApproved,
    events.InitiativeRejected,
    events.ChangesRequested,
    events.InitiativeWithdrawn,
    events.InitiativeExpired,
    events.InitiativeFunded,
    events.InitiativeStarted,
    events.InitiativeCompleted,
    events.InitiativeCancelled,
)

HANDLERS = {
    **{model: on_initiative_event for model in INITIATIVE_EVENTS},
    events.AreaRegistered: on_area_registered,
    round_events.RoundOpened: on_round_opened,
    round_events.RoundClosed: on_round_closed,
    round_events.PledgeMade: on_share_changed,
    round_events.PledgeWithdrawn: on_share_changed,
    round_events.InitiativeAwarded: on_share_changed,
}
