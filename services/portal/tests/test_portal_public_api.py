"""The portal on the real stack: events from Kafka become the public read model, which the public API answers from
without anyone signing in; an event delivered twice counts once, and no resident id is kept anywhere."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from portal.app import create
from portal.settings import PortalSettings

from buurtkracht_contracts import Envelope, Event
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts import vouchers as v
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.registry import model_for
from buurtkracht_contracts.topics import TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics
from tests.keys import PUBLIC
from tests.personal_data import rows_naming
from tests.waiting import eventually

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
WIJK = f"WK0597{uuid.uuid4().int % 100:02d}"  # areas of its own: other tests put events on the same topics
BUURT, OTHER_BUURT = f"BU{WIJK[2:]}01", f"BU{WIJK[2:]}02"
OWNER, SUPPORTER, OFFICIAL, PLEDGER = (f"{who}-{RUN}" for who in ("r-owner", "r-sup", "o-off", "r-pledger"))
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-tests"
NOW = datetime.now(UTC)


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    group = f"portal-test-{RUN}"
    # its dead-letter topic too: a stray record on the shared topics is parked there, as in production
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, [*all_topics(), TopicSpec(dead_letter_topic(group), 1)])
    key = tmp_path_factory.mktemp("keys") / "public.pem"  # the kit checks tokens, though no route here asks for one
    key.write_text(PUBLIC)
    settings = PortalSettings(
        service_name=group,
        jwt_public_key_file=key,
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_start="latest",
        relay_poll_interval_seconds=0.1,
    )
    built = create(settings)
    async with LifespanManager(built.app):
        for _ in range(300):
            if await built.consuming():
                break
            await asyncio.sleep(0.1)
        assert await built.consuming()
        yield built


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        yield client


async def publish(kafka_bootstrap: str, *events: Event, again: list[Envelope] = ()) -> list[Envelope]:
    """Put `events` on their topics, each in a new envelope, and the envelopes `again` as they were (a redelivery)."""
    envelopes = [Envelope.wrap(event, SOURCE) for event in events]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for envelope in [*envelopes, *again]:
            record = to_kafka(envelope)
            await producer.send_and_wait(
                model_for(envelope.type).topic, record.value, key=record.key, headers=record.headers
            )
    finally:
        await producer.stop()
    return envelopes


def facts(initiative_id: uuid.UUID, area: str = BUURT, title: str = "Geveltuinen") -> dict:
    return {"initiative_id": initiative_id, "area_code": area, "title": title, "initiators": [OWNER]}


def submitted(initiative_id: uuid.UUID, area: str = BUURT, title: str = "Geveltuinen") -> i.InitiativeSubmitted:
    return i.InitiativeSubmitted(
        **facts(initiative_id, area, title),
        category="green",
        summary="Groen langs de gevels",
        requested_amount_cents=75_000,
        status="gathering_support",
        support_threshold=1,
        support_deadline=NOW + timedelta(days=42),
        budget_lines=[
            i.PlannedBudgetLine(description="Planten", amount_cents=50_000),
            i.PlannedBudgetLine(description="Aarde", amount_cents=25_000),
        ],
    )


def pledge(kind, round_id: uuid.UUID, initiative_id: uuid.UUID, pledged: int, **extra) -> v.PledgeEvent:
    return kind(
        round_id=round_id,
        area_code=WIJK,
        pledge_id=uuid.uuid4(),
        initiative_id=initiative_id,
        resident_id=PLEDGER,
        amount_cents=2_000,
        wallet_balance_cents=0,
        pledged_to_initiative_cents=pledged,
        **extra,
    )


ROUND, GARDENS, BENCHES = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


@pytest.fixture(scope="module")
async def history(service, api, kafka_bootstrap):
    """Two initiatives of the wijk and a pledge round, through Kafka: gardens completed with a report (its support
    delivered twice), benches approved with pledges coming in."""
    opened = v.RoundOpened(
        round_id=ROUND,
        area_code=WIJK,
        name="Buurtbudget 2027",
        mechanism="pledge",
        total_budget_cents=200_000,
        voucher_amount_cents=2_000,
        opens_at=NOW - timedelta(days=1),
        closes_at=NOW + timedelta(days=30),
    )
    supported = await publish(
        kafka_bootstrap,
        opened,
        submitted(GARDENS),
        i.InitiativeSupported(**facts(GARDENS), supporter_id=SUPPORTER, support_count=1),
    )
    await publish(
        kafka_bootstrap,
        i.SupportThresholdReached(**facts(GARDENS), support_count=1),
        i.InitiativeApproved(
            **facts(GARDENS), official_id=OFFICIAL, requested_amount_cents=75_000, approved_amount_cents=70_000
        ),
        v.InitiativeAwarded(
            round_id=ROUND, area_code=WIJK, initiative_id=GARDENS, mechanism="pledge", awarded_amount_cents=70_000
        ),
        i.InitiativeFunded(**facts(GARDENS), round_id=ROUND, awarded_amount_cents=70_000),
        i.InitiativeStarted(**facts(GARDENS), started_by=OWNER),
        i.InitiativeCompleted(
            **facts(GARDENS),
            reported_by=OWNER,
            what_was_done="Veertig geveltuinen aangelegd",
            spent_amount_cents=68_000,
            spending=[
                i.BudgetLineSpending(description="Planten", budgeted_cents=50_000, spent_cents=48_000),
                i.BudgetLineSpending(description="Aarde", budgeted_cents=25_000, spent_cents=20_000),
            ],
        ),
        submitted(BENCHES, OTHER_BUURT, "Bankjes op het plein"),
        i.InitiativeApproved(
            **facts(BENCHES, OTHER_BUURT, "Bankjes op het plein"),
            official_id=OFFICIAL,
            requested_amount_cents=75_000,
            approved_amount_cents=40_000,
        ),
        pledge(v.PledgeMade, ROUND, BENCHES, 2_000, requested_amount_cents=2_000),
        pledge(v.PledgeMade, ROUND, BENCHES, 12_000, requested_amount_cents=10_000),
        pledge(v.PledgeWithdrawn, ROUND, BENCHES, 10_000, reason="withdrawn_by_resident"),
        again=supported[1:],  # the submission and the support delivered again
    )

    async def all_applied():
        gardens, benches = [await api.get(f"/api/v1/public/initiatives/{one}") for one in (GARDENS, BENCHES)]
        return (
            gardens.status_code == benches.status_code == 200
            and gardens.json()["status"] == "completed"
            and benches.json()["pledge_progress"]["pledged_cents"] == 10_000
        )

    assert await eventually(all_applied)


async def test_an_area_lists_its_initiatives_and_those_of_the_areas_inside_it_with_support_and_pledges(api, history):
    answer = await api.get(f"/api/v1/public/areas/{WIJK}/initiatives")
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert (page["total"], page["limit"], page["offset"]) == (2, 20, 0)
    by_title = {item["title"]: item for item in page["items"]}
    assert by_title["Geveltuinen"]["status"] == "completed"
    assert by_title["Geveltuinen"]["support_count"] == 1  # delivered twice, counted once
    assert by_title["Bankjes op het plein"]["status"] == "approved"
    assert by_title["Bankjes op het plein"]["pledge_progress"] == {
        "pledged_cents": 10_000,
        "goal_cents": 40_000,
        "percent": 25,
    }

    only_buurt = (await api.get(f"/api/v1/public/areas/{OTHER_BUURT}/initiatives")).json()
    assert [item["title"] for item in only_buurt["items"]] == ["Bankjes op het plein"]
    second = (await api.get(f"/api/v1/public/areas/{WIJK}/initiatives", params={"limit": 1, "offset": 1})).json()
    assert (second["total"], len(second["items"])) == (2, 1)
    assert second["items"][0]["title"] == page["items"][1]["title"]


async def test_one_initiative_shows_its_budget_and_once_completed_its_report(api, history):
    gardens = (await api.get(f"/api/v1/public/initiatives/{GARDENS}")).json()
    assert gardens["budget_lines"] == [
        {"description": "Planten", "amount_cents": 50_000},
        {"description": "Aarde", "amount_cents": 25_000},
    ]
    assert gardens["report"] == {
        "what_was_done": "Veertig geveltuinen aangelegd",
        "spent_amount_cents": 68_000,
        "spending": [
            {"description": "Planten", "budgeted_cents": 50_000, "spent_cents": 48_000},
            {"description": "Aarde", "budgeted_cents": 25_000, "spent_cents": 20_000},
        ],
    }
    assert (gardens["approved_amount_cents"], gardens["awarded_amount_cents"]) == (70_000, 70_000)
    benches = (await api.get(f"/api/v1/public/initiatives/{BENCHES}")).json()
    assert benches["report"] is None
    assert len(benches["budget_lines"]) == 2


async def test_the_open_rounds_of_an_area_show_their_totals_also_from_a_buurt_inside_it(api, history):
    for area in (WIJK, BUURT):
        answer = await api.get(f"/api/v1/public/areas/{area}/rounds")
        assert answer.status_code == 200, answer.text
        (only,) = answer.json()["items"]
        assert only["id"] == str(ROUND)
        assert (
            only["total_budget_cents"],
            only["pledged_cents"],
            only["awarded_cents"],
            only["unawarded_cents"],
            only["initiative_count"],
        ) == (200_000, 10_000, 70_000, 130_000, 2)


async def test_a_closed_round_is_no_longer_listed(api, history, kafka_bootstrap):
    closing = uuid.uuid4()
    area = f"WK0598{uuid.uuid4().int % 100:02d}"
    opened = v.RoundOpened(
        round_id=closing,
        area_code=area,
        name="Kort",
        mechanism="committee",
        total_budget_cents=1_000,
        voucher_amount_cents=None,
        opens_at=NOW,
        closes_at=NOW + timedelta(days=1),
    )
    await publish(kafka_bootstrap, opened)

    async def listed():
        return (await api.get(f"/api/v1/public/areas/{area}/rounds")).json()["items"]

    assert await eventually(listed)
    summary = v.RoundSummary(
        total_budget_cents=1_000,
        awarded_cents=0,
        returned_to_pool_cents=1_000,
        awarded_initiative_ids=[],
        unawarded_initiative_ids=[],
    )
    await publish(
        kafka_bootstrap,
        v.RoundClosed(round_id=closing, area_code=area, name="Kort", mechanism="committee", summary=summary),
    )

    async def gone():
        return await listed() == []

    assert await eventually(gone)


async def test_wrong_input_and_unknown_initiatives_are_problems_naming_what_is_at_fault(api, service):
    wrong_area = await api.get("/api/v1/public/areas/Amsterdam/initiatives")
    assert wrong_area.status_code == 422
    assert wrong_area.headers["content-type"] == "application/problem+json"
    assert [error["field"] for error in wrong_area.json()["errors"]] == ["area_code"]
    too_many = await api.get(f"/api/v1/public/areas/{WIJK}/initiatives", params={"limit": 1000})
    assert [error["field"] for error in too_many.json()["errors"]] == ["limit"]
    assert [error["field"] for error in (await api.get("/api/v1/public/initiatives/42")).json()["errors"]] == [
        "initiative_id"
    ]
    unknown = await api.get(f"/api/v1/public/initiatives/{uuid.uuid4()}")
    assert (unknown.status_code, unknown.headers["content-type"]) == (404, "application/problem+json")


async def test_the_read_model_holds_no_resident_id(service, history, scratch_database):
    """The events named the owner, a supporter, an official and a pledger; the portal's database names none of
    them, in any column of any table (the inbox included)."""
    conn = await asyncpg.connect(scratch_database)
    try:
        for person in (OWNER, SUPPORTER, OFFICIAL, PLEDGER):
            assert await rows_naming(conn, person) == {}, person
    finally:
        await conn.close()


async def test_an_area_registered_reads_by_its_name_and_a_renaming_replaces_it(api, service, kafka_bootstrap):
    outline = {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 1], [0, 0]]]}  # a shape, not a real outline
    wijk = i.AreaRegistered(code=WIJK, name=f"Wijk {RUN}", kind="wijk", parent_code=f"GM{WIJK[2:6]}")
    buurt = i.AreaRegistered(code=BUURT, name=f"Buurt {RUN}", kind="buurt", parent_code=WIJK, outline=outline)
    [first] = await publish(kafka_bootstrap, buurt)
    await publish(kafka_bootstrap, wijk, again=[first])  # the buurt's event delivered twice

    async def shown():
        answer = await api.get(f"/api/v1/public/areas/{BUURT}")
        return answer.json() if answer.status_code == 200 and answer.json()["parent"]["name"] else None

    assert await eventually(shown) == {
        "code": BUURT,
        "name": f"Buurt {RUN}",
        "kind": "buurt",
        "parent": {"code": WIJK, "name": f"Wijk {RUN}"},
        "outline": outline,
    }
    await publish(kafka_bootstrap, buurt.model_copy(update={"name": f"Buurt {RUN} hernoemd"}))

    async def renamed():
        async with service.unit_of_work() as uow:
            return await uow.read_model.name_of(BUURT) == f"Buurt {RUN} hernoemd"

    assert await eventually(renamed)
    async with service.unit_of_work() as uow:
        assert await uow.read_model.names_of([BUURT, WIJK, "BU05979999"]) == {
            BUURT: f"Buurt {RUN} hernoemd",
            WIJK: f"Wijk {RUN}",
        }
    unknown = await api.get(f"/api/v1/public/areas/{OTHER_BUURT}")
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
