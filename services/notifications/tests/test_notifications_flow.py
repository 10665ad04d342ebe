"""The notifications service on the real stack: events from Kafka become inbox messages and email received by a
real SMTP server, in the right language, once — also when an event is delivered twice or the mail server is down."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller
from notifications.service import dispatch
from notifications.settings import NotificationsSettings

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint
from tests.keys import PRIVATE, PUBLIC
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WIJK = f"WK0599{uuid.uuid4().int % 100:02d}"  # an area of its own: other tests put events of WK036300 on Kafka
BUURT = f"BU{WIJK[2:]}01"
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
RUN = uuid.uuid4().hex[:6]  # other tests put events of their own residents on the same topics
OWNER, SUPPORTER, FOLLOWER, OFFICIAL = (f"{who}-{RUN}" for who in ("r-owner", "r-sup", "r-fol", "o-1"))
PORTAL = "https://portal.testdorp.example"


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + mint(
            PRIVATE,
            issuer="https://login.buurtkracht.local",
            audience="buurtkracht",
            subject=sub,
            roles=roles,
            areas=areas,
        )
    }


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"

    def to(self, address: str) -> list[email.message.EmailMessage]:
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]


class SmtpServer:
    """A real SMTP server (aiosmtpd) that can be stopped and started again on the same port."""

    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox, self.port, self._controller = mailbox, free_port(), None

    def start(self) -> None:
        self._controller = Controller(self.mailbox, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture(scope="module")
def smtp():
    mailbox = Mailbox()
    server = SmtpServer(mailbox)
    server.start()
    yield server, mailbox
    server.stop()


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory, smtp, consuming_service):
    group = f"notifications-test-{uuid.uuid4().hex[:6]}"
    # its dead-letter topic too: a stray record on the shared topics is parked there, as in production
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [*all_topics(), TopicSpec(dead_letter_topic(group), 1)])
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    settings = NotificationsSettings(
        service_name=group,
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        consumer_start="latest",
        smtp_port=smtp[0].port,
        dispatch_interval_seconds=0.2,
        relay_poll_interval_seconds=0.1,
        digest_check_seconds=3600,
        public_base_url=PORTAL,
        municipality_name="Gemeente Testdorp",
        municipality_primary_colour="#5A2D81",
    )
    async with consuming_service(settings) as service:
        yield service


async def publish(kafka_bootstrap: str, *events: Event) -> list[Envelope]:
    envelopes = [Envelope.wrap(event, SOURCE) for event in events]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event, envelope in zip(events, envelopes, strict=True):
            record = to_kafka(envelope)
            await producer.send_and_wait(event.topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    return envelopes


async def register(api, sub: str, address: str, language: str, roles=("resident",), areas=(BUURT,), **preferences):
    headers = token(sub, list(roles), list(areas))
    answer = await api.put("/api/v1/contact-details/me", json={"email": address, "language": language}, headers=headers)
    assert answer.status_code == 200, answer.text
    if preferences:
        assert (await api.put("/api/v1/preferences/me", json=preferences, headers=headers)).status_code == 200
    return headers


def facts(initiative_id: uuid.UUID) -> dict:
    return {"initiative_id": initiative_id, "area_code": BUURT, "title": "Geveltuinen", "initiators": [OWNER]}


async def test_events_become_inbox_messages_and_email_in_each_persons_language_once(
    api, service, kafka_bootstrap, smtp
):
    _, mailbox = smtp
    owner = await register(api, OWNER, "owner@example.nl", "nl")
    supporter = await register(api, SUPPORTER, "supporter@example.nl", "en")
    follower = await register(api, FOLLOWER, "follower@example.nl", "nl", frequency="daily")
    assert (await api.put("/api/v1/area-follows/me", json={"area_codes": [WIJK]}, headers=follower)).status_code == 200
    await register(api, OFFICIAL, "official@gemeente.example", "nl", roles=("official",), areas=(WIJK,))

    iid = uuid.uuid4()
    submitted = i.InitiativeSubmitted(
        **facts(iid),
        category="green",
        summary="Groen langs de gevels",
        requested_amount_cents=75_000,
        status="gathering_support",
        support_threshold=1,
        support_deadline=datetime.now(UTC) + timedelta(days=42),
    )
    envelopes = await publish(
        kafka_bootstrap,
        submitted,
        i.InitiativeSupported(**facts(iid), supporter_id=SUPPORTER, support_count=1),
        i.SupportThresholdReached(**facts(iid), support_count=1),
        i.InitiativeApproved(
            **facts(iid), official_id=OFFICIAL, requested_amount_cents=75_000, approved_amount_cents=70_000
        ),
    )
    await publish(kafka_bootstrap, submitted)  # a new envelope of the same fact: a new event id
    record = to_kafka(envelopes[0])  # the same event delivered again
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    await producer.stop()

    async def owner_mail():
        return (
            len(mailbox.to("owner@example.nl")) >= 5
            and mailbox.to("supporter@example.nl")
            and mailbox.to("official@gemeente.example")
        )

    assert await eventually(owner_mail), [m["Subject"] for m in mailbox.messages]
    await asyncio.sleep(1.0)  # anything duplicated would have arrived by now
    subjects = sorted(m["Subject"] for m in mailbox.to("owner@example.nl"))
    assert subjects == sorted(
        [
            "Je initiatief 'Geveltuinen' is ingediend",
            "Je initiatief 'Geveltuinen' is ingediend",
            "Een buur steunt 'Geveltuinen'",
            "Genoeg steun voor 'Geveltuinen'",
            "'Geveltuinen' is goedgekeurd",
        ]
    )
    assert [m["Subject"] for m in mailbox.to("supporter@example.nl")] == ["'Geveltuinen' was approved"]
    assert [m["Subject"] for m in mailbox.to("official@gemeente.example")] == [
        f"Ter beoordeling: 'Geveltuinen' ({BUURT})"
    ]
    approved = next(m for m in mailbox.to("owner@example.nl") if "goedgekeurd" in m["Subject"])
    assert "€ 700,00" in approved.get_body(("plain",)).get_content()
    assert approved.get_body(("html",)) is not None and approved["Message-ID"].endswith("@buurtkracht>")

    inbox = (await api.get("/api/v1/inbox", headers=owner)).json()
    assert inbox["total"] == 5 and inbox["unread"] == 5
    assert sorted(item["kind"] for item in inbox["items"]) == sorted(
        ["initiative_submitted", "initiative_submitted", "new_supporter", "threshold_reached", "initiative_approved"]
    )
    read = await api.post(f"/api/v1/inbox/{inbox['items'][0]['id']}/read", headers=owner)
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert (await api.get("/api/v1/inbox", headers=owner)).json()["unread"] == 4
    other = await api.post(f"/api/v1/inbox/{inbox['items'][0]['id']}/read", headers=supporter)
    assert other.status_code == 404

    assert mailbox.to("follower@example.nl") == [], "a daily digest waits"
    statuses = (await api.get("/api/v1/notifications/me", headers=follower)).json()
    assert {(n["channel"], n["status"]) for n in statuses} == {("inbox", "delivered"), ("email", "digest")}
    assert await dispatch.send_digest(service, FOLLOWER) == 1
    assert await dispatch.send_digest(service, FOLLOWER) == 0, "a digest is never empty"
    [digest] = mailbox.to("follower@example.nl")
    assert digest["Subject"] == "Buurtkracht: 2 nieuwe meldingen"
    text, html = digest.get_body(("plain",)).get_content(), digest.get_body(("html",)).get_content()
    link = f"{PORTAL}/initiatieven/{iid}"
    assert html.count(f'<a class="button" href="{link}"') == 2 and text.count(f": {link}") == 2, "a link each"
    assert text.count("Initiatief: Geveltuinen") == 2 and text.count(f"Buurt: {BUURT}") == 2
    assert "<style" not in html and f"{PORTAL}/inbox" in text and "Gemeente Testdorp" in text


async def test_email_waits_in_the_database_while_the_mail_server_is_down(api, service, kafka_bootstrap, smtp):
    controller, mailbox = smtp
    await register(api, OWNER, "owner@example.nl", "nl")
    iid = uuid.uuid4()
    controller.stop()
    try:
        await publish(kafka_bootstrap, i.InitiativeRejected(**facts(iid), official_id=OFFICIAL, reason="Buiten budget"))

        async def failed_once():
            async with service.pool.acquire() as conn:
                return await conn.fetchrow(
                    """SELECT attempts, last_error, status FROM notifications
                       WHERE channel = 'email' AND kind = 'initiative_rejected' AND params->>'initiative_id' = $1""",
                    str(iid),
                )

        row = await eventually(lambda: _attempted(failed_once))
        assert row["status"] == "pending" and row["attempts"] >= 1 and row["last_error"]
    finally:
        controller.start()
    async with service.pool.acquire() as conn:
        await conn.execute("UPDATE notifications SET next_attempt_at = now() WHERE status = 'pending'")

    async def delivered():
        return [m for m in mailbox.to("owner@example.nl") if "afgewezen" in m["Subject"]]

    assert len(await eventually(delivered)) == 1


async def test_a_supporter_who_joins_as_co_initiator_is_announced_to_the_initiators_not_as_support_withdrawn(
    api, service, kafka_bootstrap
):
    owner, joiner = f"r-owner-co-{RUN}", f"r-joiner-{RUN}"
    iid = uuid.uuid4()
    before = {"initiative_id": iid, "area_code": BUURT, "title": "Geveltuinen", "initiators": [owner]}
    after = before | {"initiators": [owner, joiner]}
    await publish(
        kafka_bootstrap,
        i.InitiativeSupported(**before, supporter_id=joiner, support_count=1),
        i.InitiativeSupportWithdrawn(**before, supporter_id=joiner, support_count=0, reason="became_initiator"),
        i.CoInitiatorJoined(**after, resident_id=joiner),
    )

    async def owner_kinds():
        inbox = (await api.get("/api/v1/inbox", headers=token(owner, ["resident"], [BUURT]))).json()
        kinds = sorted(item["kind"] for item in inbox["items"])
        return kinds if "co_initiator_joined" in kinds else None

    assert await eventually(owner_kinds) == ["co_initiator_joined", "new_supporter"]
    joiners_inbox = (await api.get("/api/v1/inbox", headers=token(joiner, ["resident"], [BUURT]))).json()
    assert joiners_inbox["total"] == 0, "the resident who joined is not told of their own joining"


async def test_steering_group_members_hear_of_joining_leaving_and_proposals_to_vote_on_but_the_actors_do_not(
    api, service, kafka_bootstrap, smtp
):
    _, mailbox = smtp
    chair, member, leaver, proposer = (f"{who}-{RUN}" for who in ("m-chair", "m-new", "m-gone", "m-proposer"))
    await register(api, member, f"member-{RUN}@example.nl", "en")
    changer = f"o-steering-{RUN}"
    round_id = uuid.uuid4()
    await publish(
        kafka_bootstrap,
        v.SteeringGroupChanged(
            area_code=BUURT,
            member_ids=[proposer, chair, member],
            chair_id=chair,
            joined_member_ids=[chair, member],
            left_member_ids=[leaver],
            changed_by=changer,
        ),
        v.AwardProposed(
            round_id=round_id,
            area_code=BUURT,
            initiative_id=uuid.uuid4(),
            decision_id=uuid.uuid4(),
            amount_cents=50_000,
            proposed_by=proposer,
            quorum=2,
            eligible_member_ids=[proposer, chair, member],
        ),
    )

    async def kinds_of(resident_id: str) -> list[str]:
        inbox = (await api.get("/api/v1/inbox", headers=token(resident_id, ["resident"], [BUURT]))).json()
        return sorted(item["kind"] for item in inbox["items"])

    async def member_told_both():
        kinds = await kinds_of(member)
        return kinds if len(kinds) == 2 else None

    assert await eventually(member_told_both) == ["award_to_vote", "steering_group_joined"]
    assert await kinds_of(chair) == ["award_to_vote", "steering_group_chair"]
    assert await kinds_of(leaver) == ["steering_group_left"]
    assert await kinds_of(proposer) == [] and await kinds_of(changer) == []

    async def member_mail():
        subjects = sorted(m["Subject"] for m in mailbox.to(f"member-{RUN}@example.nl"))
        return subjects if len(subjects) == 2 else None

    assert await eventually(member_mail) == [
        "Vote on a proposal to award €500.00",
        f"You are a member of the steering group of {BUURT}",
    ]


async def _attempted(query):
    row = await query()
    return row if row and row["attempts"] >= 1 else None


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/v1/contact-details/me", {"email": "not-an-address", "language": "nl"}, "email"),
        ("/api/v1/contact-details/me", {"email": "a@b.nl", "language": "fr"}, "language"),
        ("/api/v1/contact-details/me", {"email": "a\x00@b.nl", "language": "nl"}, "email"),
        ("/api/v1/contact-details/me", {"email": "a@b.nl\u2028", "language": "nl"}, "email"),
        ("/api/v1/preferences/me", {"muted_kinds": ["\x00"]}, "muted_kinds.0"),
        ("/api/v1/preferences/me", {"frequency": "hourly"}, "frequency"),
        ("/api/v1/preferences/me", {"muted_kinds": ["spam"]}, "muted_kinds"),
        ("/api/v1/area-follows/me", {"area_codes": ["Amsterdam"]}, "area_codes.0"),
    ],
)
async def test_invalid_input_is_422_naming_the_field(api, path, body, field):
    answer = await api.put(path, json=body, headers=token("r-x", ["resident"], [BUURT]))
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert field in [error["field"] for error in answer.json()["errors"]]


async def test_an_inbox_offset_beyond_any_page_is_422_naming_the_field(api):
    headers = token("r-x", ["resident"], [BUURT])
    answer = await api.get("/api/v1/inbox", params={"offset": 10_000_000_000_000_000_000}, headers=headers)
    assert answer.status_code == 422 and answer.headers["content-type"] == "application/problem+json"
    assert "offset" in [error["field"] for error in answer.json()["errors"]]
    largest = await api.get("/api/v1/inbox", params={"offset": 2**31 - 1}, headers=headers)
    assert largest.status_code == 200 and largest.json()["items"] == []


async def test_forgetting_removes_the_address(api):
    headers = await register(api, "r-gone", "gone@example.nl", "en")
    assert (await api.delete("/api/v1/contact-details/me", headers=headers)).status_code == 204
    assert (await api.get("/api/v1/contact-details/me", headers=headers)).status_code == 404


async def test_an_email_that_cannot_be_composed_fails_for_good_and_the_batch_goes_on(api, service, smtp):
    _, mailbox = smtp
    await register(api, "r-compose", "compose@example.nl", "nl")
    broken, fine = uuid.uuid4(), uuid.uuid4()
    async with service.pool.acquire() as conn:
        await conn.executemany(
            """INSERT INTO notifications (id, dedup_key, recipient_id, channel, kind, params, status, next_attempt_at)
               VALUES ($1::uuid, $1::text, 'r-compose', 'email', $2, $3, 'pending', now() - $4::interval)""",
            [
                (broken, "kind_without_a_template", {"title": "x"}, timedelta(minutes=2)),  # first in the batch
                (
                    fine,
                    "initiative_rejected",
                    {"title": "Bankjes", "reason": "Te duur", "initiative_id": "x"},
                    timedelta(minutes=1),
                ),
            ],
        )

    async def sent():
        return [m for m in mailbox.to("compose@example.nl") if "Bankjes" in m["Subject"]]

    assert len(await eventually(sent)) == 1
    async with service.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT status, attempts, last_error FROM notifications WHERE id = $1", broken)
    assert row["status"] == "failed" and row["attempts"] == 1
    assert row["last_error"].startswith("cannot be composed: KeyError")


def everything(message: email.message.EmailMessage) -> str:
    """What a recipient can read of a message: every header and every part, decoded."""
    headers = "\n".join(f"{name}: {value}" for name, value in message.items())
    return headers + "\n" + "\n".join(str(part.get_content()) for part in message.walk() if not part.is_multipart())


async def test_emails_name_their_initiative_round_and_area_link_to_the_portal_and_name_no_other_resident(
    api, service, kafka_bootstrap, smtp
):
    _, mailbox = smtp
    owner, pledger, neighbour = (f"{who}-{RUN}" for who in ("r-owner-mail", "r-pledger", "r-neighbour"))
    addresses = {who: f"{who}@example.nl" for who in (owner, pledger, neighbour)}
    await register(api, owner, addresses[owner], "nl")
    await register(api, pledger, addresses[pledger], "en")
    await register(api, neighbour, addresses[neighbour], "nl")
    iid, rid = uuid.uuid4(), uuid.uuid4()
    about = {"initiative_id": iid, "area_code": BUURT, "title": "Bankjes bij de speeltuin", "initiators": [owner]}
    await publish(kafka_bootstrap, i.InitiativeSupported(**about, supporter_id=neighbour, support_count=1))

    async def learnt(query: str, key: uuid.UUID):
        async with service.pool.acquire() as conn:
            return await conn.fetchval(query, key)

    # the vouchers events come on another topic: they are published once the initiative (and then the round) is known
    assert await eventually(lambda: learnt("SELECT title FROM initiatives_known WHERE initiative_id = $1", iid))
    opened = datetime.now(UTC)
    await publish(
        kafka_bootstrap,
        v.RoundOpened(
            round_id=rid,
            area_code=BUURT,
            name="Voorjaarsronde",
            mechanism="pledge",
            total_budget_cents=500_000,
            voucher_amount_cents=2_500,
            opens_at=opened,
            closes_at=opened + timedelta(days=14),
        ),
    )
    assert await eventually(lambda: learnt("SELECT name FROM rounds_known WHERE round_id = $1", rid))
    await publish(
        kafka_bootstrap,
        v.WalletsIssued(
            round_id=rid,
            area_code=BUURT,
            resident_ids=[pledger, neighbour],
            voucher_amount_cents=2_500,
            issued_cents=5_000,
        ),
        v.PledgeMade(
            round_id=rid,
            area_code=BUURT,
            pledge_id=uuid.uuid4(),
            initiative_id=iid,
            resident_id=pledger,
            amount_cents=2_500,
            wallet_balance_cents=0,
            pledged_to_initiative_cents=2_500,
            requested_amount_cents=2_500,
        ),
        v.PayoutSettled(
            round_id=rid,
            area_code=BUURT,
            initiative_id=iid,
            initiators=[owner],
            payout_id=uuid.uuid4(),
            payout_reference="BK-2026-000123",
            amount_cents=12_345,
            bank_reference="NL-BANK-1",
        ),
    )

    async def all_mail():
        counts = {owner: 2, pledger: 2, neighbour: 1}
        got = {who: mailbox.to(address) for who, address in addresses.items()}
        return got if all(len(got[who]) >= count for who, count in counts.items()) else None

    received = await eventually(all_mail)
    assert received, {who: [m["Subject"] for m in mailbox.to(address)] for who, address in addresses.items()}

    [payout] = [m for m in received[owner] if m["Subject"].startswith("Betaald")]
    assert payout["Subject"] == "Betaald: € 123,45 voor 'Bankjes bij de speeltuin' (kenmerk BK-2026-000123)"
    assert payout.get_content_type() == "multipart/alternative"
    text, html = payout.get_body(("plain",)).get_content(), payout.get_body(("html",)).get_content()
    link = f"{PORTAL}/initiatieven/{iid}"
    assert f"Bekijk je initiatief: {link}" in text and f'<a class="button" href="{link}"' in html
    assert "Initiatief: Bankjes bij de speeltuin" in text and f"Buurt: {BUURT}" in text
    assert "Budgetronde: Voorjaarsronde" in text
    assert "<style" not in html and 'lang="nl"' in html and "Gemeente Testdorp" in html and "#5A2D81" in html

    [pledged] = [m for m in received[pledger] if m["Subject"].startswith("You gave")]
    assert pledged["Subject"] == "You gave €25.00 to 'Bankjes bij de speeltuin'"
    text = pledged.get_body(("plain",)).get_content()
    assert f"See the budget round: {PORTAL}/rondes/{rid}" in text
    assert "Budget round: Voorjaarsronde" in text and f"Neighbourhood: {BUURT}" in text
    assert 'lang="en"' in pledged.get_body(("html",)).get_content()

    for who, messages in received.items():
        for message in messages:
            readable = everything(message)
            for other in addresses.keys() - {who}:
                assert other not in readable and addresses[other] not in readable, (who, message["Subject"], other)


async def test_an_email_names_its_area_as_the_registry_told_it(api, service, kafka_bootstrap, smtp):
    _, mailbox = smtp
    named = f"BU{WIJK[2:]}02"
    owner = f"r-owner-named-{RUN}"
    await register(api, owner, f"{owner}@example.nl", "nl", areas=(named,))
    await publish(
        kafka_bootstrap, i.AreaRegistered(code=named, name=f"Oude Kerk {RUN}", kind="buurt", parent_code=WIJK)
    )

    async def known():
        async with service.unit_of_work() as uow:
            return await uow.areas.names([named])

    assert await eventually(known) == {named: f"Oude Kerk {RUN}"}
    about = {"initiative_id": uuid.uuid4(), "area_code": named, "title": "Bloembakken", "initiators": [owner]}
    await publish(kafka_bootstrap, i.InitiativeSupported(**about, supporter_id=f"r-n-{RUN}", support_count=1))
    [message] = await eventually(lambda: asyncio.sleep(0, mailbox.to(f"{owner}@example.nl")))
    text, html = message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()
    assert f"Buurt: Oude Kerk {RUN}" in text and f"Oude Kerk {RUN}" in html
    assert named not in text.replace(f"/buurten/{named}", "")
