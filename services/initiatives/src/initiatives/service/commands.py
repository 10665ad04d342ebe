"""One function per command. Each runs in the caller's unit of work, loads the initiative under its row
lock, lets the aggregate decide, saves it and hands its events to the unit of work. A refused command
raises before anything is written, and the unit of work rolls back. Initiatives are reached only through the
unit of work's `initiatives` repository.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from buurtkracht_contracts.refusals import InvalidInput, NotFound
from buurtkracht_kit.auth import Principal, Role

from ..adapters.unit_of_work import InitiativesUnitOfWork
from ..domain.model import BudgetLine, Category, Initiative, NotAllowed, Rules, Spending

UnitOfWorkFactory = Callable[[], InitiativesUnitOfWork]


async def load_for_update(uow: InitiativesUnitOfWork, initiative_id: uuid.UUID) -> Initiative:
    """The initiative, locked until the transaction ends; NotFound when there is none."""
    initiative = await uow.initiatives.get(initiative_id, for_update=True)
    if initiative is None:
        raise NotFound(f"initiative {initiative_id}")
    return initiative


async def save(uow: InitiativesUnitOfWork, initiative: Initiative) -> Initiative:
    """Store the initiative and record its new events in the outbox, in the unit of work's transaction."""
    await uow.initiatives.save(initiative)
    uow.record_all(initiative.events)
    initiative.events.clear()
    return initiative


def _require_resident(actor: Principal) -> None:
    if not actor.has(Role.RESIDENT):
        raise NotAllowed("only residents can do this")


async def create_draft(
    uow: InitiativesUnitOfWork,
    actor: Principal,
    *,
    title: str,
    summary: str,
    description: str,
    area_code: str,
    category: Category,
    budget_lines: list[BudgetLine],
    volunteers_wanted: int,
    rules: Rules,
    now: datetime,
) -> Initiative:
    """A resident proposes an initiative for a registered area they live in; it starts as their private draft."""
    _require_resident(actor)
    if not actor.lives_in(area_code):
        raise NotAllowed(f"you can only propose initiatives for an area you live in, not {area_code}")
    if not await uow.areas.exists(area_code):
        raise InvalidInput(f"{area_code} is not an area the municipality registered", field="area_code")
    initiative = Initiative.draft(
        owner_id=actor.subject,
        title=title,
        summary=summary,
        description=description,
        area_code=area_code,
        category=category,
        budget_lines=budget_lines,
        volunteers_wanted=volunteers_wanted,
        rules=rules,
        now=now,
    )
    await uow.initiatives.add(initiative)
    return initiative


async def edit(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, rules: Rules, **changes: object
) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.edit(actor.subject, rules, **changes)
    return await save(uow, initiative)


async def invite_co_initiator(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, resident_id: str
) -> Initiative:
    """The owner invites a resident to co-initiate; the invitation makes them nothing until they accept."""
    initiative = await load_for_update(uow, initiative_id)
    initiative.invite_co_initiator(actor.subject, resident_id)
    return await save(uow, initiative)


async def accept_co_initiator_invitation(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, resident_id: str
) -> Initiative:
    """The invited resident accepts with their own sign-in; support they gave ends as they become an initiator."""
    _require_resident(actor)
    initiative = await load_for_update(uow, initiative_id)
    supports = await uow.initiatives.supports(initiative_id, resident_id)
    initiative.accept_co_initiator_invitation(actor.subject, resident_id, supports)
    if supports:
        await uow.initiatives.remove_support(initiative_id, resident_id)
    return await save(uow, initiative)


async def submit(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, rules: Rules, now: datetime
) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.submit(actor.subject, rules, now)
    return await save(uow, initiative)


async def support(uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, now: datetime) -> Initiative:
    _require_resident(actor)
    initiative = await load_for_update(uow, initiative_id)
    already = await uow.initiatives.supports(
        initiative_id, actor.subject
    ) or await uow.initiatives.supported_before_forgotten(initiative_id, actor.subject)
    initiative.support(actor.subject, actor.lives_in(initiative.area_code), already, now)
    await uow.initiatives.add_support(initiative_id, actor.subject, now)
    return await save(uow, initiative)


async def withdraw_support(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, now: datetime
) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.withdraw_support(actor.subject, await uow.initiatives.supports(initiative_id, actor.subject), now)
    await uow.initiatives.remove_support(initiative_id, actor.subject)
    return await save(uow, initiative)


async def join_as_volunteer(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, offer: str, now: datetime
) -> Initiative:
    _require_resident(actor)
    initiative = await load_for_update(uow, initiative_id)
    initiative.join_as_volunteer(actor.subject, await uow.initiatives.volunteers_with(initiative_id, actor.subject))
    await uow.initiatives.add_volunteer(initiative_id, actor.subject, offer, now)
    return await save(uow, initiative)


async def review(
    uow: InitiativesUnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    *,
    decision: str,
    now: datetime,
    approved_amount_cents: int | None = None,
    reason: str | None = None,
    comment: str | None = None,
) -> Initiative:
    """An official responsible for the initiative's area approves, rejects or requests changes."""
    initiative = await load_for_update(uow, initiative_id)
    if not actor.has(Role.OFFICIAL) or not actor.acts_for(initiative.area_code):
        raise NotAllowed(f"only an official responsible for {initiative.area_code} can review this initiative")
    if decision == "approve":
        initiative.approve(actor.subject, approved_amount_cents or 0, now)
    elif decision == "reject":
        initiative.reject(actor.subject, reason or "", now)
    else:
        initiative.request_changes(actor.subject, comment or "", now)
    return await save(uow, initiative)


async def withdraw(uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, now: datetime) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.withdraw(actor.subject, now)
    return await save(uow, initiative)


async def start(uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, now: datetime) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.start(actor.subject, now)
    return await save(uow, initiative)


async def cancel(
    uow: InitiativesUnitOfWork, actor: Principal, initiative_id: uuid.UUID, reason: str, now: datetime
) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.cancel(actor.subject, reason, now)
    return await save(uow, initiative)


async def report(
    uow: InitiativesUnitOfWork,
    actor: Principal,
    initiative_id: uuid.UUID,
    what_was_done: str,
    spending: list[Spending],
    now: datetime,
) -> Initiative:
    initiative = await load_for_update(uow, initiative_id)
    initiative.report(actor.subject, what_was_done, spending, now)
    return await save(uow, initiative)


async def expire_overdue(uow_factory: UnitOfWorkFactory, now: datetime) -> int:
    """Expire every initiative whose support period ended; one unit of work each. Returns how many."""
    async with uow_factory() as uow:
        overdue = await uow.initiatives.overdue(now)
    expired = 0
    for initiative_id in overdue:
        async with uow_factory() as uow:
            initiative = await load_for_update(uow, initiative_id)
            if initiative.status.value != "gathering_support":
                continue  # supported to the threshold or withdrawn meanwhile
            initiative.expire_support_period(now)
            await save(uow, initiative)
            await uow.commit()
            expired += 1
    return expired


# -- reactions to the vouchers service -------------------------------------------------------


async def mark_funded(
    uow: InitiativesUnitOfWork, initiative_id: uuid.UUID, round_id: uuid.UUID, awarded_amount_cents: int, now: datetime
) -> Initiative | None:
    """Awarded by a round: approved → funded. An initiative no longer approved (withdrawn meanwhile) stays as it is."""
    initiative = await load_for_update(uow, initiative_id)
    if initiative.status.value != "approved":
        return None
    initiative.fund(round_id, awarded_amount_cents, now)
    return await save(uow, initiative)


async def expire_unawarded(
    uow: InitiativesUnitOfWork, initiative_id: uuid.UUID, round_id: uuid.UUID, now: datetime
) -> None:
    initiative = await uow.initiatives.get(initiative_id, for_update=True)
    if initiative is None or initiative.status.value != "approved":
        return
    initiative.expire_unawarded(round_id, now)
    await save(uow, initiative)
