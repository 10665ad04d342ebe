"""Sending email: immediate messages as they come, digests once a period. Both work from the database,
never from Kafka: a failing mail server delays messages (retried with backoff) but loses none.

A message is claimed with a short lease (`FOR UPDATE SKIP LOCKED`, committed before sending), so several
replicas never send the same message at once; its outcome is recorded in a new transaction, with a
`NotificationSent` or `NotificationFailed` event for operators.
"""

from __future__ import annotations

import logging
import random
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiosmtplib
from prometheus_client import Counter

from buurtkracht_contracts import notifications as events
from buurtkracht_kit import periodic
from buurtkracht_kit.runtime import Service

from ..adapters.mail import Mailer, compose
from ..domain.messages import render, render_digest
from ..settings import NotificationsSettings

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=2)
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


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


async def send_email_batch(service: Service) -> int:
    """Send one batch of due immediate email; returns how many were claimed."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    async with service.unit_of_work() as uow:
        claimed = await uow.connection.fetch(
            """UPDATE notifications n SET next_attempt_at = now() + $2::interval
               FROM contact_details c
               WHERE n.id IN (SELECT id FROM notifications WHERE status = 'pending' AND channel = 'email'
                              AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 AND c.resident_id = n.recipient_id
               RETURNING n.id, n.recipient_id, n.kind, n.params, n.source_event_id, n.attempts, c.email, c.language""",
            settings.dispatch_batch_size,
            LEASE,
        )
        await uow.connection.execute(  # queued for someone who removed their address since: nothing to send
            """UPDATE notifications SET status = 'failed', last_error = 'no contact details'
               WHERE status = 'pending' AND channel = 'email' AND next_attempt_at <= now()
                 AND NOT EXISTS (SELECT 1 FROM contact_details c WHERE c.resident_id = notifications.recipient_id)"""
        )
        await uow.commit()
    if not claimed:
        return 0
    mailer = Mailer(settings)
    recorded: set[object] = set()
    try:
        async with mailer.client() as smtp:
            for row in claimed:
                try:
                    message = render(row["kind"], row["language"], row["params"], settings.public_base_url)
                    await smtp.send_message(
                        compose(row["id"], row["email"], message, settings.mail_from, row["language"])
                    )
                    outcome = None
                except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:
                    outcome = f"{type(error).__name__}: {error}"
                # recorded at once, not per batch: a crash resends at most the message in hand (same Message-ID)
                await _record(service, [(row, outcome)])
                recorded.add(row["id"])
    except (aiosmtplib.SMTPException, OSError, TimeoutError) as error:  # the server cannot be reached at all
        await _record(
            service, [(row, f"{type(error).__name__}: {error}") for row in claimed if row["id"] not in recorded]
        )
    return len(claimed)


async def _record(service: Service, outcomes: list[tuple[object, str | None]]) -> None:
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    async with service.unit_of_work() as uow:
        for row, error in outcomes:
            attempts = row["attempts"] + 1  # type: ignore[index]
            common = dict(
                notification_id=row["id"],
                recipient_id=row["recipient_id"],
                channel="email",  # type: ignore[index]
                kind=row["kind"],
                source_event_id=row["source_event_id"],
                attempts=attempts,
            )  # type: ignore[index]
            if error is None:
                await uow.connection.execute(
                    "UPDATE notifications SET status = 'sent', attempts = $2, sent_at = now(), last_error = NULL "
                    "WHERE id = $1",
                    row["id"],
                    attempts,
                )  # type: ignore[index]
                uow.record(events.NotificationSent(**common))
                _email_outcomes(service).labels("sent").inc()
                continue
            final = attempts >= settings.email_max_attempts
            await uow.connection.execute(
                "UPDATE notifications SET status = $2, attempts = $3, last_error = $4, next_attempt_at = now() + $5 "
                "WHERE id = $1",
                row["id"],
                "failed" if final else "pending",
                attempts,
                error[:1000],
                retry_delay(attempts),  # type: ignore[index]
            )
            uow.record(events.NotificationFailed(**common, error=error[:1000], final=final))
            _email_outcomes(service).labels("failed" if final else "retried").inc()
            logger.warning("email %s failed (attempt %d): %s", row["id"], attempts, error)  # type: ignore[index]
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
    async with service.unit_of_work() as uow:
        waiting = await uow.connection.fetch(
            """SELECT DISTINCT n.recipient_id, p.frequency, p.last_digest_at FROM notifications n
               JOIN preferences p ON p.resident_id = n.recipient_id WHERE n.status = 'digest'"""
        )
    sent = 0
    for row in waiting:
        if digest_due(row["frequency"], row["last_digest_at"], now, settings.digest_hour):
            sent += await send_digest(service, row["recipient_id"])
    return sent


async def send_digest(service: Service, recipient_id: str) -> int:
    """One digest for one resident, of every waiting message; 0 when nothing waits (never an empty digest)."""
    settings: NotificationsSettings = service.settings  # type: ignore[assignment]
    digest_id = uuid.uuid4()
    async with service.unit_of_work() as uow:
        contact = await uow.connection.fetchrow(
            "SELECT email, language FROM contact_details WHERE resident_id = $1", recipient_id
        )
        items = await uow.connection.fetch(
            """SELECT id, kind, params FROM notifications WHERE recipient_id = $1 AND status = 'digest'
               ORDER BY created_at FOR UPDATE SKIP LOCKED""",
            recipient_id,
        )
        if not items or contact is None:
            return 0
        message = render_digest(
            [(r["kind"], r["params"]) for r in items], contact["language"], settings.public_base_url
        )
        async with Mailer(settings).client() as smtp:  # a failure rolls back: the items wait for the next try
            await smtp.send_message(
                compose(digest_id, contact["email"], message, settings.mail_from, contact["language"])
            )
        await uow.connection.execute(
            "UPDATE notifications SET status = 'sent', sent_at = now(), attempts = attempts + 1, digest_id = $2 "
            "WHERE id = ANY($1::uuid[])",
            [r["id"] for r in items],
            digest_id,
        )
        await uow.connection.execute(
            "UPDATE preferences SET last_digest_at = now() WHERE resident_id = $1", recipient_id
        )
        uow.record(
            *[
                events.NotificationSent(
                    notification_id=r["id"],
                    recipient_id=recipient_id,
                    channel="email",
                    kind=r["kind"],
                    source_event_id=None,
                    attempts=1,
                )
                for r in items
            ]
        )
        await uow.commit()
    return 1
