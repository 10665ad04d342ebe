"""A migration on rows stored before it (a module of its own: it needs a database that has not yet had it): messages
stored before messages named their initiative and area name them where this service knows the initiative, and
every one of them still renders with its link."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from notifications.domain.messages import render
from test_notifications_migrations import apply

from buurtkracht_kit.db import create_pool

pytestmark = pytest.mark.integration


async def test_messages_stored_before_they_named_their_initiative_and_area_name_them_where_it_is_known(
    scratch_database,
):
    await asyncio.to_thread(apply, scratch_database, "0009_message_context")
    known, unknown = uuid.uuid4(), uuid.uuid4()
    payout = {"amount_cents": 12_345, "payout_reference": "BK-1", "round_id": str(uuid.uuid4())}
    stored = [
        ("payout_settled", "email", "pending", payout | {"initiative_id": str(known)}),
        ("expense_approved", "inbox", "delivered", payout | {"initiative_id": str(unknown)}),
        ("new_supporter", "email", "digest", {"title": "Bankjes", "support_count": 2, "initiative_id": str(known)}),
        ("wallet_issued", "email", "pending", {"voucher_amount_cents": 2_500, "round_id": str(uuid.uuid4())}),
    ]
    pool = await create_pool(scratch_database)
    try:
        await pool.execute(
            "INSERT INTO initiatives_known (initiative_id, title, area_code) VALUES ($1, 'Bankjes', 'BU03630001')",
            known,
        )
        await pool.executemany(
            """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, status)
               VALUES (gen_random_uuid(), gen_random_uuid()::text, 'r-owner', $2, $1, $4, $3)""",
            stored,
        )
        await asyncio.to_thread(apply, scratch_database)
        rows = await pool.fetch("SELECT kind, params FROM notifications")
    finally:
        await pool.close()

    kept = {row["kind"]: row["params"] for row in rows}
    assert kept["payout_settled"] == payout | {
        "initiative_id": str(known),
        "initiative_title": "Bankjes",
        "area_code": "BU03630001",
    }
    assert kept["expense_approved"] == payout | {"initiative_id": str(unknown), "initiative_title": ""}
    assert kept["new_supporter"]["area_code"] == "BU03630001" and "initiative_title" not in kept["new_supporter"]
    assert "area_code" not in kept["wallet_issued"], "a round's area is not known to messages stored before"
    for kind, values in kept.items():
        for language in ("nl", "en"):
            message = render(kind, language, values, "https://b.example")
            assert message.subject and "https://b.example/" in message.text
    message = render("payout_settled", "nl", kept["payout_settled"], "https://b.example")
    assert "'Bankjes'" in message.subject and "Buurt: BU03630001" in message.text
