"""What the initiatives service holds about a resident, on the real stack: their export (AVG/GDPR article 15), and
forgetting them when `ResidentForgetRequested` comes through Kafka (article 17) — their id is then nowhere in the
database, while every initiative and every count stays as it was."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from initiatives.app import create
from initiatives.domain.model import BudgetLine, Category, Initiative, Rules
from initiatives.settings import InitiativesSettings

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.notifications import ResidentForgetRequested
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, NOTIFICATIONS_EVENTS, all_topics
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint
from buurtkracht_kit.erasure import replaced
from tests import areas
from tests.keys import PRIVATE, PUBLIC
from tests.personal_data import rows_naming, snapshot

BUURT = "BU03630001"
OWNER, NEIGHBOUR = "r-owner", "r-neighbour"
NOTIFICATIONS_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-notifications"
OFFER = "Ik kan timmeren; bel me op 06-12345678"

NEW = {
    "title": "Bankjes op het plein",
    "summary": "Drie bankjes rond de boom",
    "description": "We zetten drie bankjes rond de boom op het plein.",
    "area_code": BUURT,
    "category": "social",
    "budget_lines": [{"description": "bankjes", "amount_cents": 60_000}],
    "volunteers_wanted": 3,
}


def resident(sub: str) -> dict[str, str]:
    issued = mint(
        PRIVATE,
        issuer="https://login.buurtkracht.local",
        audience="buurtkracht",
        subject=sub,
        roles=["resident"],
        areas=[BUURT],
    )
    return {"Authorization": f"Bearer {issued}"}


def new_resident() -> str:
    """A resident id that is no part of any other id or text, so a search for it finds only what is theirs."""
    return f"r-forget-{uuid.uuid4().hex[:12]}"


def new_tombstone() -> str:
    return f"forgotten-{uuid.uuid4().hex}"


@pytest.mark.unit
def test_a_forgotten_initiator_stays_as_the_tombstone_and_their_open_invitation_goes():
    initiative = Initiative.draft(
        owner_id="r-1",
        title="Bankjes",
        summary="Drie bankjes",
        description="Drie bankjes rond de boom",
        area_code=BUURT,
        category=Category.SOCIAL,
        budget_lines=[BudgetLine("bankjes", 60_000)],
        volunteers_wanted=0,
        rules=Rules(),
        now=datetime.now(UTC),
    )
    initiative.co_initiators, initiative.invited_co_initiators = ["r-2", "r-3"], ["r-4", "r-2x"]
    assert initiative.forget("r-2", "forgotten-2")
    assert (initiative.owner_id, initiative.co_initiators) == ("r-1", ["forgotten-2", "r-3"])
    assert initiative.forget("r-1", "forgotten-1") and initiative.initiators == ["forgotten-1", "forgotten-2", "r-3"]
    assert initiative.forget("r-4", "forgotten-4") and initiative.invited_co_initiators == ["r-2x"]
    assert not initiative.forget("r-4", "forgotten-4"), "forgetting again changes nothing"
    assert not initiative.forget("r-never-seen", "forgotten-0")


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    settings = InitiativesSettings(
        service_name=f"initiatives-test-{uuid.uuid4().hex[:6]}",
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        support_threshold=2,
        consumer_start="latest",
        relay_poll_interval_seconds=0.1,
    )
    service = create(settings)
    async with LifespanManager(service.app):
        for _ in range(300):  # the consumer starts at the end of the topics: wait until it holds its partitions
            if await service.consuming():
                break
            await asyncio.sleep(0.1)
        assert await service.consuming(), "the consumer group never got its partitions"
        yield service


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        admin = mint(
            PRIVATE,
            issuer="https://login.buurtkracht.local",
            audience="buurtkracht",
            subject="admin",
            roles=["admin"],
            areas=["GM0363"],
        )
        await areas.register(client, {"Authorization": f"Bearer {admin}"})
        yield client


async def ok(answer: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return answer.json()


async def forget(service, kafka_bootstrap: str, resident_id: str, tombstone: str) -> None:
    """The notifications service asks to forget the resident; returns once this service applied it."""
    envelope = Envelope.wrap(
        ResidentForgetRequested(resident_id=resident_id, tombstone=tombstone), NOTIFICATIONS_SOURCE
    )
    record = to_kafka(envelope)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(NOTIFICATIONS_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    for _ in range(300):
        async with service.pool.acquire() as conn:
            outcome = await conn.fetchval("SELECT outcome FROM inbox WHERE message_id = $1", str(envelope.id))
        if outcome is not None:
            assert outcome == "processed"
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the request to forget never took effect")


async def published_all(service) -> None:
    """Wait until the relay published every event the commands recorded (the rows put in backoff stay)."""
    for _ in range(300):
        async with service.pool.acquire() as conn:
            if not await conn.fetchval("SELECT count(*) FROM outbox WHERE retry_after IS NULL"):
                return
        await asyncio.sleep(0.1)
    raise AssertionError("the relay never published the commands' events")


@pytest.mark.integration
async def test_a_forgotten_resident_is_nowhere_in_the_database_while_initiatives_and_counts_stay(
    api, service, kafka_bootstrap
):
    me, tombstone = new_resident(), new_tombstone()

    # what the resident does: owns an initiative, co-initiates one, is invited to another, supports two (the second
    # support reaches the threshold: a transition they made), and volunteers with an offer in their own words
    own = await ok(await api.post("/api/v1/initiatives", json=NEW, headers=resident(me)), 201)
    await ok(await api.post(f"/api/v1/initiatives/{own['id']}/submit", headers=resident(me)))
    joined = await ok(await api.post("/api/v1/initiatives", json=NEW, headers=resident(OWNER)), 201)
    await ok(
        await api.post(
            f"/api/v1/initiatives/{joined['id']}/co-initiators", json={"resident_id": me}, headers=resident(OWNER)
        )
    )
    await ok(await api.post(f"/api/v1/initiatives/{joined['id']}/co-initiators/{me}/acceptance", headers=resident(me)))
    await ok(await api.post(f"/api/v1/initiatives/{joined['id']}/submit", headers=resident(OWNER)))
    invited = await ok(await api.post("/api/v1/initiatives", json=NEW, headers=resident(OWNER)), 201)
    await ok(
        await api.post(
            f"/api/v1/initiatives/{invited['id']}/co-initiators", json={"resident_id": me}, headers=resident(OWNER)
        )
    )
    supported, gathering = [
        await ok(await api.post("/api/v1/initiatives", json=NEW, headers=resident(NEIGHBOUR)), 201) for _ in range(2)
    ]
    for initiative in (supported, gathering):
        await ok(await api.post(f"/api/v1/initiatives/{initiative['id']}/submit", headers=resident(NEIGHBOUR)))
    await ok(await api.post(f"/api/v1/initiatives/{supported['id']}/supports", headers=resident("r-n1")), 201)
    reached = await ok(await api.post(f"/api/v1/initiatives/{supported['id']}/supports", headers=resident(me)), 201)
    assert reached["status"] == "in_review"
    await ok(await api.post(f"/api/v1/initiatives/{gathering['id']}/supports", headers=resident(me)), 201)
    await ok(
        await api.post(
            f"/api/v1/initiatives/{supported['id']}/volunteers", json={"offer": OFFER}, headers=resident(me)
        ),
        201,
    )
    # what the plumbing holds of them: two events waiting in backoff, a stored answer of theirs and one about them,
    # a failure naming them
    async with service.pool.acquire() as conn:
        await conn.execute(
            """INSERT INTO outbox (event_id, aggregate_type, aggregate_id, event_type, topic, source, occurred_at,
                                   payload, attempts, retry_after)
               VALUES ($1, 'initiative', $2, 'test', $3, 'test', now(), $4, 1, now() + interval '1 day'),
                      ($5, 'resident', $6, 'test', $3, 'test', now(), $7, 1, now() + interval '1 day')""",
            uuid.uuid4(),
            own["id"],
            INITIATIVES_EVENTS,
            {"initiators": [me, OWNER], "supporter_id": me, "title": NEW["title"]},
            uuid.uuid4(),
            me,
            {"resident_id": me},
        )
        await conn.execute(
            """INSERT INTO idempotency_keys (principal, key, request_hash, status_code, response)
               VALUES ($1, 'k-1', 'h', 201, $2), ('o-official', 'k-2', 'h', 200, $3)""",
            me,
            {"owner_id": me},
            {"items": [{"claimed_by": me}, {"claimed_by": OWNER}]},
        )
        await conn.execute(
            """INSERT INTO consumer_failures (consumer, message_id, attempts, last_error)
               VALUES ('initiatives', 'm-1', 1, $1)""",
            f"nothing known of {me}",
        )
        assert set(await rows_naming(conn, me)) == {
            "initiatives.owner_id",
            "initiatives.co_initiators",
            "initiatives.invited_co_initiators",
            "supports.resident_id",
            "volunteers.resident_id",
            "transitions.actor_id",
            "outbox.aggregate_id",
            "outbox.payload",
            "idempotency_keys.principal",
            "idempotency_keys.response",
            "consumer_failures.last_error",
        }

    # their export: everything there is about them
    export = await ok(await api.get("/api/v1/me/export", headers=resident(me)))
    assert export["subject"] == me
    assert [i["id"] for i in export["initiatives"]] == [own["id"], joined["id"], invited["id"]]
    assert {s["initiative_id"] for s in export["supports"]} == {supported["id"], gathering["id"]}
    assert [(v["initiative_id"], v["offer"]) for v in export["volunteering"]] == [(supported["id"], OFFER)]
    assert [(t["initiative_id"], t["to_status"]) for t in export["transitions"]] == [
        (own["id"], "draft"),
        (own["id"], "gathering_support"),
        (supported["id"], "in_review"),
    ]
    assert (await api.get("/api/v1/me/export")).status_code == 401

    ids = [own["id"], joined["id"], invited["id"], supported["id"], gathering["id"]]

    async def public() -> list[dict]:
        return [(await ok(await api.get(f"/api/v1/initiatives/{i}", headers=resident(OWNER)))) for i in ids]

    before = await public()
    volunteers_before = await ok(
        await api.get(f"/api/v1/initiatives/{supported['id']}/volunteers", headers=resident(NEIGHBOUR))
    )

    await forget(service, kafka_bootstrap, me, tombstone)

    async with service.pool.acquire() as conn:
        assert set(await rows_naming(conn, me)) == set(), "the resident's id is nowhere in the database"
        assert {"initiatives.owner_id", "supports.resident_id", "transitions.actor_id"} <= set(
            await rows_naming(conn, tombstone)
        )
        outbox = await conn.fetch("SELECT aggregate_id, payload FROM outbox WHERE retry_after IS NOT NULL ORDER BY id")
        answers = {r["principal"]: r["response"] for r in await conn.fetch("SELECT * FROM idempotency_keys")}
    assert [(r["aggregate_id"], r["payload"]) for r in outbox] == [
        (own["id"], {"initiators": [tombstone, OWNER], "supporter_id": tombstone, "title": NEW["title"]}),
        (tombstone, {"resident_id": tombstone}),
    ], "the events waiting to be published leave with the tombstone"
    assert answers == {"o-official": {"items": [{"claimed_by": tombstone}, {"claimed_by": OWNER}]}}

    # every initiative as it was, every count too, with the tombstone where the resident was
    expected = replaced(before, me, tombstone)
    for initiative in expected:
        initiative["invited_co_initiators"] = [r for r in initiative["invited_co_initiators"] if r != tombstone]
    assert await public() == expected
    assert expected[0]["owner_id"] == tombstone and expected[1]["co_initiators"] == [tombstone]
    assert [(i["support_count"], i["volunteer_count"]) for i in expected] == [(0, 0), (0, 0), (0, 0), (2, 1), (1, 0)]
    volunteers = await ok(
        await api.get(f"/api/v1/initiatives/{supported['id']}/volunteers", headers=resident(NEIGHBOUR))
    )
    assert [(v["resident_id"], v["offer"]) for v in volunteers] == [(tombstone, "")], "the offer they wrote is erased"
    assert [v["joined_at"] for v in volunteers] == [v["joined_at"] for v in volunteers_before]

    assert await ok(await api.get("/api/v1/me/export", headers=resident(me))) == {
        "subject": me,
        "initiatives": [],
        "supports": [],
        "volunteering": [],
        "transitions": [],
        "offer": None,
        "asks": [],
    }

    # forgetting again, and forgetting someone never seen, change nothing
    await published_all(service)
    async with service.pool.acquire() as conn:
        state = await snapshot(conn)
    await forget(service, kafka_bootstrap, me, tombstone)
    await forget(service, kafka_bootstrap, new_resident(), new_tombstone())
    async with service.pool.acquire() as conn:
        assert await snapshot(conn) == state
    assert json.dumps(state).count(tombstone) > 0

    # being forgotten is no way to support an initiative twice: the support under the tombstone still counts
    again = await api.post(f"/api/v1/initiatives/{gathering['id']}/supports", headers=resident(me))
    assert again.status_code == 409, again.text
    seen = await ok(await api.get(f"/api/v1/initiatives/{gathering['id']}", headers=resident("r-n1")))
    assert seen["support_count"] == 1, "counted once"
