"""From an event to messages: learn who is involved, work out who hears of it, and queue one inbox
message and (if they registered an address) one email per recipient — in the consumer's transaction.

Invariants: one event gives a recipient at most one message per channel (the event id is the dedup key,
unique per recipient and channel); the actor of an event is not told of their own action; a tombstone (a resident
who was forgotten) is nobody: never involved in an initiative, never told anything.
"""

from __future__ import annotations

import uuid
from typing import Any

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.notifications import is_tombstone

from ..adapters.notifications import NewNotification
from ..adapters.people import People, Reachable
from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain.recipients import Audience, actor, named_residents, params, rules_for


async def learn(people: People, event: Event) -> None:
    """Keep track of initiatives, budget rounds, and who is involved in initiatives."""
    if isinstance(event, v.RoundOpened | v.RoundClosed):
        await people.learn_round(event.round_id, event.name, event.area_code)
    if isinstance(event, i.InitiativeEvent):
        initiators = [person for person in event.initiators if not is_tombstone(person)]
        await people.learn_initiative(event.initiative_id, event.title, event.area_code, initiators)
    if isinstance(event, i.InitiativeSupported) and not is_tombstone(event.supporter_id):
        await people.involve(event.initiative_id, [event.supporter_id], "supporter")
    elif isinstance(event, i.InitiativeSupportWithdrawn):
        await people.uninvolve(event.initiative_id, event.supporter_id, "supporter")
    elif isinstance(event, i.VolunteerJoined) and not is_tombstone(event.volunteer_id):
        await people.involve(event.initiative_id, [event.volunteer_id], "volunteer")


async def audience(people: People, event: Event, who: Audience, kind: str) -> list[str]:
    initiative_id: uuid.UUID | None = getattr(event, "initiative_id", None)
    if who is Audience.INITIATORS:
        direct = getattr(event, "initiators", None)
        return list(direct) if direct else (await people.involved(initiative_id, "initiator") if initiative_id else [])
    if who is Audience.SUPPORTERS:
        return await people.involved(initiative_id, "supporter") if initiative_id else []
    if who is Audience.VOLUNTEERS:
        return await people.involved(initiative_id, "volunteer") if initiative_id else []
    if who is Audience.FOLLOWERS:
        return await people.followers(event.area_code)  # type: ignore[attr-defined]
    if who is Audience.OFFICIALS:
        return await people.officials(event.area_code)  # type: ignore[attr-defined]
    return named_residents(event, kind)


async def handle(uow: NotificationsUnitOfWork, event: Event, envelope: Envelope) -> int:
    """Queue the messages an event causes; returns how many were new."""
    people = uow.people
    await learn(people, event)
    rules = rules_for(event)
    if not rules:
        return 0
    known: dict[str, str] = {}  # what a message names that its event does not carry, learnt from earlier events
    if isinstance(event, v.RoundEvent):
        if initiative_id := getattr(event, "initiative_id", None):
            known["initiative_title"] = await people.title_of(initiative_id) or ""
        if not isinstance(event, v.RoundOpened | v.RoundClosed):
            known["round_name"] = await people.round_name_of(event.round_id) or ""
    acting = actor(event)
    kinds: dict[str, str] = {}  # recipient -> kind: the first rule that names someone decides their message
    for rule in rules:
        for who in rule.audiences:
            for resident_id in await audience(people, event, who, rule.kind):
                if resident_id != acting and not is_tombstone(resident_id):
                    kinds.setdefault(resident_id, rule.kind)
    if not kinds:
        return 0
    reachable = await people.reachable(list(kinds))
    dedup_key = str(envelope.id)
    values = {kind: params(event, kind, **known) for kind in set(kinds.values())}
    queued = []
    for resident_id, kind in kinds.items():
        queued += messages_to(resident_id, kind, values[kind], dedup_key, envelope.id, reachable.get(resident_id))
    return await uow.notifications.add(queued)


def messages_to(
    resident_id: str,
    kind: str,
    values: dict[str, Any],
    dedup_key: str,
    source_event_id: uuid.UUID | None,
    contact: Reachable | None,
) -> list[NewNotification]:
    """One message in the resident's inbox, always; and one email when they registered an address, want email and
    did not mute `kind`: sent at once, or in their next digest."""
    queued = [NewNotification(resident_id, "inbox", kind, values, dedup_key, source_event_id, "delivered")]
    if contact and contact.email_enabled and kind not in contact.muted_kinds:
        status = "pending" if contact.frequency == "immediate" else "digest"
        queued.append(NewNotification(resident_id, "email", kind, values, dedup_key, source_event_id, status))
    return queued
