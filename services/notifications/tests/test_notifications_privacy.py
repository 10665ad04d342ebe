"""A person's data in the notifications service on the real stack: what they can read of it (`GET /api/v1/me/export`),
forgetting them (`DELETE /api/v1/me`: erased here at once, `ResidentForgetRequested` told to every service, applied
again when heard back), events that still name them afterwards, forgetting only an address, and how long messages
are kept."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiosmtpd.controller import Controller
from notifications.adapters import notifications as messages
from notifications.app import SPEC
from notifications.settings import NotificationsSettings

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.kafka import from_kafka, to_kafka
from buurtkracht_contracts.notifications import ResidentForgetRequested, is_tombstone, new_tombstone
from buurtkracht_contracts.topics import NOTIFICATIONS_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import housekeeping, topics
from buurtkracht_kit.auth import mint
from tests.keys import PRIVATE, PUBLIC
from tests.personal_data import rows_naming
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WIJK = f"WK0598{uuid.uuid4().int % 100:02d}"  # an area of its own: other tests put events on the same topics
BUURT = f"BU{WIJK[2:]}01"
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers"
RUN = uuid.uuid4().hex[:6]
FORGET_TYPE = ResidentForgetRequested.event_type


def token(sub: str, roles: list[str], areas: list[str] = (BUURT,)) -> dict[str, str]:
    issued = mint(
        PRIVATE,
        issuer="https://login.buurtkracht.local",
        audience="buurtkracht",
        subject=sub,
        roles=roles,
        areas=list(areas),
    )
    return {"Authorization": f"Bearer {issued}"}


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]


@pytest.fixture(scope="module")
def mailbox():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    received = Mailbox()
    controller = Controller(received, hostname="127.0.0.1", port=port)
    controller.start()
    received.port = port
    yield received
    controller.stop()


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory, mailbox, consuming_service):
    group = f"notifications-privacy-{uuid.uuid4().hex[:6]}"
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [*all_topics(), TopicSpec(dead_letter_topic(group), 1)])
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    settings = NotificationsSettings(
        service_name=group,
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        consumer_start="latest",
        smtp_port=mailbox.port,
        dispatch_interval_seconds=0.2,
        relay_poll_interval_seconds=0.1,
        digest_check_seconds=3600,
        webhook_dispatch_interval_seconds=3600,  # deliveries stay queued: their bodies are part of what is erased
        webhook_allow_private_addresses=True,
    )
    async with consuming_service(settings) as service:
        yield service


async def publish(kafka_bootstrap: str, *events: Event, source: str = SOURCE) -> list[Envelope]:
    envelopes = [Envelope.wrap(event, source) for event in events]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event, envelope in zip(events, envelopes, strict=True):
            record = to_kafka(envelope)
            await producer.send_and_wait(event.topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    return envelopes


async def processed(service, *envelopes: Envelope) -> None:
    """Wait until the service's consumer has applied every one of `envelopes`."""
    ids = [str(envelope.id) for envelope in envelopes]

    async def all_in_the_inbox():
        count = await service.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
            service.settings.service_name,
            ids,
        )
        return count == len(ids)

    assert await eventually(all_in_the_inbox), "the events were not applied"


async def forget_requests_of(kafka_bootstrap: str, resident_id: str, after: dict[TopicPartition, int]) -> list:
    """The `ResidentForgetRequested` events about `resident_id` on the topic since the offsets `after`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(after))
        for partition, offset in after.items():
            consumer.seek(partition, offset)
        found = []
        batches = await consumer.getmany(timeout_ms=2000, max_records=10_000)
        for records in batches.values():
            for record in records:
                envelope = from_kafka(record.key, record.value, list(record.headers))
                if envelope.type == FORGET_TYPE and envelope.data["resident_id"] == resident_id:
                    found.append((record.key, envelope))
        return found
    finally:
        await consumer.stop()


async def end_offsets(kafka_bootstrap: str) -> dict[TopicPartition, int]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        partitions = [
            TopicPartition(NOTIFICATIONS_EVENTS, p) for p in await producer.partitions_for(NOTIFICATIONS_EVENTS)
        ]
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()


def initiative(initiators: list[str], **facts) -> dict:
    return {"initiative_id": uuid.uuid4(), "area_code": BUURT, "title": "Bankjes", "initiators": initiators} | facts


def submitted(initiators: list[str]) -> i.InitiativeSubmitted:
    return i.InitiativeSubmitted(
        **initiative(initiators),
        category="social",
        summary="Drie bankjes",
        requested_amount_cents=60_000,
        status="gathering_support",
        support_threshold=10,
        support_deadline=datetime.now(UTC) + timedelta(days=30),
    )


BALLOT_ROUND = uuid.uuid4()


def pledge_made(resident_id: str) -> v.PledgeMade:
    return v.PledgeMade(
        round_id=uuid.uuid4(),
        area_code=BUURT,
        pledge_id=uuid.uuid4(),
        initiative_id=uuid.uuid4(),
        resident_id=resident_id,
        amount_cents=2_500,
        wallet_balance_cents=0,
        pledged_to_initiative_cents=2_500,
        requested_amount_cents=2_500,
    )


async def someone_with_everything(api, service, kafka_bootstrap, who: str, address: str) -> dict[str, str]:
    """`who` as a resident, official and admin: registered, with preferences, followed areas, an official's areas,
    a webhook subscription, initiatives they are involved in, messages on every channel and queued deliveries."""
    headers = token(who, ["resident", "official", "admin"], [WIJK])
    assert (await api.put("/api/v1/contact-details/me", json={"email": address}, headers=headers)).status_code == 200
    assert (await api.put("/api/v1/preferences/me", json={"frequency": "daily"}, headers=headers)).status_code == 200
    assert (await api.put("/api/v1/area-follows/me", json={"area_codes": [WIJK]}, headers=headers)).status_code == 200
    subscription = await api.post(
        "/api/v1/webhook-subscriptions",
        json={"url": "http://127.0.0.1:9/hooks", "event_types": ["nl.buurtkracht.*"], "may_see_resident_ids": True},
        headers=headers,
    )
    assert subscription.status_code == 201, subscription.text
    owner, supporter = f"r-owner-{RUN}-{uuid.uuid4().hex[:4]}", f"r-sup-{RUN}"
    theirs, supported = submitted([who]), submitted([owner])
    envelopes = await publish(
        kafka_bootstrap,
        theirs,
        supported,
        i.InitiativeSupported(
            **initiative([owner], initiative_id=supported.initiative_id), supporter_id=who, support_count=1
        ),
        i.InitiativeSupported(
            **initiative([who], initiative_id=theirs.initiative_id), supporter_id=supporter, support_count=1
        ),
        pledge_made(who),
        v.BallotCast(round_id=BALLOT_ROUND, area_code=BUURT, resident_id=who, initiative_ids=[uuid.uuid4()]),
    )
    await processed(service, *envelopes)
    return headers


async def test_the_export_holds_everything_the_service_holds_about_the_caller_and_nothing_of_others(
    api, service, kafka_bootstrap
):
    who = f"r-export-{RUN}"
    headers = await someone_with_everything(api, service, kafka_bootstrap, who, f"export-{RUN}@example.nl")
    answer = await api.get("/api/v1/me/export", headers=headers)
    assert answer.status_code == 200, answer.text
    held = answer.json()
    assert held["subject"] == who
    assert (
        held["contact_details"]["email"] == f"export-{RUN}@example.nl" and held["contact_details"]["language"] == "nl"
    )
    assert held["preferences"]["frequency"] == "daily" and held["preferences"]["last_digest_at"] is None
    assert held["area_follows"] == [WIJK] and held["official_areas"] == [WIJK]
    assert sorted(item["role"] for item in held["involvement"]) == ["initiator", "supporter"]
    assert {item["title"] for item in held["involvement"]} == {"Bankjes"}
    inbox_kinds = sorted(item["kind"] for item in held["inbox"])
    assert inbox_kinds == ["initiative_submitted", "new_initiative_in_area", "new_supporter", "pledge_confirmed"]
    assert {item["channel"] for item in held["inbox"]} == {"inbox"}
    assert sorted((item["kind"], item["status"]) for item in held["email"]) == [
        (kind, "digest") for kind in inbox_kinds
    ], "email waits for the daily digest, with its status"
    assert [s["url"] for s in held["webhook_subscriptions"]] == ["http://127.0.0.1:9/hooks"]
    assert f"r-sup-{RUN}" not in answer.text, "another resident who supports their initiative is not named"
    assert [wallet["balance_cents"] for wallet in held["wallets"]] == [0], "the wallet its pledge emptied"
    assert held["ballot_rounds"] == [str(BALLOT_ROUND)]
    assert WIJK in held["areas_lived_in"], "the area their sign-in names"

    stranger = await api.get("/api/v1/me/export", headers=token(f"r-stranger-{RUN}", ["resident"]))
    assert stranger.status_code == 200 and stranger.json() == {
        "subject": f"r-stranger-{RUN}",
        "contact_details": None,
        "preferences": None,
        "area_follows": [],
        "official_areas": [],
        "involvement": [],
        "inbox": [],
        "email": [],
        "webhook_subscriptions": [],
        "areas_lived_in": [],
        "wallets": [],
        "ballot_rounds": [],
    }
    assert (await api.get("/api/v1/me/export")).status_code == 401


async def test_forgetting_me_leaves_no_row_naming_me_and_tells_every_service(api, service, kafka_bootstrap):
    who, address = f"r-forget-{RUN}", f"forget-{RUN}@example.nl"
    headers = await someone_with_everything(api, service, kafka_bootstrap, who, address)
    before = await rows_naming(service.pool, who)
    for table in (
        "contact_details",
        "preferences",
        "area_follows",
        "official_areas",
        "initiative_people",
        "notifications",
        "webhook_subscriptions",
        "webhook_deliveries",
        "area_residents",
        "wallets_known",
        "ballots_cast",
    ):
        assert any(column.startswith(f"{table}.") for column in before), f"{table} should hold them before"
    echoed = await service.pool.execute(  # an endpoint's answer kept in the log may echo what it was sent
        "UPDATE webhook_deliveries SET last_error = $2 WHERE strpos(body, $1) > 0",
        who,
        f"HTTP 400 Bad Request: unknown pledger {who}",
    )
    assert echoed != "UPDATE 0"
    offsets = await end_offsets(kafka_bootstrap)

    answer = await api.delete("/api/v1/me", headers=headers)

    assert answer.status_code == 202 and answer.content == b""
    left = await rows_naming(service.pool, who)
    # the one row allowed to name them: the event that tells every other service, until the relay has published it
    if left:
        assert left == {"outbox.aggregate_id": 1, "outbox.payload": 1}, left
        row = await service.pool.fetchrow("SELECT event_type FROM outbox WHERE aggregate_id = $1", who)
        assert row["event_type"] == FORGET_TYPE
    assert await rows_naming(service.pool, address) == {}
    [(key, told)] = await eventually(lambda: forget_requests_of(kafka_bootstrap, who, offsets))
    tombstone = told.data["tombstone"]
    assert key == who.encode() and is_tombstone(tombstone) and told.source == service.settings.event_source
    assert await eventually(lambda: _nothing_names(service.pool, who)), "published: not even the outbox names them"
    creators = await service.pool.fetch("SELECT created_by FROM webhook_subscriptions")
    assert tombstone in {row["created_by"] for row in creators}, "their subscription stays, made by the tombstone"
    assert (await rows_naming(service.pool, tombstone)).keys() >= {"webhook_deliveries.body"}

    export = (await api.get("/api/v1/me/export", headers=headers)).json()
    assert export["contact_details"] is None and export["inbox"] == [] and export["involvement"] == []

    again = await api.delete("/api/v1/me", headers=headers)
    assert again.status_code == 202
    told_twice = await eventually(lambda: _at_least(2, forget_requests_of(kafka_bootstrap, who, offsets)))
    tombstones = [envelope.data["tombstone"] for _, envelope in told_twice]
    assert tombstones[0] == tombstone and len(set(tombstones)) == 2, "a tombstone of its own for every request"


async def _at_least(count: int, found):
    found = await found
    return found if len(found) >= count else None


async def test_an_event_that_still_names_a_forgotten_resident_brings_back_neither_them_nor_their_address(
    api, service, kafka_bootstrap, mailbox
):
    who, address = f"r-late-{RUN}", f"late-{RUN}@example.nl"
    headers = token(who, ["resident"])
    assert (await api.put("/api/v1/contact-details/me", json={"email": address}, headers=headers)).status_code == 200
    [first] = await publish(kafka_bootstrap, pledge_made(who))
    await processed(service, first)
    assert await eventually(lambda: _mail_to(mailbox, address)), "they were told while they were known"
    assert (await api.delete("/api/v1/me", headers=headers)).status_code == 202
    tombstone = await service.pool.fetchval("SELECT tombstone FROM forgotten_residents")  # any: checked below
    assert tombstone

    owner = f"r-initiator-{RUN}"  # not a string that holds theirs: the scan finds any
    theirs = submitted([owner, who])
    late = await publish(
        kafka_bootstrap,
        pledge_made(who),  # published before the vouchers service heard they were forgotten
        theirs,
        i.InitiativeSupported(
            **initiative([owner], initiative_id=theirs.initiative_id), supporter_id=who, support_count=1
        ),
    )
    await processed(service, *late)
    await asyncio.sleep(1.0)  # time for an email, were one queued

    assert await rows_naming(service.pool, who) in ({}, {"outbox.aggregate_id": 1, "outbox.payload": 1})
    assert await eventually(lambda: _nothing_names(service.pool, who)), "nothing names them once published"
    assert await rows_naming(service.pool, address) == {}
    assert len(mailbox.to(address)) == 1, "nothing more was sent to their address"
    kinds = await service.pool.fetch(
        "SELECT recipient_id, kind FROM notifications WHERE recipient_id LIKE 'forgotten-%'"
    )
    assert kinds == [], "nobody is told anything as a tombstone"
    owner_inbox = (await api.get("/api/v1/inbox", headers=token(owner, ["resident"]))).json()
    assert sorted(item["kind"] for item in owner_inbox["items"]) == ["initiative_submitted", "new_supporter"]


async def _mail_to(mailbox: Mailbox, address: str):
    return mailbox.to(address)


async def _nothing_names(pool, text: str) -> bool:
    return await rows_naming(pool, text) == {}


async def test_a_forget_request_heard_from_the_topic_is_applied_and_a_second_time_changes_nothing(
    api, service, kafka_bootstrap
):
    who = f"r-heard-{RUN}"
    headers = token(who, ["resident"])
    assert (
        await api.put("/api/v1/contact-details/me", json={"email": f"heard-{RUN}@example.nl"}, headers=headers)
    ).status_code == 200
    [pledged] = await publish(kafka_bootstrap, pledge_made(who))
    await processed(service, pledged)
    request = ResidentForgetRequested(resident_id=who, tombstone=new_tombstone())
    source = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-notifications"
    heard = await publish(kafka_bootstrap, request, request, source=source)  # two envelopes of the same request
    await processed(service, *heard)
    assert await rows_naming(service.pool, who) == {}
    stored = await service.pool.fetchval(
        "SELECT count(*) FROM forgotten_residents WHERE tombstone = $1", request.tombstone
    )
    assert stored == 1


async def test_a_forgotten_resident_who_registers_again_is_told_of_what_names_them_from_then_on(
    api, service, kafka_bootstrap
):
    who = f"r-back-{RUN}"
    headers = token(who, ["resident"])
    assert (await api.delete("/api/v1/me", headers=headers)).status_code == 202
    [while_gone] = await publish(kafka_bootstrap, pledge_made(who))
    await processed(service, while_gone)
    assert (await api.get("/api/v1/inbox", headers=headers)).json()["total"] == 0

    answer = await api.put("/api/v1/contact-details/me", json={"email": f"back-{RUN}@example.nl"}, headers=headers)
    assert answer.status_code == 200
    [back] = await publish(kafka_bootstrap, pledge_made(who))
    await processed(service, back)
    assert [item["kind"] for item in (await api.get("/api/v1/inbox", headers=headers)).json()["items"]] == [
        "pledge_confirmed"
    ]


async def test_forgetting_an_address_keeps_preferences_follows_and_messages(api, service, kafka_bootstrap):
    who = f"r-address-{RUN}"
    headers = token(who, ["resident"])
    assert (
        await api.put("/api/v1/contact-details/me", json={"email": f"address-{RUN}@example.nl"}, headers=headers)
    ).status_code == 200
    assert (await api.put("/api/v1/preferences/me", json={"frequency": "weekly"}, headers=headers)).status_code == 200
    assert (await api.put("/api/v1/area-follows/me", json={"area_codes": [BUURT]}, headers=headers)).status_code == 200
    [pledged] = await publish(kafka_bootstrap, pledge_made(who))
    await processed(service, pledged)

    assert (await api.delete("/api/v1/contact-details/me", headers=headers)).status_code == 204

    held = (await api.get("/api/v1/me/export", headers=headers)).json()
    assert held["contact_details"] is None
    assert held["preferences"]["frequency"] == "weekly" and held["area_follows"] == [BUURT]
    assert [item["kind"] for item in held["inbox"]] == ["pledge_confirmed"]
    assert not await service.pool.fetchval(
        "SELECT EXISTS (SELECT 1 FROM outbox WHERE aggregate_id = $1 AND event_type = $2)", who, FORGET_TYPE
    ), "only the address: the other services are not told to forget anything"


async def test_messages_older_than_their_retention_are_deleted_and_those_still_to_send_never(service):
    pool = service.pool
    who = f"r-retention-{RUN}"
    ages = {
        "inbox-read": 400,
        "inbox-unread": 400,
        "sent": 400,
        "failed": 400,
        "pending": 400,
        "digest": 400,
        "inbox-recent": 10,
        "sent-recent": 10,
    }
    rows = []
    for name, days in ages.items():
        channel = "inbox" if name.startswith("inbox") else "email"
        status = {"inbox": "delivered"}.get(channel) or name.removesuffix("-recent")
        rows.append(
            (
                uuid.uuid4(),
                name,
                who,
                channel,
                status,
                timedelta(days=days),
                timedelta(days=days) if name == "inbox-read" else None,
            )
        )
    await pool.executemany(
        """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, status, created_at, read_at)
           VALUES ($1, $2, $3, $4, 'new_supporter', '{}', $5, now() - $6::interval, now() - $7::interval)""",
        rows,
    )

    assert housekeeping.Sweep in {type(s) for s in SPEC.sweeps(service.settings)}
    [configured] = [s for s in SPEC.sweeps(service.settings) if s.table == "notifications"]
    assert configured.keep == timedelta(days=365), "a year by default"
    assert messages.sweeps(0) == [], "0 keeps them"
    deleted = await housekeeping.sweep(pool, messages.sweeps(service.settings.message_retention_days))
    assert deleted["notifications"] >= 4
    left = await pool.fetch("SELECT dedup_key FROM notifications WHERE recipient_id = $1 ORDER BY dedup_key", who)
    assert [row["dedup_key"] for row in left] == ["digest", "inbox-recent", "pending", "sent-recent"]
