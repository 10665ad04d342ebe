"""What this service holds about a person: all of it for them to read (`export`, AVG/GDPR article 15), and
forgetting them (article 17) — asked here (`forget_me`), and told to every service as `ResidentForgetRequested`.

Forgetting erases, in one unit of work:
- their contact details, preferences, followed areas, an official's areas, and what the events told of their
  involvement in initiatives, the areas they live in, their wallets and ballots as the events told them, and the
  reminders they got: deleted;
- every message addressed to them, on every channel and in every state (inbox, email waiting, in a digest, sent or
  failed): deleted;
- webhook subscriptions they created as an admin stay, with the tombstone as creator; every queued or logged
  webhook delivery names the tombstone where it named them, in its body and in the endpoint's answer it kept;
- the kit's tables (events not yet published, stored answers, failures): see `buurtkracht_kit.erasure`;
- what stays is the digest of their id with the tombstone (`domain.privacy`), until no event that still names them
  can come any more: such an event is read as naming the tombstone (`without_the_forgotten`), so it brings back
  neither their id nor their address, and nobody is told anything about a tombstone.
The `ResidentForgetRequested` this service publishes comes back to it from its topic; applying it again, or for a
person the service never saw, finds nothing and changes nothing. Every request has a tombstone of its own, the same
in every service: what a person did after being forgotten once is forgotten under the new one, so no record of theirs
collides with one the first request kept (the same vote, the same volunteering).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass

import asyncpg

from buurtkracht_contracts import Envelope, Event, parse
from buurtkracht_contracts.notifications import ResidentForgetRequested, new_tombstone
from buurtkracht_contracts.personal import people_in

from ..adapters.notifications import Stored
from ..adapters.people import Involvement
from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain.privacy import digest, json_with_tombstones, tombstoned
from ..domain.webhooks import Subscription

logger = logging.getLogger(__name__)


async def forget_me(uow: NotificationsUnitOfWork, person_id: str) -> ResidentForgetRequested:
    """Forget `person_id` here at once, and record the event that tells every other service to."""
    tombstone = await uow.people.remember_forgotten(digest(person_id), new_tombstone())
    await forget_resident(uow, person_id, tombstone)
    request = ResidentForgetRequested(resident_id=person_id, tombstone=tombstone)
    uow.record(request)  # after the kit's tables were erased, so this event keeps the id every service must find
    return request


async def forget_resident(uow: NotificationsUnitOfWork, person_id: str, tombstone: str) -> None:
    """Erase `person_id` as the module docstring says."""
    await uow.people.remember_forgotten(digest(person_id), tombstone)
    await uow.people.forget_everything(person_id)
    await uow.reminders.forget(person_id)
    messages = await uow.notifications.forget_recipient(person_id)
    subscriptions = await uow.webhooks.hand_over(person_id, tombstone)
    bodies = [
        (delivery_id, rewritten)
        for delivery_id, body in await uow.webhooks.bodies_naming(person_id)
        if (rewritten := json_with_tombstones(body, {person_id: tombstone})) != body
    ]
    await uow.webhooks.rewrite_bodies(bodies)
    await uow.webhooks.replace_in_errors(person_id, tombstone)
    await uow.kit_tables.forget(person_id, tombstone)
    logger.info(
        "person forgotten as %s: %d messages, %d webhook subscriptions handed over, %d webhook deliveries",
        tombstone,
        messages,
        subscriptions,
        len(bodies),
    )


async def welcome_back(uow: NotificationsUnitOfWork, person_id: str) -> None:
    """A person who was forgotten and tells this service something again is somebody again."""
    await uow.people.welcome_back(digest(person_id))


async def without_the_forgotten(
    uow: NotificationsUnitOfWork, event: Event, envelope: Envelope
) -> tuple[Event, Envelope]:
    """The event and its envelope as they are, or naming each forgotten person they name by their tombstone."""
    named = people_in(envelope.data, type(event))
    if not named:
        return event, envelope
    by_digest = {digest(person): person for person in named}
    found = await uow.people.tombstones(list(by_digest))
    if not found:
        return event, envelope
    tombstones = {by_digest[key]: tombstone for key, tombstone in found.items()}
    logger.info("event names %d forgotten people: read with their tombstones", len(tombstones))
    envelope = tombstoned(envelope, tombstones)
    return parse(envelope), envelope


@dataclass(frozen=True)
class Export:
    """Everything this service holds about `subject`."""

    subject: str
    contact: asyncpg.Record | None
    preferences: asyncpg.Record | None
    area_follows: list[str]
    official_areas: list[str]
    involvement: list[Involvement]
    messages: list[Stored]
    webhook_subscriptions: list[Subscription]
    areas_lived_in: list[str]
    wallets: list[asyncpg.Record]
    ballot_rounds: list[uuid.UUID]


async def export(uow: NotificationsUnitOfWork, person_id: str) -> Export:
    """What the service holds about the caller, about themselves only."""
    return Export(
        subject=person_id,
        contact=await uow.people.contact(person_id),
        preferences=await uow.people.stored_preferences(person_id),
        area_follows=await uow.people.follows(person_id),
        official_areas=await uow.people.official_areas(person_id),
        involvement=await uow.people.involvement(person_id),
        messages=await uow.notifications.all_of_recipient(person_id),
        webhook_subscriptions=await uow.webhooks.created_by(person_id),
        areas_lived_in=await uow.reminders.areas_of(person_id),
        wallets=await uow.reminders.wallets_of(person_id),
        ballot_rounds=await uow.reminders.ballots_of(person_id),
    )
