"""Migrations that change what is stored, on rows stored before them: messages stored with their whole event keep only
what their templates use, and every one of them still renders."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from notifications.domain.messages import render
from notifications.domain.recipients import KINDS, params
from yoyo import get_backend, read_migrations

from buurtkracht_contracts import vouchers as v
from buurtkracht_kit.db import create_pool
from buurtkracht_kit.migrations import KIT_MIGRATIONS, _yoyo_url

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def apply(database: str, up_to: str | None = None) -> None:
    """Apply the kit's and this service's migrations; with `up_to`, only those before it."""
    backend = get_backend(_yoyo_url(database))
    every = read_migrations(str(KIT_MIGRATIONS), str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(every)
        if up_to is not None:
            pending = pending.filter(lambda migration: migration.id < up_to)
        backend.apply_migrations(pending)


def decided() -> v.AwardDecided:
    return v.AwardDecided(
        round_id=uuid.uuid4(),
        area_code="BU03630001",
        initiative_id=uuid.uuid4(),
        decision_id=uuid.uuid4(),
        amount_cents=50_000,
        awarded=False,
        votes=[v.Vote(member_id="m-1", vote="for"), v.Vote(member_id="m-2", vote="against")],
        quorum=3,
        proposed_by="m-1",
    )


async def test_messages_stored_with_their_whole_event_keep_only_what_their_templates_use(scratch_database):
    await asyncio.to_thread(apply, scratch_database, "0006_message_params")
    event = decided()
    whole = event.model_dump(mode="json") | {"votes_for": 1, "votes_against": 1, "votes_cast": 2}
    whole |= {"initiative_title": "Bankjes", "initiators": ["r-owner", "r-co"]}
    submitted = {"title": "Bankjes", "initiators": ["r-owner"], "summary": "Drie", "initiative_id": str(uuid.uuid4())}
    stored = [
        ("award_declined", "inbox", "delivered", whole),
        ("award_declined", "email", "pending", whole),
        ("new_initiative_in_area", "email", "digest", submitted),
        ("a_kind_of_long_ago", "inbox", "delivered", {"resident_id": "r-owner"}),
    ]
    pool = await create_pool(scratch_database)
    try:
        await pool.executemany(
            """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, status)
               VALUES (gen_random_uuid(), gen_random_uuid()::text, 'r-owner', $2, $1, $4, $3)""",
            stored,
        )
        await asyncio.to_thread(apply, scratch_database)
        rows = await pool.fetch("SELECT kind, channel, params FROM notifications ORDER BY kind, channel")
    finally:
        await pool.close()

    kept = {(row["kind"], row["channel"]): row["params"] for row in rows}
    later = {"area_code"}  # what messages keep since they name their area (0009 adds it where the initiative is known)
    assert kept[("award_declined", "inbox")] == kept[("award_declined", "email")]
    assert kept[("award_declined", "email")] == {
        name: value
        for name, value in params(event, "award_declined", initiative_title="Bankjes").items()
        if name not in later
    }
    assert "m-1" not in str(kept) and "r-co" not in str(kept) and "votes" not in kept[("award_declined", "inbox")]
    assert kept[("new_initiative_in_area", "email")] == {k: submitted[k] for k in ("title", "summary", "initiative_id")}
    assert kept[("a_kind_of_long_ago", "inbox")] == {"resident_id": "r-owner"}, "a kind it does not know is left"
    for (kind, _), values in kept.items():
        if kind in KINDS:
            for language in ("nl", "en"):
                assert render(kind, language, values, "https://b.example").subject
