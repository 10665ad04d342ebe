"""The initiatives API on the real stack: each endpoint, each refusal, the events on Kafka, and the
reactions to voucher events delivered through Kafka (also twice)."""

from __future__ import annotations

import asyncio
import json
import uuid

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from asgi_lifespan import LifespanManager
from initiatives.app import create
from initiatives.service import commands
from initiatives.settings import InitiativesSettings

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS, all_topics
from buurtkracht_contracts.vouchers import InitiativeAwarded, RoundClosed, RoundSummary
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint
from tests import areas
from tests.integration.kit_domain import read_topic
from tests.keys import PRIVATE, PUBLIC
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BUURT, OTHER_BUURT, WIJK = "BU03630001", "BU03630201", "WK036300"
OWNER, FRIEND = "r-owner", "r-friend"
PREFIX = "nl.buurtkracht.initiatives."


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


def resident(sub: str, buurt: str = BUURT) -> dict[str, str]:
    return token(sub, ["resident"], [buurt])


def official(areas: list[str]) -> dict[str, str]:
    return token("o-wijkcoordinator", ["official"], areas)


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    group = f"initiatives-test-{uuid.uuid4().hex[:6]}"
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap}, [t for t in all_topics() if t.name == "initiatives.dlq"]
    )
    settings = InitiativesSettings(
        service_name=group,
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        support_threshold=2,
        max_requested_amount_cents=500_000,
        consumer_start="latest",
        consumer_max_attempts=2,
        consumer_retry_backoff_seconds=0.05,
        relay_poll_interval_seconds=0.1,
    )
    service = create(settings)
    async with LifespanManager(service.app):
        for _ in range(300):  # the consumer starts at the end of the topic: wait until it holds its partitions
            if await service.consuming():
                break
            await asyncio.sleep(0.1)
        assert await service.consuming(), "the consumer group never got its partitions"
        yield service


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        await areas.register(client, token("admin", ["admin"], ["GM0363"]), OTHER_BUURT)
        yield client


NEW = {
    "title": "Geveltuinen in de Pijp",
    "summary": "Groen langs de gevels van de Govert Flinckstraat",
    "description": "We leggen veertig geveltuinen aan en onderhouden ze samen.",
    "area_code": BUURT,
    "category": "green",
    "budget_lines": [
        {"description": "plants", "amount_cents": 60_000},
        {"description": "tools", "amount_cents": 15_000},
    ],
    "volunteers_wanted": 8,
}


async def draft(api, owner: str = OWNER, **changes) -> dict:
    answer = await api.post("/api/v1/initiatives", json=NEW | changes, headers=resident(owner))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def submitted(api, owner: str = OWNER) -> dict:
    initiative = await draft(api, owner)
    answer = await api.post(f"/api/v1/initiatives/{initiative['id']}/submit", headers=resident(owner))
    assert answer.status_code == 200, answer.text
    return answer.json()


async def in_review(api) -> dict:
    initiative = await submitted(api)
    for neighbour in ("r-n1", "r-n2"):
        assert (
            await api.post(f"/api/v1/initiatives/{initiative['id']}/supports", headers=resident(neighbour))
        ).status_code == 201
    return initiative


async def approved(api) -> dict:
    initiative = await in_review(api)
    answer = await api.post(
        f"/api/v1/initiatives/{initiative['id']}/review",
        headers=official([WIJK]),
        json={"decision": "approve", "approved_amount_cents": 70_000},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


async def send(kafka_bootstrap: str, *envelopes: Envelope) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for envelope in envelopes:
            record = to_kafka(envelope)
            await producer.send_and_wait(VOUCHERS_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def events_of(kafka_bootstrap: str, initiative_id: str, at_least: int) -> list:
    async def found():
        records = await read_topic(kafka_bootstrap, INITIATIVES_EVENTS, at_least=1, timeout=10)
        mine = [r for r in records if r.key == initiative_id.encode()]
        return mine if len(mine) >= at_least else None

    return await eventually(found) or []


VOUCHERS_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers"


async def test_the_whole_lifecycle_puts_exactly_one_event_per_change_on_kafka(api, service, kafka_bootstrap):
    initiative = await draft(api)
    iid = initiative["id"]
    assert initiative["status"] == "draft" and initiative["requested_amount_cents"] == 75_000
    changed = await api.patch(f"/api/v1/initiatives/{iid}", json={"volunteers_wanted": 10}, headers=resident(OWNER))
    assert changed.json()["volunteers_wanted"] == 10
    invited = await api.post(
        f"/api/v1/initiatives/{iid}/co-initiators", json={"resident_id": FRIEND}, headers=resident(OWNER)
    )
    assert invited.json()["co_initiators"] == [] and invited.json()["invited_co_initiators"] == [FRIEND]
    joined = await api.post(f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", headers=resident(FRIEND))
    assert joined.json()["co_initiators"] == [FRIEND] and joined.json()["invited_co_initiators"] == []
    assert (await api.post(f"/api/v1/initiatives/{iid}/submit", headers=resident(FRIEND))).json()[
        "status"
    ] == "gathering_support"
    await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident("r-n1"))
    answer = await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident("r-n2"))
    assert answer.json()["status"] == "in_review" and answer.json()["support_count"] == 2
    joined = await api.post(
        f"/api/v1/initiatives/{iid}/volunteers", json={"offer": "I have a van"}, headers=resident("r-n3")
    )
    assert joined.status_code == 201
    volunteers = await api.get(f"/api/v1/initiatives/{iid}/volunteers", headers=resident(FRIEND))
    assert [v["resident_id"] for v in volunteers.json()] == ["r-n3"]
    review = await api.post(
        f"/api/v1/initiatives/{iid}/review",
        headers=official([WIJK]),
        json={"decision": "approve", "approved_amount_cents": 70_000},
    )
    assert review.json()["status"] == "approved" and review.json()["approved_amount_cents"] == 70_000

    round_id = uuid.uuid4()
    award = Envelope.wrap(
        InitiativeAwarded(
            round_id=round_id,
            area_code=WIJK,
            initiative_id=uuid.UUID(iid),
            mechanism="pledge",
            awarded_amount_cents=70_000,
        ),
        VOUCHERS_SOURCE,
    )
    await send(kafka_bootstrap, award)

    async def funded():
        return (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()["status"] == "funded"

    assert await eventually(funded)
    await send(kafka_bootstrap, award)  # the same event again: nothing changes
    assert (await api.post(f"/api/v1/initiatives/{iid}/start", headers=resident(OWNER))).json()[
        "status"
    ] == "in_progress"
    report = {
        "what_was_done": "Forty facade gardens planted with twelve neighbours.",
        "spending": [{"description": "plants", "spent_cents": 55_000}, {"description": "tools", "spent_cents": 14_500}],
    }
    completed = await api.post(f"/api/v1/initiatives/{iid}/report", json=report, headers=resident(OWNER))
    assert completed.json()["status"] == "completed" and completed.json()["report"] == report

    expected = [
        "co-initiator-joined",
        "initiative-submitted",
        "initiative-supported",
        "initiative-supported",
        "support-threshold-reached",
        "volunteer-joined",
        "initiative-approved",
        "initiative-funded",
        "initiative-started",
        "initiative-completed",
    ]
    records = await events_of(kafka_bootstrap, iid, len(expected))
    records.sort(key=lambda r: r.offset)
    assert [dict(r.headers)["ce_type"].decode() for r in records] == [f"{PREFIX}{e}.v1" for e in expected]
    assert len({r.partition for r in records}) == 1
    for record in records:
        headers = dict(record.headers)
        assert headers["ce_subject"] == iid.encode() and headers["ce_specversion"] == b"1.0"
        assert headers["ce_source"].startswith(b"urn:nld:oin:") and headers["content-type"] == b"application/json"
    async with service.pool.acquire() as conn:
        outcomes = await conn.fetch("SELECT outcome FROM inbox WHERE message_id = $1", str(award.id))
    assert [o["outcome"] for o in outcomes] == ["processed"]

    detail = (await api.get(f"/api/v1/initiatives/{iid}", headers=resident("r-anyone"))).json()
    assert [h["to_status"] for h in detail["history"]] == [
        "draft",
        "gathering_support",
        "in_review",
        "approved",
        "funded",
        "in_progress",
        "completed",
    ]


async def test_a_round_closing_without_an_award_expires_the_approved_initiative(api, kafka_bootstrap):
    initiative = await approved(api)
    closed = Envelope.wrap(
        RoundClosed(
            round_id=uuid.uuid4(),
            area_code=WIJK,
            name="Buurtbudget 2026",
            mechanism="pledge",
            summary=RoundSummary(
                total_budget_cents=1_000_000,
                awarded_cents=0,
                returned_to_pool_cents=1_000_000,
                awarded_initiative_ids=[],
                unawarded_initiative_ids=[uuid.UUID(initiative["id"])],
            ),
        ),
        VOUCHERS_SOURCE,
    )
    await send(kafka_bootstrap, closed, closed)

    async def expired():
        answer = await api.get(f"/api/v1/initiatives/{initiative['id']}", headers=resident(OWNER))
        return answer.json()["status"] == "expired"

    assert await eventually(expired)
    records = await events_of(kafka_bootstrap, initiative["id"], 6)
    assert [dict(r.headers)["ce_type"] for r in records].count(f"{PREFIX}initiative-expired.v1".encode()) == 1


async def test_an_initiative_whose_support_period_ended_expires(api, service):
    initiative = await submitted(api)
    from datetime import UTC, datetime, timedelta

    later = datetime.now(UTC) + timedelta(days=43)
    assert await commands.expire_overdue(service.unit_of_work, later) >= 1
    answer = await api.get(f"/api/v1/initiatives/{initiative['id']}", headers=resident(OWNER))
    assert answer.json()["status"] == "expired"


@pytest.mark.parametrize("offset", [10**19, 2**31, -1])
async def test_paging_beyond_its_bounds_is_invalid_input_naming_the_parameter(api, offset):
    answer = await api.get("/api/v1/initiatives", params={"offset": offset}, headers=resident("r-reader"))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert [e["field"] for e in answer.json()["errors"]] == ["offset"]


async def test_list_filters_by_area_status_and_category_and_pages(api):
    mine = [await submitted(api, owner=f"r-lister-{i}") for i in range(3)]
    await draft(api, owner="r-secret")
    page = await api.get(
        "/api/v1/initiatives",
        params={"area_code": WIJK, "status": "gathering_support", "category": "green", "limit": 2},
        headers=resident("r-reader"),
    )
    body = page.json()
    assert page.status_code == 200 and body["limit"] == 2 and len(body["items"]) == 2 and body["total"] >= 3
    assert all(i["status"] == "gathering_support" and i["area_code"].startswith("BU036300") for i in body["items"])
    everything = await api.get("/api/v1/initiatives", params={"limit": 100}, headers=resident("r-reader"))
    ids = {i["id"] for i in everything.json()["items"]}
    assert {m["id"] for m in mine} <= ids
    assert all(i["status"] not in {"draft", "changes_requested"} for i in everything.json()["items"])
    elsewhere = await api.get("/api/v1/initiatives", params={"area_code": OTHER_BUURT}, headers=resident("r-reader"))
    assert elsewhere.json()["items"] == []


# -- refusals: a clear problem, and nothing changes --------------------------------------------


async def refused(api, method: str, path: str, headers: dict, status: int, json: dict | None = None) -> dict:
    answer = await api.request(method, path, headers=headers, json=json)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


async def unchanged(api, initiative: dict) -> None:
    now = (await api.get(f"/api/v1/initiatives/{initiative['id']}", headers=resident(OWNER))).json()
    for field in ("status", "support_count", "volunteer_count", "approved_amount_cents", "title", "co_initiators"):
        assert now[field] == initiative[field], field


@pytest.mark.parametrize(
    "body, field",
    [
        ({"budget_lines": [{"description": "plants", "amount_cents": 600.5}]}, "budget_lines.0.amount_cents"),
        ({"area_code": "Amsterdam"}, "area_code"),
        ({"category": "parking"}, "category"),
        ({"title": ""}, "title"),
        ({"budget_lines": []}, "budget_lines"),
        ({"owner_id": "r-someone-else"}, "owner_id"),
        ({"title": "Bank\x00jes"}, "title"),  # PostgreSQL cannot store NUL: once a server error
        ({"title": "Bankjes\nvoor iedereen"}, "title"),  # a title ends up in an e-mail subject
        ({"title": "Bankjes\u2028"}, "title"),
        ({"summary": "zit\x1bplaats"}, "summary"),
        ({"description": "Twee regels\nmag,\x00 NUL niet"}, "description"),
        ({"budget_lines": [{"description": "hout\x00", "amount_cents": 600}]}, "budget_lines.0.description"),
        ({"budget_lines": [{"description": "hout", "amount_cents": 10**20}]}, "budget_lines.0.amount_cents"),
    ],
)
async def test_invalid_drafts_are_422_naming_the_field(api, body, field):
    problem = await refused(api, "POST", "/api/v1/initiatives", resident(OWNER), 422, NEW | body)
    assert field in [error["field"] for error in problem["errors"]]


async def test_a_budget_above_the_municipal_maximum_is_refused(api):
    problem = await refused(
        api,
        "POST",
        "/api/v1/initiatives",
        resident(OWNER),
        422,
        NEW | {"budget_lines": [{"description": "a fountain", "amount_cents": 600_000}]},
    )
    assert problem["errors"][0]["field"] == "budget_lines"


async def test_residents_propose_only_for_their_own_area_and_officials_not_at_all(api):
    await refused(api, "POST", "/api/v1/initiatives", resident(OWNER, OTHER_BUURT), 403, NEW)
    await refused(api, "POST", "/api/v1/initiatives", official([WIJK]), 403, NEW)
    await refused(api, "POST", "/api/v1/initiatives", {}, 401, NEW)


async def test_a_draft_is_seen_and_changed_only_by_its_initiators(api):
    initiative = await draft(api)
    await refused(api, "GET", f"/api/v1/initiatives/{initiative['id']}", resident("r-nosy"), 404)
    await refused(api, "POST", f"/api/v1/initiatives/{initiative['id']}/submit", resident("r-nosy"), 403)
    await refused(api, "PATCH", f"/api/v1/initiatives/{initiative['id']}", resident("r-nosy"), 403, {"title": "Mine"})
    await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{initiative['id']}/co-initiators",
        resident(FRIEND),
        403,
        {"resident_id": FRIEND},
    )
    await unchanged(api, initiative)


async def test_support_refusals(api):
    initiative = await submitted(api)
    iid = initiative["id"]
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/supports", resident(OWNER), 403)
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/supports", resident("r-far", OTHER_BUURT), 403)
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/supports", official([WIJK]), 403)
    await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident("r-once"))
    problem = await refused(api, "POST", f"/api/v1/initiatives/{iid}/supports", resident("r-once"), 409)
    assert problem["type"].endswith("/already-done")
    await refused(api, "DELETE", f"/api/v1/initiatives/{iid}/supports", resident("r-never"), 409)
    withdrawn = await api.delete(f"/api/v1/initiatives/{iid}/supports", headers=resident("r-once"))
    assert withdrawn.json()["support_count"] == 0
    await unchanged(api, initiative)


async def test_an_illegal_transition_is_409_naming_the_current_status(api):
    initiative = await draft(api)
    problem = await refused(api, "POST", f"/api/v1/initiatives/{initiative['id']}/supports", resident("r-n1"), 409)
    assert problem["current_status"] == "draft" and problem["type"].endswith("/illegal-transition")
    problem = await refused(api, "POST", f"/api/v1/initiatives/{initiative['id']}/start", resident(OWNER), 409)
    assert problem["current_status"] == "draft"
    submitted_one = await submitted(api)
    problem = await refused(
        api, "PATCH", f"/api/v1/initiatives/{submitted_one['id']}", resident(OWNER), 409, {"title": "Too late"}
    )
    assert problem["current_status"] == "gathering_support"
    await unchanged(api, submitted_one)


async def test_review_refusals(api):
    initiative = await in_review(api)
    iid = initiative["id"]
    initiative = (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()
    await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        official(["WK036302"]),
        403,
        {"decision": "approve", "approved_amount_cents": 10_000},
    )
    await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        resident("r-n1"),
        403,
        {"decision": "approve", "approved_amount_cents": 10_000},
    )
    problem = await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        official([WIJK]),
        422,
        {"decision": "approve", "approved_amount_cents": 75_001},
    )
    assert problem["errors"][0]["field"] == "approved_amount_cents"
    problem = await refused(  # beyond what the database holds: invalid input, not a server error
        api,
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        official([WIJK]),
        422,
        {"decision": "approve", "approved_amount_cents": 10**20},
    )
    assert problem["errors"][0]["field"] == "approved_amount_cents"
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/review", official([WIJK]), 422, {"decision": "reject"}
    )
    assert problem["errors"][0]["field"] == "reason"
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/review", official([WIJK]), 422, {"decision": "maybe"})
    await unchanged(api, initiative)
    changes = await api.post(
        f"/api/v1/initiatives/{iid}/review",
        headers=official(["GM0363"]),
        json={"decision": "request_changes", "comment": "Add a maintenance plan"},
    )
    assert changes.json()["status"] == "changes_requested"
    edited = await api.patch(
        f"/api/v1/initiatives/{iid}", json={"description": "Now with a maintenance plan"}, headers=resident(OWNER)
    )
    assert edited.status_code == 200
    resubmitted = await api.post(f"/api/v1/initiatives/{iid}/submit", headers=resident(OWNER))
    assert resubmitted.json()["status"] == "in_review", "support already gathered still counts"


async def test_volunteers_are_seen_by_initiators_and_officials_only(api):
    initiative = await submitted(api)
    iid = initiative["id"]
    await api.post(f"/api/v1/initiatives/{iid}/volunteers", json={"offer": "carpentry"}, headers=resident("r-v"))
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/volunteers", resident("r-v"), 409, {"offer": "again"})
    await refused(api, "GET", f"/api/v1/initiatives/{iid}/volunteers", resident("r-v"), 403)
    seen = await api.get(f"/api/v1/initiatives/{iid}/volunteers", headers=official([WIJK]))
    assert [v["offer"] for v in seen.json()] == ["carpentry"]


async def test_withdraw_and_cancel(api):
    initiative = await approved(api)
    await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{initiative['id']}/cancel",
        resident(OWNER),
        409,
        {"reason": "no longer needed"},
    )
    withdrawn = await api.post(f"/api/v1/initiatives/{initiative['id']}/withdraw", headers=resident(OWNER))
    assert withdrawn.json()["status"] == "withdrawn"
    await refused(api, "POST", f"/api/v1/initiatives/{initiative['id']}/withdraw", resident(OWNER), 409)


async def test_an_unknown_initiative_is_404(api):
    await refused(api, "GET", f"/api/v1/initiatives/{uuid.uuid4()}", resident(OWNER), 404)
    await refused(api, "POST", f"/api/v1/initiatives/{uuid.uuid4()}/submit", resident(OWNER), 404)
    await refused(api, "GET", "/api/v1/initiatives/not-a-uuid", resident(OWNER), 422)


# -- co-initiators join by invitation; nobody decides their own case ----------------------------

OFFICIAL_NEIGHBOUR = "r-official-neighbour"


def official_living_in_the_buurt() -> dict[str, str]:
    """A wijkcoördinator of the wijk who lives in one of its buurten: one sign-in, both roles."""
    return token(OFFICIAL_NEIGHBOUR, ["resident", "official"], [BUURT, WIJK])


async def invite(api, iid: str, invitee: str) -> dict:
    answer = await api.post(
        f"/api/v1/initiatives/{iid}/co-initiators", json={"resident_id": invitee}, headers=resident(OWNER)
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def accept(api, iid: str, invitee: str, headers: dict[str, str] | None = None):
    return api.post(
        f"/api/v1/initiatives/{iid}/co-initiators/{invitee}/acceptance", headers=headers or resident(invitee)
    )


async def supports_of(service, iid: str) -> list[str]:
    async with service.pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT resident_id FROM supports WHERE initiative_id = $1 ORDER BY resident_id", uuid.UUID(iid)
        )
    return [r["resident_id"] for r in rows]


def ce_types(records) -> list[str]:
    return [dict(r.headers)["ce_type"].decode().removeprefix(PREFIX).removesuffix(".v1") for r in records]


async def test_a_co_initiator_counts_only_after_accepting(api, kafka_bootstrap):
    initiative = await draft(api)
    iid = initiative["id"]
    invited = await invite(api, iid, FRIEND)
    assert invited["co_initiators"] == [] and invited["invited_co_initiators"] == [FRIEND]
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/submit", resident(FRIEND), 403)
    await refused(api, "PATCH", f"/api/v1/initiatives/{iid}", resident(FRIEND), 403, {"title": "Ours"})
    seen = await api.get(f"/api/v1/initiatives/{iid}", headers=resident(FRIEND))
    assert seen.status_code == 200, "the invitee reads the draft they are asked to join"
    assert seen.json()["invited_co_initiators"] == [FRIEND]
    await invite(api, iid, "r-second")
    seen = await api.get(f"/api/v1/initiatives/{iid}", headers=resident(FRIEND))
    assert seen.json()["invited_co_initiators"] == [FRIEND], "an invitee sees only their own invitation"
    listed = await api.get("/api/v1/initiatives", params={"limit": 100}, headers=resident(FRIEND))
    assert iid in {i["id"] for i in listed.json()["items"]}
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators", resident(OWNER), 409, {"resident_id": FRIEND}
    )
    assert problem["type"].endswith("/already-done")

    joined = await accept(api, iid, FRIEND)
    assert joined.status_code == 200, joined.text
    assert joined.json()["co_initiators"] == [FRIEND] and joined.json()["invited_co_initiators"] == ["r-second"]
    owner_view = (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()
    assert owner_view["co_initiators"] == [FRIEND] and owner_view["invited_co_initiators"] == ["r-second"]
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", resident(FRIEND), 409
    )
    assert problem["type"].endswith("/already-done")
    assert (await api.post(f"/api/v1/initiatives/{iid}/submit", headers=resident(FRIEND))).status_code == 200

    records = sorted(await events_of(kafka_bootstrap, iid, 2), key=lambda r: r.offset)
    assert ce_types(records) == ["co-initiator-joined", "initiative-submitted"]
    joined_event = json.loads(records[0].value)
    assert joined_event["resident_id"] == FRIEND and joined_event["initiators"] == [OWNER, FRIEND]
    assert json.loads(records[1].value)["initiators"] == [OWNER, FRIEND]


async def test_only_the_invited_resident_accepts_their_own_invitation(api):
    initiative = await draft(api)
    iid = initiative["id"]
    await invite(api, iid, FRIEND)
    initiative = (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", resident(OWNER), 403
    )
    assert FRIEND in problem["detail"]
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", resident("r-x"), 403)
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", {}, 401)
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/r-uninvited/acceptance", resident("r-uninvited"), 404
    )
    assert problem["type"].endswith("/not-found") and "not invited" in problem["detail"]
    await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{uuid.uuid4()}/co-initiators/{FRIEND}/acceptance",
        resident(FRIEND),
        404,
    )
    await unchanged(api, initiative)
    owner_view = await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))
    assert owner_view.json()["invited_co_initiators"] == [FRIEND]


async def test_an_invitation_to_an_initiative_that_ended_cannot_be_accepted(api):
    initiative = await submitted(api)
    iid = initiative["id"]
    await invite(api, iid, FRIEND)
    assert (await api.post(f"/api/v1/initiatives/{iid}/withdraw", headers=resident(OWNER))).status_code == 200
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators/{FRIEND}/acceptance", resident(FRIEND), 409
    )
    assert problem["current_status"] == "withdrawn" and problem["type"].endswith("/illegal-transition")
    await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/co-initiators", resident(OWNER), 409, {"resident_id": "r-late"}
    )
    assert (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()["co_initiators"] == []


async def test_a_supporter_who_joins_as_co_initiator_no_longer_counts_as_a_supporter(api, service, kafka_bootstrap):
    initiative = await submitted(api)
    iid = initiative["id"]
    assert (await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident(FRIEND))).status_code == 201
    await invite(api, iid, FRIEND)
    joined = (await accept(api, iid, FRIEND)).json()
    assert joined["support_count"] == 0 and joined["status"] == "gathering_support"
    assert await supports_of(service, iid) == []
    await refused(api, "POST", f"/api/v1/initiatives/{iid}/supports", resident(FRIEND), 403)
    await refused(api, "DELETE", f"/api/v1/initiatives/{iid}/supports", resident(FRIEND), 409)

    records = sorted(await events_of(kafka_bootstrap, iid, 4), key=lambda r: r.offset)
    assert ce_types(records) == [
        "initiative-submitted",
        "initiative-supported",
        "initiative-support-withdrawn",
        "co-initiator-joined",
    ]
    withdrawn = json.loads(records[2].value)
    assert withdrawn["reason"] == "became_initiator" and withdrawn["support_count"] == 0
    assert withdrawn["supporter_id"] == FRIEND and withdrawn["initiators"] == [OWNER]


async def test_support_of_a_new_co_initiator_no_longer_counts_towards_the_threshold(api, service):
    initiative = await submitted(api)
    iid = initiative["id"]
    await invite(api, iid, FRIEND)
    for supporter in ("r-t1", FRIEND):  # the threshold is 2: the friend's support sends it to review
        assert (await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident(supporter))).status_code == 201
    joined = (await accept(api, iid, FRIEND)).json()
    assert joined["status"] == "in_review" and joined["support_count"] == 1
    assert await supports_of(service, iid) == ["r-t1"]
    changes = await api.post(
        f"/api/v1/initiatives/{iid}/review",
        headers=official([WIJK]),
        json={"decision": "request_changes", "comment": "Add a maintenance plan"},
    )
    assert changes.json()["status"] == "changes_requested"
    resubmitted = await api.post(f"/api/v1/initiatives/{iid}/submit", headers=resident(FRIEND))
    assert resubmitted.json()["status"] == "gathering_support", "the support of an initiator counted"


@pytest.mark.parametrize(
    "decision",
    [
        {"decision": "approve", "approved_amount_cents": 70_000},
        {"decision": "reject", "reason": "not in this budget"},
        {"decision": "request_changes", "comment": "add a maintenance plan"},
    ],
    ids=lambda d: d["decision"],
)
async def test_an_official_cannot_review_an_initiative_they_co_initiate(api, decision):
    initiative = await draft(api)
    iid = initiative["id"]
    await invite(api, iid, OFFICIAL_NEIGHBOUR)
    assert (await accept(api, iid, OFFICIAL_NEIGHBOUR, official_living_in_the_buurt())).status_code == 200
    await api.post(f"/api/v1/initiatives/{iid}/submit", headers=resident(OWNER))
    for neighbour in ("r-n1", "r-n2"):
        await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident(neighbour))
    initiative = (await api.get(f"/api/v1/initiatives/{iid}", headers=resident(OWNER))).json()
    assert initiative["status"] == "in_review"
    problem = await refused(
        api, "POST", f"/api/v1/initiatives/{iid}/review", official_living_in_the_buurt(), 403, decision
    )
    assert "initiate or co-initiate" in problem["detail"] and "own case" in problem["detail"]
    await unchanged(api, initiative)
    reviewed = await api.post(f"/api/v1/initiatives/{iid}/review", headers=official([WIJK]), json=decision)
    assert reviewed.status_code == 200, "another official of the area reviews it"


async def test_an_official_cannot_review_an_initiative_they_initiate(api):
    initiative = await draft(api, owner=OFFICIAL_NEIGHBOUR)
    iid = initiative["id"]
    headers = official_living_in_the_buurt()
    assert (await api.post(f"/api/v1/initiatives/{iid}/submit", headers=headers)).status_code == 200
    for neighbour in ("r-n1", "r-n2"):
        await api.post(f"/api/v1/initiatives/{iid}/supports", headers=resident(neighbour))
    initiative = (await api.get(f"/api/v1/initiatives/{iid}", headers=headers)).json()
    problem = await refused(
        api,
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        headers,
        403,
        {"decision": "approve", "approved_amount_cents": 70_000},
    )
    assert problem["type"].endswith("/forbidden") and "initiate or co-initiate" in problem["detail"]
    await unchanged(api, initiative)


# -- proposing with an Idempotency-Key --------------------------------------------------------------------------------


def proposer() -> str:
    """A resident of the buurt who has proposed nothing yet, so their drafts and keys are only this test's."""
    return f"r-proposer-{uuid.uuid4().hex[:8]}"


async def drafts_of(service, owner: str) -> list[str]:
    async with service.pool.acquire() as conn:
        rows = await conn.fetch("SELECT id FROM initiatives WHERE owner_id = $1 ORDER BY created_at", owner)
    return [str(row["id"]) for row in rows]


async def stored_answers_of(service, owner: str) -> list[tuple[str, int]]:
    async with service.pool.acquire() as conn:
        rows = await conn.fetch("SELECT key, status_code FROM idempotency_keys WHERE principal = $1", owner)
    return sorted((row["key"], row["status_code"]) for row in rows)


async def events_about(service, kafka_bootstrap: str, initiative_ids: list[str]) -> list:
    """Every event about these initiatives, once the relay published all that waited in the outbox."""

    async def drained():
        async with service.pool.acquire() as conn:
            waiting = await conn.fetchval(
                "SELECT count(*) FROM outbox WHERE aggregate_id = ANY($1::text[])", initiative_ids
            )
        return waiting == 0

    assert await eventually(drained), "the relay never published what waited in the outbox"
    records = await read_topic(kafka_bootstrap, INITIATIVES_EVENTS, at_least=1, timeout=10)
    return [r for r in records if r.key.decode() in initiative_ids]


def with_key(owner: str, key: str) -> dict[str, str]:
    return resident(owner) | {"Idempotency-Key": key}


async def test_a_proposal_repeated_with_its_idempotency_key_replays_the_first_answer_and_drafts_once(
    api, service, kafka_bootstrap
):
    owner = proposer()
    first = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    assert first.status_code == 201, first.text
    assert "Idempotent-Replayed" not in first.headers
    iid = first.json()["id"]
    assert first.headers["Location"] == f"/api/v1/initiatives/{iid}"

    again = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    assert again.status_code == 201, again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["Location"] == first.headers["Location"]

    assert await drafts_of(service, owner) == [iid]
    assert await stored_answers_of(service, owner) == [("proposal-1", 201)]
    # a draft is private: proposing it publishes nothing, and the replay publishes nothing either
    assert await events_about(service, kafka_bootstrap, [iid]) == []
    read = await api.get(f"/api/v1/initiatives/{iid}", headers=resident(owner))
    assert read.json() | {"history": None} == first.json(), "the answer with a key is the initiative as read"


async def test_the_same_idempotency_key_with_another_proposal_is_refused_and_nothing_is_stored(api, service):
    owner = proposer()
    first = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    assert first.status_code == 201, first.text

    other = NEW | {"title": "Speeltuin aan de Sarphatistraat"}
    refused = await api.post("/api/v1/initiatives", json=other, headers=with_key(owner, "proposal-1"))
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    problem = refused.json()
    assert problem["type"].endswith("/idempotency-key-reused") and "Idempotency-Key" in problem["detail"]

    assert await drafts_of(service, owner) == [first.json()["id"]]
    mine = (await api.get(f"/api/v1/initiatives/{first.json()['id']}", headers=resident(owner))).json()
    assert mine["title"] == NEW["title"]
    assert await stored_answers_of(service, owner) == [("proposal-1", 201)]
    replayed = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    assert replayed.headers["Idempotent-Replayed"] == "true" and replayed.json() == first.json()


async def test_proposals_without_an_idempotency_key_each_make_a_draft(api, service):
    owner = proposer()
    first = await api.post("/api/v1/initiatives", json=NEW, headers=resident(owner))
    second = await api.post("/api/v1/initiatives", json=NEW, headers=resident(owner))
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    assert "Idempotent-Replayed" not in first.headers and "Idempotent-Replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert await drafts_of(service, owner) == [first.json()["id"], second.json()["id"]]
    assert await stored_answers_of(service, owner) == []


async def test_concurrent_proposals_with_one_idempotency_key_make_one_draft(api, service):
    owner = proposer()
    answers = await asyncio.gather(
        *(api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1")) for _ in range(4))
    )
    assert [a.status_code for a in answers] == [201] * 4, [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert sorted(a.headers.get("Idempotent-Replayed", "false") for a in answers) == ["false", *["true"] * 3]
    assert await drafts_of(service, owner) == [answers[0].json()["id"]]


async def test_an_idempotency_key_is_the_callers_own(api, service):
    owner, neighbour = proposer(), proposer()
    mine = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    theirs = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(neighbour, "proposal-1"))
    assert mine.status_code == theirs.status_code == 201, (mine.text, theirs.text)
    assert "Idempotent-Replayed" not in theirs.headers and theirs.json()["owner_id"] == neighbour
    assert await drafts_of(service, neighbour) == [theirs.json()["id"]]


async def test_a_refused_proposal_keeps_nothing_of_its_idempotency_key(api, service):
    owner = proposer()
    elsewhere = await api.post(
        "/api/v1/initiatives", json=NEW | {"area_code": OTHER_BUURT}, headers=with_key(owner, "proposal-1")
    )
    assert elsewhere.status_code == 403, elsewhere.text
    assert await stored_answers_of(service, owner) == []
    here = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "proposal-1"))
    assert here.status_code == 201 and "Idempotent-Replayed" not in here.headers, here.text
    assert await drafts_of(service, owner) == [here.json()["id"]]


async def test_an_idempotency_key_longer_than_200_characters_is_invalid(api, service):
    owner = proposer()
    answer = await api.post("/api/v1/initiatives", json=NEW, headers=with_key(owner, "k" * 201))
    assert answer.status_code == 422, answer.text
    assert [e["field"] for e in answer.json()["errors"]] == ["Idempotency-Key"]
    assert await drafts_of(service, owner) == []
