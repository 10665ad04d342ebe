"""Sending email: immediate messages as they come, digests once a period. Both work from the database,
never from Kafka: a failing mail server delays messages (retried with backoff) but loses none.

A message is claimed with a short lease (`FOR UPDATE SKIP LOCKED`, committed before sending), so several
replicas never send the same message at once; its outcome is recorded in a new transaction, with a
`NotificationSent` or `NotificationFailed` event for operators. A failure is recorded, published and logged
as `failure_reason` words it: with the SMTP codes, never with the recipient's address.
"""

from __future__ import annotations

import logging
import random
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiosmtplib
from prometheus_client import Counter

from buurtkracht_contracts import notifications as events
from buurtkracht_kit import periodic, tracing
from buurtkracht_kit.runtime import Service

from ..adapters.mail import Mailer, MailNotSent, compose, failure_reason
from ..adapters.notifications import MAX_ERROR_LENGTH, DueEmail
from ..adapters.unit_of_work import NotificationsUnitOfWork
from ..domain.messages import Municipality, render, render_digest
from ..settings import NotificationsSettings

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


def _unit_of_work(service: Service) -> NotificationsUnitOfWork:
    return service.unit_of_work()  # type: ignore[return-value]  # the spec's unit of work is this service's


def municipality(settings: NotificationsSettings) -> Municipality:
    """Whose messages these are, as the settings say."""
    return Municipality(
        settings.municipality_name, settings.municipality_primary_colour, settings.municipality_logo_url
    )


def retry_delay(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... doubling, at most 4 h; with ±20 % jitter."""
    seconds = min(30 * 2 ** max(attempts - 1, 0), 4 * 3600)
    return timedelta(seconds=seconds * random.uniform(0.8, 1.2))


async def send_due_email(service: Service) -> None:
    """Send due immediate email, batch after batch while any is due, every `dispatch_interval_seconds`."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]

    async def send_all_due() -> None:
        while await send_email_batch(service):
            pass

    await periodic.every(settings.dispatch_interval_seconds, send_all_due, "sending email")


def _areas_of(params: Iterable[dict[str, Any]]) -> set[str]:
    """The areas messages with these values are about (a message names one area, by `area_code`)."""
    return {str(values["area_code"]) for values in params if values.get("area_code")}


async def send_email_batch(service: Service) -> int:
    """Send one batch of due immediate email; returns how many were claimed."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    async with _unit_of_work(service) as uow:
        claimed = await uow.notifications.claim_due_email(settings.dispatch_batch_size, LEASE)
        await uow.notifications.fail_without_address()
        area_names = await uow.areas.names(_areas_of(due.params for due in claimed))
        await uow.commit()
    if not claimed:
        return 0
    mailer = Mailer(settings)
    recorded: set[uuid.UUID] = set()
    try:
        async with mailer.client() as smtp:
            for due in claimed:
                try:
                    message = render(
                        due.kind,
                        due.language,
                        due.params,
                        settings.public_base_url,
                        municipality(settings),
                        area_names,
                    )
                    email = compose(due.id, due.email, message, settings.mail_from, due.language)
                except Exception as error:  # it can never be sent as it is: failed for good, and the batch goes on
                    await _record(
                        service, [(due, "cannot be composed: " + failure_reason(error, due.email))], final=True
                    )
                    recorded.add(due.id)
                    continue
                try:
                    cause = await tracing.consumed_traceparent(service.pool, settings.service_name, due.source_event_id)
                    with tracing.span_from(
                        cause, "email send", tracing.SpanKind.CLIENT, {"notification.kind": due.kind}
                    ):
                        await smtp.send_message(email)
                    outcome = None
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                    outcome = failure_reason(error, due.email)
                # recorded at once, not per batch: a crash resends at most the message in hand (same Message-ID)
                await _record(service, [(due, outcome)])
                recorded.add(due.id)
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:  # the server cannot be reached at all
        await _record(service, [(due, failure_reason(error, due.email)) for due in claimed if due.id not in recorded])
    return len(claimed)


async def _record(service: Service, outcomes: list[tuple[DueEmail, str | None]], final: bool = False) -> None:
    """Record sent messages, and failed attempts: the last allowed one, or any when `final`, fails for good."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    async with _unit_of_work(service) as uow:
        for due, error in outcomes:
            attempts = due.attempts + 1
            common = dict(
                notification_id=due.id,
                recipient_id=due.recipient_id,
                channel="email",
                kind=due.kind,
                source_event_id=due.source_event_id,
                attempts=attempts,
            )
            if error is None:
                await uow.notifications.mark_sent(due.id, attempts)
                uow.record(events.NotificationSent(**common))
                _email_outcomes(service).labels("sent").inc()
                continue
            last = final or attempts >= settings.email_max_attempts
            await uow.notifications.mark_failed_attempt(due.id, attempts, error, last, retry_delay(attempts))
            uow.record(events.NotificationFailed(**common, error=error[:MAX_ERROR_LENGTH], final=last))
            _email_outcomes(service).labels("failed" if last else "retried").inc()
            logger.warning("email %s failed (attempt %d): %s", due.id, attempts, error)
        await uow.commit()


_COUNTERS: dict[int, Counter] = {}


def _email_outcomes(service: Service) -> Counter:
    registry = service.metrics.registry
    if id(registry) not in _COUNTERS:
        _COUNTERS[id(registry)] = Counter(
            "buurtkracht_email_messages_total", "Email sending attempts by outcome", ["outcome"], registry=registry
        )
    return _COUNTERS[id(registry)]


async def send_due_digests(service: Service) -> None:
    """Send the digests that are due, every `digest_check_seconds`."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    await periodic.every(
        settings.digest_check_seconds, lambda: send_digests(service, datetime.now(UTC)), "sending digests"
    )


def digest_due(frequency: str, last_sent: datetime | None, now: datetime, hour: int) -> bool:
    """Daily digests go out once a day, weekly ones once a week (Mondays), at `hour` in Amsterdam."""
    local = now.astimezone(AMSTERDAM)
    if local.hour < hour or (frequency == "weekly" and local.weekday() != 0):
        return False
    period_start = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    return last_sent is None or last_sent < period_start


async def send_digests(service: Service, now: datetime) -> int:
    """Send every due digest (one message with everything that waited); returns how many were sent."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    async with _unit_of_work(service) as uow:
        waiting = await uow.notifications.awaiting_digest()
    sent = 0
    for resident in waiting:
        if digest_due(resident.frequency, resident.last_digest_at, now, settings.digest_hour):
            sent += await send_digest(service, resident.recipient_id)
    return sent


async def send_digest(service: Service, recipient_id: str) -> int:
    """One digest for one resident, of every waiting message; 0 when nothing waits (never an empty digest).
    `MailNotSent` when the server refuses it or cannot be reached."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    digest_id = uuid.uuid4()
    async with _unit_of_work(service) as uow:
        contact = await uow.people.contact(recipient_id)
        items = await uow.notifications.lock_digest_items(recipient_id)
        if not items or contact is None:
            return 0
        message = render_digest(
            [(item.kind, item.params) for item in items],
            contact["language"],
            settings.public_base_url,
            municipality(settings),
            await uow.areas.names(_areas_of(item.params for item in items)),
        )
        email = compose(digest_id, contact["email"], message, settings.mail_from, contact["language"])
        try:  # a failure rolls back: the items wait for the next try
            async with Mailer(settings).client() as smtp:
                await smtp.send_message(email)
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
            raise MailNotSent(f"digest {digest_id}: {failure_reason(error, contact['email'])}") from None
        await uow.notifications.mark_digest_sent([item.id for item in items], digest_id)
        await uow.people.digest_sent(recipient_id)
        uow.record(
            *[
                events.NotificationSent(
                    notification_id=item.id,
                    recipient_id=recipient_id,
                    channel="email",
                    kind=item.kind,
                    source_event_id=None,
                    attempts=1,
                )
                for item in items
            ]
        )
        await uow.commit()
    return 1
