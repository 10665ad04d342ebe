"""Asking neighbours on the real stack: offers, help requests, the asking pass, answers, what initiators and
officials see, and forgetting. Each test asks for its own tag, so the offers of other tests never fit it. The pass
runs with a chosen time (`ask_neighbours(service, now)`), the periodic one only at the start."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from asgi_lifespan import LifespanManager
from initiatives.app import ask_neighbours, create
from initiatives.settings import InitiativesSettings
from test_initiatives_api import NEW, official, resident, token

from buurtkracht_contracts import Envelope
from buurtkracht_contracts.kafka import from_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, all_topics
from buurtkracht_kit import topics
from tests import areas
from tests.integration.kit_domain import read_topic
from tests.keys import PUBLIC
from tests.waiting import eventually

pytestmark = pytest.mark.integration

BUURT, NEIGHBOURING_BUURT, OTHER_WIJK_BUURT, WIJK = "BU03630001", "BU03630002", "BU03630201", "WK036300"
TAGS = [f"taak{n}" for n in range(1, 13)] + ["klussen", "koken"]


@pytest.fixture(scope="module")
async def service(scratch_database, kafka_bootstrap, tmp_path_factory):
    await topics.ensure({"bootstrap_servers": kafka_bootstrap}, all_topics())
    key = tmp_path_factory.mktemp("keys") / "public.pem"
    key.write_text(PUBLIC)
    settings = InitiativesSettings(
        service_name=f"initiatives-asking-{uuid.uuid4().hex[:6]}",
        database_url=scratch_database,
        kafka_bootstrap_servers=kafka_bootstrap,
        jwt_public_key_file=key,
        support_threshold=50,
        consumer_start="latest",
        relay_poll_interval_seconds=0.1,
        help_tags=TAGS,
        asking_seconds=3600,
    )
    service = create(settings)
    async with LifespanManager(service.app):
        yield service


@pytest.fixture(scope="module")
async def api(service):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=service.app), base_url="http://test") as client:
        await areas.register(client, token("admin", ["admin"], ["GM0363"]), OTHER_WIJK_BUURT)
        yield client


@pytest.fixture(scope="module")
async def db(service, scratch_database):
    pool = await asyncpg.create_pool(scratch_database, min_size=1, max_size=2)
    yield pool
    await pool.close()


async def offer(api, who: str, tags: list[str], *, buurt=BUURT, reach="buurt", hours=4, limit=4, intro="") -> None:
    body = {"tags": tags, "hours_per_month": hours, "reach": reach, "max_asks_per_month": limit, "introduction": intro}
    answer = await api.put("/api/v1/offers/me", json=body, headers=resident(who, buurt))
    assert answer.status_code == 200, answer.text


async def initiative(api, owner: str) -> str:
    draft = await api.post("/api/v1/initiatives", json=NEW, headers=resident(owner))
    assert draft.status_code == 201, draft.text
    submitted = await api.post(f"/api/v1/initiatives/{draft.json()['id']}/submit", headers=resident(owner))
    assert submitted.json()["status"] == "gathering_support"
    return draft.json()["id"]


async def request_help(api, owner: str, initiative_id: str, tags: list[str], people: int = 1, hours: int = 2) -> dict:
    body = {"tags": tags, "description": "Helpen sjouwen", "hours_per_person": hours, "people_needed": people}
    answer = await api.post(f"/api/v1/initiatives/{initiative_id}/help-requests", json=body, headers=resident(owner))
    assert answer.status_code == 201, answer.text
    return answer.json()


async def asks_of(api, who: str, buurt: str = BUURT) -> list[dict]:
    answer = await api.get("/api/v1/me/export", headers=resident(who, buurt))
    assert answer.status_code == 200, answer.text
    return answer.json()["asks"]


async def asked_for(db, request_id: str) -> set[str]:
    rows = await db.fetch("SELECT resident_id FROM asks WHERE help_request_id = $1", uuid.UUID(request_id))
    return {row["resident_id"] for row in rows}


NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
ASKED = "nl.buurtkracht.initiatives.neighbour-asked.v1"


async def events_of(kafka_bootstrap: str, request_id: str, at_least: int) -> list[Envelope]:
    """The events on Kafka about the help request, once `at_least` of them arrived."""

    async def found() -> list[Envelope] | None:
        records = await read_topic(kafka_bootstrap, INITIATIVES_EVENTS, at_least=1, timeout=10)
        envelopes = [from_kafka(r.key, r.value, r.headers) for r in records]
        mine = [e for e in envelopes if e.data.get("help_request_id") == request_id]
        return mine if len(mine) >= at_least else None

    return await eventually(found) or []


async def test_a_request_reaches_exactly_the_residents_whose_offers_fit(api, service, db, kafka_bootstrap):
    tag = "taak1"
    owner = f"r-owner-{uuid.uuid4().hex[:6]}"
    await offer(api, "r-fit-buurt", [tag, "koken"])
    await offer(api, "r-fit-wijk", [tag], buurt=NEIGHBOURING_BUURT, reach="wijk")
    await offer(api, "r-own-buurt-only", [tag], buurt=NEIGHBOURING_BUURT, reach="buurt")
    await offer(api, "r-other-wijk", [tag], buurt=OTHER_WIJK_BUURT, reach="wijk")
    await offer(api, "r-other-tag", ["taak2"])
    await offer(api, "r-too-few-hours", [tag], hours=1)
    await offer(api, owner, [tag])  # an initiator is never asked for their own initiative
    initiative_id = await initiative(api, owner)
    request = await request_help(api, owner, initiative_id, [tag], people=10, hours=2)

    assert await ask_neighbours(service, NOW) == 2
    assert await asked_for(db, request["id"]) == {"r-fit-buurt", "r-fit-wijk"}
    assert await ask_neighbours(service, NOW + timedelta(minutes=1)) == 0  # nobody is asked twice for one request

    (ask,) = await asks_of(api, "r-fit-buurt")
    assert ask["help_request_id"] == request["id"] and ask["status"] == "open"
    shown = await api.get(f"/api/v1/asks/{ask['id']}", headers=resident("r-fit-buurt"))
    assert shown.status_code == 200 and shown.json()["title"] == NEW["title"]
    asked = [e.data["resident_id"] for e in await events_of(kafka_bootstrap, request["id"], 3) if e.type == ASKED]
    assert sorted(asked) == ["r-fit-buurt", "r-fit-wijk"]


async def test_nobody_is_asked_beyond_their_limit_per_month(api, service, db):
    tag = "taak3"
    await offer(api, "r-once-a-month", [tag], limit=1)
    owners = [f"r-limit-owner-{n}-{uuid.uuid4().hex[:4]}" for n in range(3)]
    first = await request_help(api, owners[0], await initiative(api, owners[0]), [tag])
    second = await request_help(api, owners[1], await initiative(api, owners[1]), [tag])
    await ask_neighbours(service, NOW)
    assert await asked_for(db, first["id"]) == {"r-once-a-month"}
    assert await asked_for(db, second["id"]) == set()  # the limit of one this month is reached
    await ask_neighbours(service, NOW + timedelta(days=10))
    assert await asked_for(db, second["id"]) == set()
    await ask_neighbours(service, NOW + timedelta(days=31))  # a month later they may be asked once again
    assert await asked_for(db, second["id"]) == {"r-once-a-month"}


async def test_the_least_recently_asked_go_first_and_who_said_no_waits(api, service, db):
    tag = "taak4"
    for who in ("r-fair-a", "r-fair-b", "r-fair-c"):
        await offer(api, who, [tag], limit=10)
    owner = f"r-fair-owner-{uuid.uuid4().hex[:6]}"
    initiative_id = await initiative(api, owner)
    seen: list[str] = []
    for step in range(3):
        request = await request_help(api, owner, initiative_id, [tag])
        await ask_neighbours(service, NOW + timedelta(hours=step))
        (who,) = await asked_for(db, request["id"])
        seen.append(who)
    assert sorted(seen) == ["r-fair-a", "r-fair-b", "r-fair-c"]  # nobody twice while another was not asked


async def test_a_yes_makes_a_volunteer_and_a_filled_request_stops_the_asking(api, service, db, kafka_bootstrap):
    tag = "taak5"
    for who in ("r-yes-1", "r-yes-2", "r-yes-3", "r-yes-4"):
        await offer(api, who, [tag], intro=f"{who} heeft een boormachine")
    owner = f"r-yes-owner-{uuid.uuid4().hex[:6]}"
    initiative_id = await initiative(api, owner)
    request = await request_help(api, owner, initiative_id, [tag], people=2)
    await ask_neighbours(service, NOW)
    first_round = await asked_for(db, request["id"])
    assert len(first_round) == 2
    one, other = sorted(first_round)

    no = await _answer(api, db, request["id"], other, "no")
    assert no.status_code == 200 and no.json()["status"] == "no"
    await ask_neighbours(service, NOW + timedelta(minutes=5))  # the no freed a place: one more is asked
    second_round = await asked_for(db, request["id"]) - first_round
    assert len(second_round) == 1

    yes = await _answer(api, db, request["id"], one, "yes")
    assert yes.status_code == 200 and yes.json()["status"] == "yes"
    volunteers = await api.get(f"/api/v1/initiatives/{initiative_id}/volunteers", headers=resident(owner))
    assert [(v["resident_id"], v["offer"]) for v in volunteers.json()] == [(one, f"{one} heeft een boormachine")]
    again = await _answer(api, db, request["id"], one, "yes")  # the same answer replays and changes nothing
    assert again.status_code == 200
    changed = await _answer(api, db, request["id"], one, "no")
    assert changed.status_code == 409

    (last,) = second_round
    assert (await _answer(api, db, request["id"], last, "yes")).status_code == 200
    requests = await api.get(f"/api/v1/initiatives/{initiative_id}/help-requests", headers=resident(owner))
    (shown,) = requests.json()
    assert shown["status"] == "filled" and shown["accepted_count"] == 2
    assert {helper["resident_id"] for helper in shown["helpers"]} == {one, last}
    await ask_neighbours(service, NOW + timedelta(days=20))  # filled: nobody is asked for it after that
    assert await asked_for(db, request["id"]) == first_round | second_round
    shown_initiative = (await api.get(f"/api/v1/initiatives/{initiative_id}", headers=resident(owner))).json()
    assert shown_initiative["volunteer_count"] == 2

    types = [e.type.split(".")[-2] for e in await events_of(kafka_bootstrap, request["id"], 8)]
    assert types.count("help-accepted") == 2 and types.count("help-declined") == 1
    assert types.count("help-request-filled") == 1


async def test_a_withdrawn_offer_is_never_asked_again(api, service, db):
    tag = "taak6"
    await offer(api, "r-withdraws", [tag])
    owner = f"r-wd-owner-{uuid.uuid4().hex[:6]}"
    initiative_id = await initiative(api, owner)
    first = await request_help(api, owner, initiative_id, [tag])
    await ask_neighbours(service, NOW)
    assert await asked_for(db, first["id"]) == {"r-withdraws"}

    gone = await api.delete("/api/v1/offers/me", headers=resident("r-withdraws"))
    assert gone.status_code == 204
    assert (await api.get("/api/v1/offers/me", headers=resident("r-withdraws"))).status_code == 404
    (ask,) = await asks_of(api, "r-withdraws")
    assert ask["status"] == "withdrawn"
    late = await api.post(f"/api/v1/asks/{ask['id']}/answer", json={"answer": "yes"}, headers=resident("r-withdraws"))
    assert late.status_code == 409

    second = await request_help(api, owner, initiative_id, [tag])
    await ask_neighbours(service, NOW + timedelta(days=40))
    assert await asked_for(db, second["id"]) == set()
    assert await asked_for(db, first["id"]) == {"r-withdraws"}  # the first request is not asked of them again


async def test_nothing_an_initiator_can_call_reveals_who_was_asked_or_said_no(api, service, db):
    tag = "taak7"
    for who in ("r-secret-no", "r-secret-open", "r-public-yes"):
        await offer(api, who, [tag], intro="bel mij" if who == "r-public-yes" else "")
    owner = f"r-priv-owner-{uuid.uuid4().hex[:6]}"
    initiative_id = await initiative(api, owner)
    request = await request_help(api, owner, initiative_id, [tag], people=3)
    await ask_neighbours(service, NOW)
    assert await asked_for(db, request["id"]) == {"r-secret-no", "r-secret-open", "r-public-yes"}
    assert (await _answer(api, db, request["id"], "r-secret-no", "no")).status_code == 200
    assert (await _answer(api, db, request["id"], "r-public-yes", "yes")).status_code == 200
    rows = await db.fetch("SELECT id FROM asks WHERE help_request_id = $1", uuid.UUID(request["id"]))
    ask_ids = [row["id"] for row in rows]

    as_owner = resident(owner)
    answers = [
        await api.get(f"/api/v1/initiatives/{initiative_id}", headers=as_owner),
        await api.get(f"/api/v1/initiatives?area_code={BUURT}", headers=as_owner),
        await api.get(f"/api/v1/initiatives/{initiative_id}/volunteers", headers=as_owner),
        await api.get(f"/api/v1/initiatives/{initiative_id}/help-requests", headers=as_owner),
        await api.get("/api/v1/me/export", headers=as_owner),
        await api.get("/api/v1/offers/me", headers=as_owner),
        await api.get(f"/api/v1/areas/{BUURT}/help-statistics", headers=as_owner),
        *[await api.get(f"/api/v1/asks/{ask_id}", headers=as_owner) for ask_id in ask_ids],
    ]
    text = " ".join(answer.text for answer in answers)
    assert "r-public-yes" in text and "bel mij" in text  # who said yes, with what they chose to share
    assert "r-secret-no" not in text and "r-secret-open" not in text
    listed = " ".join(answer.text for answer in answers[: -len(ask_ids)])  # the asks' own answers echo their id
    assert all(str(ask_id) not in listed for ask_id in ask_ids)
    assert [a.status_code for a in answers[-len(ask_ids) :]] == [404] * len(ask_ids)
    (shown,) = answers[3].json()
    assert set(shown) == {
        "id", "initiative_id", "area_code", "tags", "description", "hours_per_person", "people_needed",
        "needed_at", "status", "accepted_count", "helpers", "created_at",
    }  # fmt: skip


async def test_only_the_asked_resident_answers(api, service, db):
    tag = "taak8"
    await offer(api, "r-asked", [tag])
    owner = f"r-ans-owner-{uuid.uuid4().hex[:6]}"
    request = await request_help(api, owner, await initiative(api, owner), [tag])
    await ask_neighbours(service, NOW)
    ask_id = await db.fetchval("SELECT id FROM asks WHERE help_request_id = $1", uuid.UUID(request["id"]))
    for stranger in (resident("r-someone-else"), resident(owner)):
        answer = await api.post(f"/api/v1/asks/{ask_id}/answer", json={"answer": "yes"}, headers=stranger)
        assert answer.status_code == 404
    bad = await api.post(f"/api/v1/asks/{ask_id}/answer", json={"answer": "maybe"}, headers=resident("r-asked"))
    assert bad.status_code == 422
    assert (await db.fetchval("SELECT status FROM asks WHERE id = $1", ask_id)) == "open"


async def test_refusals_name_the_field_and_change_nothing(api, service, db):
    unknown = await api.put(
        "/api/v1/offers/me",
        json={"tags": ["breien"], "hours_per_month": 2, "reach": "buurt", "max_asks_per_month": 1},
        headers=resident("r-knitter"),
    )
    assert unknown.status_code == 422 and "tags" in unknown.text
    assert (await api.get("/api/v1/offers/me", headers=resident("r-knitter"))).status_code == 404
    owner = f"r-ref-owner-{uuid.uuid4().hex[:6]}"
    initiative_id = await initiative(api, owner)
    body = {"tags": ["taak9"], "description": "x", "hours_per_person": 1, "people_needed": 1}
    stranger = await api.post(
        f"/api/v1/initiatives/{initiative_id}/help-requests", json=body, headers=resident("r-not-initiator")
    )
    assert stranger.status_code == 403
    badtag = await api.post(
        f"/api/v1/initiatives/{initiative_id}/help-requests", json=body | {"tags": ["breien"]}, headers=resident(owner)
    )
    assert badtag.status_code == 422 and "tags" in badtag.text
    listed = await api.get(f"/api/v1/initiatives/{initiative_id}/help-requests", headers=resident(owner))
    assert listed.json() == []
    tags = await api.get("/api/v1/offers/tags", headers=resident("r-knitter"))
    assert tags.json()["tags"] == TAGS


async def test_officials_see_counts_without_names(api, service, db):
    tag = "taak10"
    await offer(api, "r-stat-1", [tag], buurt="BU03630003")
    await offer(api, "r-stat-2", [tag, "taak11"], buurt="BU03630003")
    before = await api.get(f"/api/v1/areas/{WIJK}/help-statistics", headers=official([WIJK]))
    assert before.status_code == 200
    stats = before.json()
    assert stats["offers_by_tag"][tag] == 2 and stats["offers_by_tag"]["taak11"] == 1
    assert stats["asks_sent"] >= stats["asks_answered"] >= stats["asks_accepted"]
    assert "r-stat-1" not in before.text
    elsewhere = await api.get(f"/api/v1/areas/{WIJK}/help-statistics", headers=official(["WK036302"]))
    assert elsewhere.status_code == 403
    buurt = (await api.get("/api/v1/areas/BU03630003/help-statistics", headers=official([WIJK]))).json()
    assert buurt["offers"] == 2
    await ask_neighbours(service, NOW)  # the pass refreshes the offers metric
    metrics = await api.get("/metrics")
    assert f'buurtkracht_help_offers{{tag="{tag}",wijk="{WIJK}"}} 2.0' in metrics.text
    assert 'buurtkracht_help_asks_total{outcome="sent"}' in metrics.text


async def test_forgetting_a_resident_removes_their_offer_and_keeps_the_counts(api, service, db):
    from initiatives.service import privacy

    tag = "taak12"
    await offer(api, "r-forget-me", [tag])
    owner = f"r-fg-owner-{uuid.uuid4().hex[:6]}"
    request = await request_help(api, owner, await initiative(api, owner), [tag])
    await ask_neighbours(service, NOW)
    assert await asked_for(db, request["id"]) == {"r-forget-me"}
    async with service.unit_of_work() as uow:
        await privacy.forget_resident(uow, "r-forget-me", "forgotten-test-1")
        await uow.commit()
    assert (await api.get("/api/v1/offers/me", headers=resident("r-forget-me"))).status_code == 404
    assert await asked_for(db, request["id"]) == {"forgotten-test-1"}
    assert await db.fetchval("SELECT status FROM asks WHERE resident_id = 'forgotten-test-1'") == "withdrawn"


async def _answer(api, db, request_id: str, who: str, answer: str) -> httpx.Response:
    ask_id = await db.fetchval(
        "SELECT id FROM asks WHERE help_request_id = $1 AND resident_id = $2", uuid.UUID(request_id), who
    )
    assert ask_id is not None, f"{who} was not asked"
    return await api.post(f"/api/v1/asks/{ask_id}/answer", json={"answer": answer}, headers=resident(who))


async def test_withdrawing_an_offer_waits_for_a_running_pass_so_none_asks_from_the_old_offer(api, service, db):
    from initiatives.adapters.help import ASKING_LOCK_KEY

    await offer(api, "r-withdraws-late", ["taak2"])
    async with db.acquire() as conn, conn.transaction():  # a pass running in another replica holds the turn
        await conn.execute("SELECT pg_advisory_xact_lock($1)", ASKING_LOCK_KEY)
        withdrawing = asyncio.create_task(api.delete("/api/v1/offers/me", headers=resident("r-withdraws-late")))
        await asyncio.sleep(0.5)
        assert not withdrawing.done()
    assert (await withdrawing).status_code == 204
    assert (await api.get("/api/v1/offers/me", headers=resident("r-withdraws-late"))).status_code == 404
