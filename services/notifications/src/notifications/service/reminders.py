"""Reminders: learn the deadlines from the events (in the consumer's transaction), and now and then send the
reminders whose moment has come (`domain.reminders` decides which), as messages like any other: in the inbox always,
by email as the person's preferences say (at once or in their digest, not for a muted kind), in their language.

Invariants: a person gets a reminder at most once per (kind, subject, moment): it is recorded in `reminders_sent` in
the same transaction as its messages, so a pass that runs again, after a restart or in another replica, finds it and
sends nothing; one pass runs at a time (a transaction-scoped advisory lock that another pass skips instead of
waiting for); a tombstone (a forgotten resident) is never reminded. The time is given (`now`), never read here, so
tests choose it.
"""

from __future__ import annotations

import logging
import uuid
from collections import Counter as Tally
from datetime import UTC, datetime

from prometheus_client import Counter

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.notifications import is_tombstone
from buurtkracht_kit import periodic
from buurtkracht_kit.auth import Principal, Role
from buurtkracht_kit.runtime import Service

from ..adapters.notifications import NewNotification
from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain import reminders
from ..domain.messages import template_fields
from ..domain.recipients import LINKS
from ..domain.reminders import Due, Kind, Policy
from ..settings import NotificationsSettings
from .notify import messages_to

logger = logging.getLogger(__name__)


# -- learning the deadlines from the events ---------------------------------------------------------------------
async def home(uow: NotificationsUnitOfWork, caller: Principal) -> None:
    """A resident who tells this service something lives in the buurt their token names: a ballot reminder of its
    area reaches them."""
    if caller.has(Role.RESIDENT) and not is_tombstone(caller.subject):
        for area_code in sorted(caller.areas):
            await uow.reminders.lives_in(area_code, [caller.subject])


async def learn(uow: NotificationsUnitOfWork, event: Event, envelope: Envelope) -> None:
    """Keep the deadlines and who holds what up to date; after `notify.learn` (which knows the round or initiative)."""
    known = uow.reminders
    if isinstance(event, v.RoundOpened):
        await known.round_opened(event.round_id, event.mechanism, event.opens_at, event.closes_at)
    elif isinstance(event, v.RoundClosed):
        await known.round_closed(event.round_id)
    elif isinstance(event, v.WalletsIssued):
        holders = [resident for resident in event.resident_ids if not is_tombstone(resident)]
        await known.wallets_issued(event.round_id, holders, event.voucher_amount_cents)
        await known.lives_in(event.area_code, holders)  # wallets go to the round's residents
    elif isinstance(event, v.PledgeMade | v.PledgeWithdrawn) and not is_tombstone(event.resident_id):
        await known.wallet_balance(event.round_id, event.resident_id, event.wallet_balance_cents)
    elif isinstance(event, v.BallotCast) and not is_tombstone(event.resident_id):
        await known.ballot_cast(event.round_id, event.resident_id)
    elif isinstance(event, v.ExpenseClaimed):
        await known.claim_made(
            event.claim_id,
            event.round_id,
            event.initiative_id,
            event.area_code,
            event.supplier,
            event.amount_cents,
            envelope.time,
        )
    elif isinstance(event, v.ExpenseApproved | v.ExpenseDeclined):
        await known.claim_decided(event.claim_id, event.round_id, event.initiative_id, event.area_code, envelope.time)
    elif isinstance(event, i.InitiativeEvent):
        if isinstance(event, i.InitiativeSubmitted):
            await known.support_period(event.initiative_id, event.support_threshold, event.support_deadline)
        if isinstance(event, i.InitiativeSupported | i.InitiativeSupportWithdrawn | i.SupportThresholdReached):
            await known.support_count(event.initiative_id, event.support_count)
        if isinstance(event, i.InitiativeSupported) and not is_tombstone(event.supporter_id):
            await known.lives_in(event.area_code, [event.supporter_id])  # only its area's residents may support
        if (status := reminders.status_after(event)) is not None:
            await known.initiative_status(event.initiative_id, status, envelope.time)


def _unit_of_work(service: Service) -> NotificationsUnitOfWork:
    return service.unit_of_work()  # type: ignore[return-value]  # the spec's unit of work is this service's


# -- the reminder pass ------------------------------------------------------------------------------------------
def policies(settings: NotificationsSettings) -> dict[Kind, Policy]:
    """Each kind of reminder on or off, with its days, as the municipality's settings say."""
    s = settings
    return {
        Kind.ROUND_CLOSING: Policy(s.reminder_round_closing_enabled, s.reminder_round_closing_days_before),
        Kind.SUPPORT_ENDING: Policy(s.reminder_support_ending_enabled, s.reminder_support_ending_days_before),
        Kind.BALLOT_OPEN: Policy(s.reminder_ballot_open_enabled, s.reminder_ballot_open_days_before),
        Kind.REVIEW_WAITING: Policy(s.reminder_review_waiting_enabled, s.reminder_review_waiting_days),
        Kind.CLAIM_WAITING: Policy(s.reminder_claim_waiting_enabled, s.reminder_claim_waiting_days),
        Kind.REPORT_DUE: Policy(s.reminder_report_due_enabled, s.reminder_report_due_days),
    }


async def send_due_reminders(service: Service) -> None:
    """Send due reminders every `reminder_check_seconds`."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    await periodic.every(settings.reminder_check_seconds, lambda: remind(service, datetime.now(UTC)), "reminding")


async def remind(service: Service, now: datetime) -> dict[str, int]:
    """Send every reminder due at `now`, a batch of residents per subject and transaction, until none is left or
    another pass holds the turn; returns how many residents were reminded, by kind."""
    sent: Tally[str] = Tally()
    while True:
        batch = await remind_batch(service, now)
        if not batch:
            return dict(sent)
        sent.update(batch)


async def remind_batch(service: Service, now: datetime) -> dict[str, int] | None:
    """One transaction of the pass: None when another pass holds the turn or nothing was due; otherwise how many
    residents were reminded, by kind (each subject at most `reminder_batch_size` of them)."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    policy = policies(settings)
    limit = settings.reminder_batch_size
    sent: Tally[str] = Tally()
    async with _unit_of_work(service) as uow:
        if not await uow.reminders.take_turn():
            logger.info("another reminder pass is running; this one waits for its next round")
            return None
        rounds = await uow.reminders.open_rounds()
        for due in reminders.rounds_closing(rounds, now, policy[Kind.ROUND_CLOSING]):
            holders = await uow.reminders.holders_with_vouchers(uuid.UUID(due.subject), due.kind, due.moment, limit)
            sent[due.kind] += await _send(
                uow, due, {resident: {"wallet_balance_cents": balance} for resident, balance in holders}
            )
        for due in reminders.ballots_closing(rounds, now, policy[Kind.BALLOT_OPEN]):
            voters = await uow.reminders.residents_without_ballot(
                uuid.UUID(due.subject), str(due.params["area_code"]), due.kind, due.moment, limit
            )
            sent[due.kind] += await _send(uow, due, {resident: {} for resident in voters})
        waiting = await uow.reminders.initiatives_in(["gathering_support", "in_review", "in_progress"])
        for due in reminders.support_ending(waiting, now, policy[Kind.SUPPORT_ENDING]):
            sent[due.kind] += await _send(uow, due, await _initiators(uow, due))
        for due in reminders.reports_due(waiting, now, policy[Kind.REPORT_DUE]):
            sent[due.kind] += await _send(uow, due, await _initiators(uow, due))
        for due in reminders.reviews_waiting(waiting, now, policy[Kind.REVIEW_WAITING]):
            sent[due.kind] += await _send(uow, due, await _officials(uow, due))
        claims = await uow.reminders.undecided_claims()
        titles = {claim.initiative_id: await uow.people.title_of(claim.initiative_id) or "" for claim in claims}
        for due in reminders.claims_waiting(claims, now, policy[Kind.CLAIM_WAITING], titles):
            sent[due.kind] += await _send(uow, due, await _officials(uow, due))
        await uow.commit()
    for kind, count in sent.items():
        if count:
            _reminders_sent(service).labels(kind).inc(count)
            logger.info("%d residents reminded: %s", count, kind)
    return {kind: count for kind, count in sent.items() if count} or None


async def _initiators(uow: NotificationsUnitOfWork, due: Due) -> dict[str, dict[str, object]]:
    return {person: {} for person in await uow.people.involved(uuid.UUID(due.subject), "initiator")}


async def _officials(uow: NotificationsUnitOfWork, due: Due) -> dict[str, dict[str, object]]:
    return {person: {} for person in await uow.people.officials(str(due.params["area_code"]))}


async def _send(uow: NotificationsUnitOfWork, due: Due, recipients: dict[str, dict[str, object]]) -> int:
    """Record the reminder for those of `recipients` who did not have it (each with what their message adds to the
    reminder's own values), and queue their messages; returns how many were reminded."""
    people = [person for person in recipients if not is_tombstone(person)]
    if not people:
        return 0
    new = await uow.reminders.record_sent(due.kind, due.subject, due.moment, people)
    if not new:
        return 0
    reachable = await uow.people.reachable(new)
    dedup_key = f"reminder:{due.kind}:{due.subject}:{due.moment.isoformat()}"
    wanted = template_fields(due.kind) | LINKS
    queued: list[NewNotification] = []
    for person in new:
        values = {name: value for name, value in (due.params | recipients[person]).items() if name in wanted}
        queued += messages_to(person, due.kind, values, dedup_key, None, reachable.get(person))
    await uow.notifications.add(queued)
    return len(new)


_COUNTERS: dict[int, Counter] = {}


def _reminders_sent(service: Service) -> Counter:
    registry = service.metrics.registry
    if id(registry) not in _COUNTERS:
        counter = Counter(
            "buurtkracht_reminders_sent_total", "Residents reminded, by kind of reminder", ["kind"], registry=registry
        )
        for kind in reminders.KINDS:
            counter.labels(kind)  # every kind shows, at 0 until its first reminder
        _COUNTERS[id(registry)] = counter
    return _COUNTERS[id(registry)]
