"""Notifications in PostgreSQL: the queue of messages per recipient and channel, and the in-app inbox.

A (dedup key, recipient, channel) triple is stored once: the dedup key is the id of the event that
caused the message, so a redelivered event adds nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg


@dataclass(frozen=True)
class NewNotification:
    recipient_id: str
    channel: str  # "email" or "inbox"
    kind: str
    params: dict[str, Any]
    dedup_key: str
    source_event_id: uuid.UUID | None
    status: str  # "pending" (email to send now), "digest" (email in the next digest), "delivered" (inbox)


async def add(conn: asyncpg.Connection, notifications: list[NewNotification]) -> int:
    """Store new notifications, skipping those stored before (same event, recipient, channel); returns how many new."""
    if not notifications:
        return 0
    rows = await conn.fetch(
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
    conn: asyncpg.Connection,
    recipient_id: str,
    kind: str,
    params: dict[str, Any],
    dedup_key: str,
    source_event_id: uuid.UUID | None = None,
) -> int:
    """Put one message in a recipient's in-app inbox (once per dedup key)."""
    return await add(
        conn, [NewNotification(recipient_id, "inbox", kind, params, dedup_key, source_event_id, "delivered")]
    )


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


_COLUMNS = (
    "id, recipient_id, channel, kind, params, source_event_id, status, attempts, created_at, sent_at, read_at, "
    "last_error"
)


async def inbox(conn: asyncpg.Connection, recipient_id: str, limit: int, offset: int) -> tuple[list[Stored], int, int]:
    """A page of the recipient's inbox (newest first), the total and the unread count."""
    rows = await conn.fetch(
        f"""SELECT {_COLUMNS} FROM notifications WHERE recipient_id = $1 AND channel = 'inbox'
            ORDER BY created_at DESC, id LIMIT $2 OFFSET $3""",
        recipient_id,
        limit,
        offset,
    )
    total, unread = await conn.fetchrow(
        """SELECT count(*), count(*) FILTER (WHERE read_at IS NULL) FROM notifications
           WHERE recipient_id = $1 AND channel = 'inbox'""",
        recipient_id,
    )
    return [Stored(**dict(r)) for r in rows], total, unread


async def mark_read(conn: asyncpg.Connection, recipient_id: str, notification_id: uuid.UUID) -> Stored | None:
    row = await conn.fetchrow(
        f"""UPDATE notifications SET read_at = coalesce(read_at, now())
            WHERE id = $1 AND recipient_id = $2 AND channel = 'inbox' RETURNING {_COLUMNS}""",
        notification_id,
        recipient_id,
    )
    return Stored(**dict(row)) if row else None


async def of_recipient(conn: asyncpg.Connection, recipient_id: str, limit: int) -> list[Stored]:
    """Every message of a recipient on every channel, with its delivery status (newest first)."""
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE recipient_id = $1 ORDER BY created_at DESC LIMIT $2",
        recipient_id,
        limit,
    )
    return [Stored(**dict(r)) for r in rows]
