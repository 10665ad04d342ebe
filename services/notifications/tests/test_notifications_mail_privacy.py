"""A mail server that refuses a recipient and echoes the address in its reply: the reason that leaves the
service (the `NotificationFailed` event in the outbox, the log) carries the SMTP status codes and no trace of
the address. A real SMTP server (aiosmtpd) and real PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import traceback
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from notifications.app import create
from notifications.service import dispatch
from notifications.settings import NotificationsSettings

from buurtkracht_kit import migrations
from buurtkracht_kit.db import create_pool

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
ADDRESS = "Jan.Jansen+buurt@Example.nl"
LOCAL_PART = "jan.jansen+buurt"


class Refusing:
    """Refuses every recipient the way Postfix does, naming the address (lower-cased) and its mailbox."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options) -> str:
        mailbox = address.split("@", 1)[0].lower()
        return f"550 5.1.1 <{address.lower()}>: Recipient address rejected: mailbox {mailbox} unknown"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def smtp_port():
    controller = Controller(Refusing(), hostname="127.0.0.1", port=free_port())
    controller.start()
    yield controller.port
    controller.stop()


@pytest.fixture(scope="module")
async def service(scratch_database, smtp_port):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    settings = NotificationsSettings(
        service_name=f"notifications-privacy-{uuid.uuid4().hex[:6]}", database_url=scratch_database, smtp_port=smtp_port
    )
    service = create(settings)
    service.pool = await create_pool(scratch_database)
    yield service
    await service.pool.close()


def without_the_address(text: str) -> bool:
    lowered = text.lower()
    return ADDRESS.lower() not in lowered and LOCAL_PART not in lowered


async def resident(service, status: str) -> uuid.UUID:
    """A resident with the address, and one message for them waiting in `status` (pending: due now)."""
    notification_id = uuid.uuid4()
    async with service.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO contact_details (resident_id, email, language) VALUES ('r-refused', $1, 'nl')
               ON CONFLICT (resident_id) DO NOTHING""",
            ADDRESS,
        )
        await conn.execute(
            """INSERT INTO preferences (resident_id, frequency) VALUES ('r-refused', 'daily')
               ON CONFLICT (resident_id) DO NOTHING"""
        )
        await conn.execute(
            """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, status,
                                          next_attempt_at)
               VALUES ($1::uuid, $1::text, 'r-refused', 'email', 'initiative_rejected', $2, $3,
                       now() - $4::interval)""",
            notification_id,
            {"title": "Bankjes", "reason": "Te duur", "initiative_id": "x"},
            status,
            timedelta(minutes=1),
        )
    return notification_id


def logged(caplog) -> list[str]:
    """Every log record of ours (the SMTP server's own log aside), with its traceback."""
    return [
        record.getMessage() + "".join(traceback.format_exception(*record.exc_info) if record.exc_info else [])
        for record in caplog.records
        if not record.name.startswith("mail.")
    ]


async def test_a_refused_recipient_fails_with_the_smtp_codes_and_without_the_address(service, caplog):
    caplog.set_level(logging.DEBUG)
    notification_id = await resident(service, "pending")

    assert await dispatch.send_email_batch(service) == 1

    async with service.pool.acquire() as conn:
        (failed,) = await conn.fetch(
            "SELECT payload::text AS payload FROM outbox WHERE event_type LIKE '%notification-failed%'"
        )
        row = await conn.fetchrow("SELECT status, attempts FROM notifications WHERE id = $1", notification_id)
    assert row["status"] == "pending" and row["attempts"] == 1  # tried again later
    error = json.loads(failed["payload"])["error"]
    assert error.startswith("SMTPRecipientsRefused: 550 5.1.1 ") and "Recipient address rejected" in error
    assert without_the_address(failed["payload"]), failed["payload"]
    assert any(str(notification_id) in line and "550" in line for line in logged(caplog))
    assert all(without_the_address(line) for line in logged(caplog)), logged(caplog)


async def test_a_refused_digest_raises_without_the_address_and_its_messages_wait(service, caplog):
    caplog.set_level(logging.DEBUG)
    notification_id = await resident(service, "digest")

    with pytest.raises(Exception) as raised:
        await dispatch.send_digest(service, "r-refused")

    told = "".join(traceback.format_exception(raised.value))  # what the background loop logs
    assert "550" in told and without_the_address(told), told
    assert all(without_the_address(line) for line in logged(caplog)), logged(caplog)
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT status FROM notifications WHERE id = $1", notification_id) == "digest"
