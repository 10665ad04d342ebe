"""Notifications in PostgreSQL (the only SQL about them): the queue of messages per recipient and channel, the
in-app inbox, and the email sender's leases and outcomes.

Invariants kept here:
- a (dedup key, recipient, channel) triple is stored once: the dedup key is the id of the event that caused
  the message, so a redelivered event adds nothing;
- a due email is claimed with a short lease (`FOR UPDATE SKIP LOCKED`, pushing `next_attempt_at` on), so two
  senders never hold the same message; a digest's messages are locked the same way while it is sent;
- a message is kept `message_retention_days` once it is in the inbox, sent or failed for good (housekeeping);
  one still to be sent is never deleted but with its recipient.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from buurtkracht_kit.housekeeping import Sweep

MAX_ERROR_LENGTH = 1000


@dataclass(frozen=True)
class NewNotification:
    recipient_id: str
    channel: str  # "email" or "inbox"
    kind: str
    params: dict[str, Any]
    dedup_key: str
    source_event_id: uuid.UUID | None
    status: str  # "pending" (email to send now), "digest" (email in the next digest), "delivered" (inbox)


@dataclass(frozen=True)
class Stored:
    id: uuid.UUID
    recipient_id: str
    channel: str
    kind: str
    params: dict[str, Any]
    source_event_id: uuid.UUID | None
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    read_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class DueEmail:
    """An immediate email leased for one attempt, with the address and language to send it in."""

    id: uuid.UUID
    recipient_id: str
    kind: str
    params: dict[str, Any]
    source_event_id: uuid.UUID | None
    attempts: int  # attempts made before this one
    email: str
    language: str


@dataclass(frozen=True)
class AwaitingDigest:
    """A resident with messages waiting for their digest, and when they last got one."""

    recipient_id: str
    frequency: str
    last_digest_at: datetime | None


@dataclass(frozen=True)
class DigestItem:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]


_COLUMNS = (
    "id, recipient_id, channel, kind, params, source_event_id, status, attempts, created_at, sent_at, read_at, "
    "last_error"
)


def sweeps(retention_days: float) -> list[Sweep]:
    """Housekeeping: inbox items (read or not) and email sent or failed for good go after `retention_days`;
    0 keeps them until their recipient is forgotten."""
    if retention_days <= 0:
        return []
    return [
        Sweep(
            "notifications",
            "created_at",
            timedelta(days=retention_days),
            where="status IN ('delivered', 'sent', 'failed')",
        )
    ]


class Notifications:
    def __init__(self, connection: asyncpg.Connection) -> None:
        self._conn = connection

    # -- queueing --------------------------------------------------------------------------------
    async def add(self, notifications: list[NewNotification]) -> int:
        """Store new notifications, skipping those stored before (same event, recipient, channel); returns how
        many new."""
        if not notifications:
            return 0
        rows = await self._conn.fetch(
            """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, source_event_id, status,
                                          sent_at)
               SELECT gen_random_uuid(), d, r, c, k, p, e, s, CASE WHEN s = 'delivered' THEN now() END
               FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::uuid[], $7::text[])
                    AS t(d, r, c, k, p, e, s)
               ON CONFLICT (dedup_key, recipient_id, channel) DO NOTHING RETURNING id""",
            [n.dedup_key for n in notifications],
            [n.recipient_id for n in notifications],
            [n.channel for n in notifications],
            [n.kind for n in notifications],
            [n.params for n in notifications],
            [n.source_event_id for n in notifications],
            [n.status for n in notifications],
        )
        return len(rows)

    async def to_inbox(
        self,
        recipient_id: str,
        kind: str,
        params: dict[str, Any],
        dedup_key: str,
        source_event_id: uuid.UUID | None = None,
    ) -> int:
        """Put one message in a recipient's in-app inbox (once per dedup key)."""
        return await self.add(
            [NewNotification(recipient_id, "inbox", kind, params, dedup_key, source_event_id, "delivered")]
        )

    # -- the inbox and delivery status -----------------------------------------------------------
    async def inbox(self, recipient_id: str, limit: int, offset: int) -> tuple[list[Stored], int, int]:
        """A page of the recipient's inbox (newest first), the total and the unread count."""
        rows = await self._conn.fetch(
            f"""SELECT {_COLUMNS} FROM notifications WHERE recipient_id = $1 AND channel = 'inbox'
                ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
            recipient_id,
            limit,
            offset,
        )
        total, unread = await self._conn.fetchrow(
            """SELECT count(*), count(*) FILTER (WHERE read_at IS NULL) FROM notifications
               WHERE recipient_id = $1 AND channel = 'inbox'""",
            recipient_id,
        )
        return [Stored(**dict(r)) for r in rows], total, unread

    async def mark_read(self, recipient_id: str, notification_id: uuid.UUID) -> Stored | None:
        row = await self._conn.fetchrow(
            f"""UPDATE notifications SET read_at = coalesce(read_at, now())
                WHERE id = $1 AND recipient_id = $2 AND channel = 'inbox' RETURNING {_COLUMNS}""",
            notification_id,
            recipient_id,
        )
        return Stored(**dict(row)) if row else None

    async def of_recipient(self, recipient_id: str, limit: int) -> list[Stored]:
        """Every message of a recipient on every channel, with its delivery status (newest first)."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE recipient_id = $1 ORDER BY created_at DESC LIMIT $2",
            recipient_id,
            limit,
        )
        return [Stored(**dict(r)) for r in rows]

    async def all_of_recipient(self, recipient_id: str) -> list[Stored]:
        """Every message of a recipient on every channel, oldest first."""
        rows = await self._conn.fetch(
            f"SELECT {_COLUMNS} FROM notifications WHERE recipient_id = $1 ORDER BY created_at, id", recipient_id
        )
        return [Stored(**dict(r)) for r in rows]

    async def forget_recipient(self, recipient_id: str) -> int:
        """Delete every message addressed to the recipient, whatever its channel or state; returns how many."""
        done = await self._conn.execute("DELETE FROM notifications WHERE recipient_id = $1", recipient_id)
        return int(done.split()[-1])

    # -- immediate email -------------------------------------------------------------------------
    async def claim_due_email(self, limit: int, lease: timedelta) -> list[DueEmail]:
        """Lease up to `limit` due immediate emails of recipients with an address, oldest due first; commit at
        once, before sending."""
        rows = await self._conn.fetch(
            """UPDATE notifications n SET next_attempt_at = now() + $2::interval
               FROM contact_details c
               WHERE n.id IN (SELECT id FROM notifications WHERE status = 'pending' AND channel = 'email'
                              AND next_attempt_at <= now() ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
                 AND c.resident_id = n.recipient_id
               RETURNING n.id, n.recipient_id, n.kind, n.params, n.source_event_id, n.attempts, c.email, c.language""",
            limit,
            lease,
        )
        return [DueEmail(**dict(row)) for row in rows]

    async def fail_without_address(self) -> None:
        """Due email queued for someone who removed their address since: nothing to send, failed for good."""
        await self._conn.execute(
            """UPDATE notifications SET status = 'failed', last_error = 'no contact details'
               WHERE status = 'pending' AND channel = 'email' AND next_attempt_at <= now()
                 AND NOT EXISTS (SELECT 1 FROM contact_details c WHERE c.resident_id = notifications.recipient_id)"""
        )

    async def mark_sent(self, notification_id: uuid.UUID, attempts: int) -> None:
        await self._conn.execute(
            "UPDATE notifications SET status = 'sent', attempts = $2, sent_at = now(), last_error = NULL WHERE id = $1",
            notification_id,
            attempts,
        )

    async def mark_failed_attempt(
        self, notification_id: uuid.UUID, attempts: int, error: str, final: bool, retry_in: timedelta
    ) -> None:
        """Record a failed attempt: failed for good when `final`, else due again after `retry_in`."""
        await self._conn.execute(
            "UPDATE notifications SET status = $2, attempts = $3, last_error = $4, next_attempt_at = now() + $5 "
            "WHERE id = $1",
            notification_id,
            "failed" if final else "pending",
            attempts,
            error[:MAX_ERROR_LENGTH],
            retry_in,
        )

    # -- digests ---------------------------------------------------------------------------------
    async def awaiting_digest(self) -> list[AwaitingDigest]:
        """Every resident with messages waiting for their digest."""
        rows = await self._conn.fetch(
            """SELECT DISTINCT n.recipient_id, p.frequency, p.last_digest_at FROM notifications n
               JOIN preferences p ON p.resident_id = n.recipient_id WHERE n.status = 'digest'"""
        )
        return [AwaitingDigest(**dict(row)) for row in rows]

    async def lock_digest_items(self, recipient_id: str) -> list[DigestItem]:
        """The messages waiting for the resident's digest, oldest first, locked until this transaction ends
        (skipping any another sender holds)."""
        rows = await self._conn.fetch(
            """SELECT id, kind, params FROM notifications WHERE recipient_id = $1 AND status = 'digest'
               ORDER BY created_at FOR UPDATE SKIP LOCKED""",
            recipient_id,
        )
        return [DigestItem(**dict(row)) for row in rows]

    async def mark_digest_sent(self, notification_ids: list[uuid.UUID], digest_id: uuid.UUID) -> None:
        await self._conn.execute(
            "UPDATE notifications SET status = 'sent', sent_at = now(), attempts = attempts + 1, digest_id = $2 "
            "WHERE id = ANY($1::uuid[])",
            notification_ids,
            digest_id,
        )
