"""Reminders on the real stack: deadlines learnt from events on Kafka, reminder passes run at chosen moments (the
clock is given, nothing waits for days), inbox messages and email in each person's language, and nothing doubled:
not by a second pass, not by two passes at once, not by a restarted service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from notifications.adapters import reminders as reminded
from notifications.app import SPEC
from notifications.service.reminders import remind
from notifications.settings import NotificationsSettings
from test_notifications_flow import Mailbox, SmtpServer

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import housekeeping, topics
from buurtkracht_kit.auth import mint
from tests.keys import PRIVATE, PUBLIC
from tests.waiting import eventually

pytestmark = pytest.mark.integration

WIJK = f"WK0598{uuid.uuid4().int % 100:02d}"  # an area of its own
BUURT = f"BU{WIJK[2:]}01"
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers"
RUN = uuid.uuid4().hex[:6]
ANNA, BAS, CEM, DIRK, OWNER, OFFICIAL = (
    f"{who}-{RUN}" for who in ("r-anna", "r-bas", "r-cem", "r-dirk", "r-owner", "o-wijk")
)
T0 = datetime.now(UTC).replace(microsecond=0)  # when the events happened
DAY = timedelta(days=1)


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


@pytest.fixture(scope="module")
def mailbox():
    box = Mailbox()
    server = SmtpServer(box)
    server.start()
    yield server, box
    server.stop()


@pytest.fixture(scope="module")
async def settings(scratch_database, kafka_bootstrap, tmp_path_factory, mailbox):
    group = f"notifications-reminders-{uuid.uuid4().hex[:6]}"
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [*all_topics(), TopicSpec(dead_letter_topic(group), 1)])
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    return NotificationsSettings(
        service_name=group,
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        consumer_start="latest",
        smtp_port=mailbox[0].port,
        dispatch_interval_seconds=0.2,
        relay_poll_interval_seconds=0.1,
        digest_check_seconds=3600,
        reminder_check_seconds=3600,  # the passes of these tests run at moments they choose
        reminder_batch_size=2,  # a subject's residents over several transactions
        public_base_url="https://portal.testdorp.example",
    )


@pytest.fixture(scope="module")
async def service(settings, consuming_service):
    async with consuming_service(settings) as service:
        yield service


async def publish(kafka_bootstrap: str, *timed: tuple[Event, datetime]) -> list[Envelope]:
    envelopes = [Envelope.wrap(event, SOURCE, time=time) for event, time in timed]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for (event, _), envelope in zip(timed, envelopes, strict=True):
            record = to_kafka(envelope)
            await producer.send_and_wait(event.topic, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    return envelopes


async def processed(service, envelopes: list[Envelope]) -> None:
    ids = [str(envelope.id) for envelope in envelopes]

    async def all_applied():
        count = await service.pool.fetchval(
            "SELECT count(*) FROM inbox WHERE consumer = $1 AND message_id = ANY($2::text[])",
            service.settings.service_name,
            ids,
        )
        return count == len(ids)

    assert await eventually(all_applied), "the events were not applied"


async def register(api, sub: str, address: str, language: str, roles=("resident",), areas=(BUURT,), **preferences):
    headers = token(sub, list(roles), list(areas))
    answer = await api.put("/api/v1/contact-details/me", json={"email": address, "language": language}, headers=headers)
    assert answer.status_code == 200, answer.text
    if preferences:
        assert (await api.put("/api/v1/preferences/me", json=preferences, headers=headers)).status_code == 200


def initiative(initiative_id: uuid.UUID, title: str) -> dict:
    return {"initiative_id": initiative_id, "area_code": BUURT, "title": title, "initiators": [OWNER]}


PLEDGE_ROUND, BALLOT_ROUND = uuid.uuid4(), uuid.uuid4()
GATHERING, IN_REVIEW, IN_PROGRESS = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
CLAIM_WAITING, CLAIM_DECIDED = uuid.uuid4(), uuid.uuid4()


def submitted(initiative_id: uuid.UUID, title: str, status: str, threshold: int) -> i.InitiativeSubmitted:
    return i.InitiativeSubmitted(
        **initiative(initiative_id, title),
        category="green",
        summary="Samen",
        requested_amount_cents=50_000,
        status=status,
        support_threshold=threshold,
        support_deadline=T0 + 10 * DAY,
    )


def claimed(claim_id: uuid.UUID) -> v.ExpenseClaimed:
    return v.ExpenseClaimed(
        round_id=PLEDGE_ROUND,
        area_code=WIJK,
        initiative_id=IN_PROGRESS,
        initiators=[OWNER],
        claim_id=claim_id,
        claimed_by=OWNER,
        supplier="Tuincentrum De Linde",
        amount_cents=12_500,
        invoice_reference="F-1",
        left_cents=0,
    )


def the_story() -> list[tuple[Event, datetime]]:
    """A pledge round and an Equal Shares round closing in ten days, three initiatives (gathering support, in review,
    in progress) and two expense claims (one decided), all as of T0."""
    round_facts = dict(total_budget_cents=1_000_000, opens_at=T0 - DAY, closes_at=T0 + 10 * DAY)
    pledge = dict(
        round_id=PLEDGE_ROUND,
        area_code=WIJK,
        initiative_id=IN_PROGRESS,
        resident_id=ANNA,
        amount_cents=2_500,
        pledged_to_initiative_cents=2_500,
    )
    return [
        (
            v.RoundOpened(
                round_id=PLEDGE_ROUND,
                area_code=WIJK,
                name="Buurtbudget",
                mechanism="pledge",
                voucher_amount_cents=2_500,
                **round_facts,
            ),
            T0 - DAY,
        ),
        (
            v.WalletsIssued(
                round_id=PLEDGE_ROUND,
                area_code=WIJK,
                resident_ids=[ANNA, BAS, CEM, DIRK],
                voucher_amount_cents=2_500,
                issued_cents=10_000,
            ),
            T0 - DAY,
        ),
        (v.PledgeMade(**pledge, pledge_id=uuid.uuid4(), wallet_balance_cents=0, requested_amount_cents=2_500), T0),
        (
            v.PledgeMade(
                **pledge | {"resident_id": DIRK},
                pledge_id=uuid.uuid4(),
                wallet_balance_cents=0,
                requested_amount_cents=2_500,
            ),
            T0,
        ),
        (
            v.PledgeWithdrawn(
                **pledge | {"resident_id": DIRK},
                pledge_id=uuid.uuid4(),
                wallet_balance_cents=1_000,
                reason="initiative_withdrawn",
            ),
            T0,
        ),
        (
            v.RoundOpened(
                round_id=BALLOT_ROUND,
                area_code=WIJK,
                name="Stem mee",
                mechanism="equal_shares",
                voucher_amount_cents=None,
                **round_facts,
            ),
            T0 - DAY,
        ),
        (v.BallotCast(round_id=BALLOT_ROUND, area_code=WIJK, resident_id=BAS, initiative_ids=[GATHERING]), T0),
        (submitted(GATHERING, "Geveltuinen", "gathering_support", 3), T0),
        (i.InitiativeSupported(**initiative(GATHERING, "Geveltuinen"), supporter_id=BAS, support_count=1), T0),
        (submitted(IN_REVIEW, "Bankjes", "in_review", 0), T0),
        (submitted(IN_PROGRESS, "Moestuin", "in_review", 0), T0 - 3 * DAY),
        (
            i.InitiativeApproved(
                **initiative(IN_PROGRESS, "Moestuin"),
                official_id=OFFICIAL,
                requested_amount_cents=50_000,
                approved_amount_cents=50_000,
            ),
            T0 - 2 * DAY,
        ),
        (i.InitiativeStarted(**initiative(IN_PROGRESS, "Moestuin"), started_by=OWNER), T0),
        (claimed(CLAIM_WAITING), T0),
        (claimed(CLAIM_DECIDED), T0),
        (
            v.ExpenseApproved(
                round_id=PLEDGE_ROUND,
                area_code=WIJK,
                initiative_id=IN_PROGRESS,
                initiators=[OWNER],
                claim_id=CLAIM_DECIDED,
                decided_by=OFFICIAL,
                amount_cents=12_500,
                payout_id=uuid.uuid4(),
            ),
            T0 + DAY,
        ),
    ]


async def inbox(service, kind: str) -> list[tuple[str, dict]]:
    rows = await service.pool.fetch(
        "SELECT recipient_id, params FROM notifications WHERE channel = 'inbox' AND kind = $1 ORDER BY recipient_id",
        kind,
    )
    return [(row["recipient_id"], row["params"]) for row in rows]


async def emails(service) -> list[tuple[str, str, str]]:
    rows = await service.pool.fetch(
        "SELECT recipient_id, kind, status FROM notifications WHERE channel = 'email' AND kind LIKE 'reminder_%' "
        "ORDER BY recipient_id, kind"
    )
    return [(row["recipient_id"], row["kind"], row["status"]) for row in rows]


async def every_reminder(service) -> list[tuple]:
    rows = await service.pool.fetch(
        "SELECT kind, subject, resident_id, moment FROM reminders_sent ORDER BY kind, subject, resident_id"
    )
    return [tuple(row) for row in rows]


@pytest.fixture(scope="module")
async def story(service, api, kafka_bootstrap):
    await register(api, ANNA, f"anna-{RUN}@example.nl", "nl")
    await register(api, BAS, f"bas-{RUN}@example.nl", "en", frequency="daily")
    await register(api, OWNER, f"owner-{RUN}@example.nl", "en")
    await register(api, OFFICIAL, f"official-{RUN}@gemeente.example", "nl", roles=("official",), areas=(WIJK,))
    follower = token(f"r-fol-{RUN}", ["resident"], [BUURT])  # follows the buurt, no address: inbox only
    assert (await api.put("/api/v1/area-follows/me", json={"area_codes": [BUURT]}, headers=follower)).status_code == 200
    await processed(service, await publish(kafka_bootstrap, *the_story()))


async def test_a_pass_eight_days_on_reminds_of_the_deadlines_coming_and_the_claim_waiting_and_nothing_twice(
    service, story, mailbox
):
    _, box = mailbox
    now = T0 + 8 * DAY
    first, second = await asyncio.gather(remind(service, now), remind(service, now))  # two replicas at once
    assert {kind: first.get(kind, 0) + second.get(kind, 0) for kind in first.keys() | second.keys()} == {
        "reminder_round_closing": 3,  # Anna spent all; Bas, Cem, and Dirk (1000 back in his wallet) hold vouchers
        "reminder_ballot_open": 5,  # known in the wijk, no ballot: Anna, Cem, Dirk (wallets), the owner, the follower
        "reminder_support_ending": 1,
        "reminder_claim_waiting": 1,
    }
    counted = {
        kind: service.metrics.registry.get_sample_value("buurtkracht_reminders_sent_total", {"kind": kind})
        for kind in ("reminder_round_closing", "reminder_ballot_open", "reminder_report_due")
    }
    assert counted == {"reminder_round_closing": 3, "reminder_ballot_open": 5, "reminder_report_due": 0}
    assert [(who, p["wallet_balance_cents"]) for who, p in await inbox(service, "reminder_round_closing")] == [
        (BAS, 2_500),
        (CEM, 2_500),
        (DIRK, 1_000),
    ]
    assert [who for who, _ in await inbox(service, "reminder_ballot_open")] == sorted(
        [ANNA, CEM, DIRK, OWNER, f"r-fol-{RUN}"]
    )
    [(owner, support)] = await inbox(service, "reminder_support_ending")
    assert owner == OWNER and support["supporters_needed"] == 2 and support["days_left"] == 2
    [(official, claim)] = await inbox(service, "reminder_claim_waiting")
    assert official == OFFICIAL and claim["claim_id"] == str(CLAIM_WAITING) and claim["initiative_title"] == "Moestuin"
    immediately = ("pending", "sent")  # the sender may have sent it already
    assert [(who, kind, status in immediately) for who, kind, status in await emails(service)] == sorted(
        [
            (ANNA, "reminder_ballot_open", True),
            (BAS, "reminder_round_closing", False),  # Bas reads his email once a day: in his digest
            (OFFICIAL, "reminder_claim_waiting", True),
            (OWNER, "reminder_ballot_open", True),  # the owner lives in the buurt, as their sign-in says
            (OWNER, "reminder_support_ending", True),
        ]
    )
    assert (BAS, "reminder_round_closing", "digest") in await emails(service)
    expected = {
        f"anna-{RUN}@example.nl": "Nog 2 dagen om te stemmen in 'Stem mee'",
        f"owner-{RUN}@example.nl": "2 days left to gather support for 'Geveltuinen'",
        f"official-{RUN}@gemeente.example": "Declaratie wacht al 8 dagen: € 125,00 van Tuincentrum De Linde",
    }

    async def reminded_by_email():
        received = {(m["To"].addresses[0].addr_spec, m["Subject"]) for m in box.messages}
        return set(expected.items()) <= received

    assert await eventually(reminded_by_email), [m["Subject"] for m in box.messages]
    sent = await every_reminder(service)
    assert await remind(service, now) == {}, "a second pass finds every reminder sent"
    assert await remind(service, now + DAY) == {}, "the next day: the same moments, sent already"
    assert await every_reminder(service) == sent
    assert len(await inbox(service, "reminder_ballot_open")) == 5


async def test_later_passes_remind_of_the_review_waiting_and_then_of_the_report_due(service, story):
    before = await every_reminder(service)
    async with service.pool.acquire() as other_replica, other_replica.transaction():
        assert await other_replica.fetchval("SELECT pg_try_advisory_xact_lock($1)", reminded.REMINDER_LOCK_KEY)
        assert await remind(service, T0 + 15 * DAY) == {}, "another pass holds the turn: this one skips it"
    assert await remind(service, T0 + 15 * DAY) == {"reminder_review_waiting": 1}, "the rounds and support closed"
    [(official, review)] = await inbox(service, "reminder_review_waiting")
    assert official == OFFICIAL and review["initiative_id"] == str(IN_REVIEW) and review["days_waited"] == 15
    assert await remind(service, T0 + 90 * DAY) == {"reminder_report_due": 1}
    [(owner, report)] = await inbox(service, "reminder_report_due")
    assert owner == OWNER and report["initiative_id"] == str(IN_PROGRESS)
    assert len(await every_reminder(service)) == len(before) + 2


async def test_a_round_closed_early_and_a_review_decided_remind_nobody(service, story, kafka_bootstrap):
    closed_round, decided = uuid.uuid4(), uuid.uuid4()
    summary = v.RoundSummary(
        total_budget_cents=1_000_000,
        awarded_cents=0,
        returned_to_pool_cents=1_000_000,
        awarded_initiative_ids=[],
        unawarded_initiative_ids=[],
    )
    await processed(
        service,
        await publish(
            kafka_bootstrap,
            (
                v.RoundOpened(
                    round_id=closed_round,
                    area_code=WIJK,
                    name="Vroeg dicht",
                    mechanism="pledge",
                    voucher_amount_cents=2_500,
                    total_budget_cents=1_000_000,
                    opens_at=T0 - DAY,
                    closes_at=T0 + 10 * DAY,
                ),
                T0 - DAY,
            ),
            (
                v.WalletsIssued(
                    round_id=closed_round,
                    area_code=WIJK,
                    resident_ids=[ANNA],
                    voucher_amount_cents=2_500,
                    issued_cents=2_500,
                ),
                T0 - DAY,
            ),
            (
                v.RoundClosed(
                    round_id=closed_round, area_code=WIJK, name="Vroeg dicht", mechanism="pledge", summary=summary
                ),
                T0 + DAY,
            ),
            (submitted(decided, "Speeltuin", "in_review", 0), T0),
            (i.InitiativeRejected(**initiative(decided, "Speeltuin"), official_id=OFFICIAL, reason="Te duur"), T0),
        ),
    )
    assert await service.pool.fetchval("SELECT count(*) FROM wallets_known WHERE round_id = $1", closed_round) == 0
    assert await remind(service, T0 + 8 * DAY) == {}, "closed: nobody is told it closes soon"
    assert await remind(service, T0 + 15 * DAY) == {}, "decided: nobody is told it waits for review"


async def test_a_restarted_service_sends_no_reminder_again(service, story, settings, consuming_service):
    sent = await every_reminder(service)
    messages = await service.pool.fetchval("SELECT count(*) FROM notifications WHERE kind LIKE 'reminder_%'")
    async with consuming_service(settings) as restarted:  # the same service again, on the same database
        for days in (8, 9, 15, 90, 91):
            assert await remind(restarted, T0 + days * DAY) == {}
    assert await every_reminder(service) == sent
    assert await service.pool.fetchval("SELECT count(*) FROM notifications WHERE kind LIKE 'reminder_%'") == messages


async def test_housekeeping_forgets_reminders_of_deadlines_long_past_and_decided_claims_but_not_of_waits(
    service, story
):
    pool = service.pool
    assert {s.table for s in SPEC.sweeps(service.settings)} >= {"reminders_sent", "claims_known"}
    await pool.execute("UPDATE reminders_sent SET moment = now() - interval '8 days'")
    await pool.execute(
        "UPDATE claims_known SET decided_at = now() - interval '400 days' WHERE claim_id = $1", CLAIM_DECIDED
    )
    waits = await pool.fetchval("SELECT count(*) FROM reminders_sent WHERE kind LIKE '%waiting' OR kind LIKE '%due'")
    assert waits == 3, "a review, a claim and a report"

    deleted = await housekeeping.sweep(pool, reminded.sweeps(service.settings.inbox_retention_days))

    assert deleted == {"reminders_sent": 3 + 5 + 1, "claims_known": 1}, "the closes, the ballots, the support deadline"
    assert await pool.fetchval("SELECT count(*) FROM reminders_sent") == waits
    assert await pool.fetchval("SELECT count(*) FROM claims_known WHERE claim_id = $1", CLAIM_WAITING) == 1


async def test_without_the_turn_two_passes_still_send_a_reminder_once_the_key_decides(service, story):
    """Were the lock ever bypassed, the unique key makes the second pass wait for the first and then find it sent."""
    reminder = ("reminder_ballot_open", str(uuid.uuid4()), T0, [ANNA])
    async with service.unit_of_work() as first:
        assert await first.reminders.record_sent(*reminder) == [ANNA]

        async def second_pass():
            async with service.unit_of_work() as second:
                taken = await second.reminders.record_sent(*reminder)
                await second.commit()
                return taken

        second = asyncio.create_task(second_pass())
        await asyncio.sleep(0.5)
        assert not second.done(), "it waits for the first to commit or roll back"
        await first.commit()
    assert await second == [], "the first committed it: the second sends nothing"
