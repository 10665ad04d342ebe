"""The vouchers API on the real stack: a pledge round and a committee round from opening to closing, the
money at every step, each refusal moving nothing, and the ledger's invariants after it all."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from vouchers.adapters.ledger import Ledger

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as initiative_events
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, VOUCHERS_EVENTS
from buurtkracht_kit.auth import mint
from tests.integration.kit_domain import read_topic
from tests.keys import PRIVATE

pytestmark = pytest.mark.integration

WIJK, BUURT = "WK036300", "BU03630001"
INITIATIVES_SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
PREFIX = "nl.buurtkracht.vouchers."


def token(sub: str, roles: list[str], areas: list[str]) -> dict[str, str]:
    issued = mint(
        PRIVATE, issuer="https://login.buurtkracht.local", audience="buurtkracht", subject=sub, roles=roles, areas=areas
    )
    return {"Authorization": f"Bearer {issued}"}


OFFICIAL = token("o-1", ["official"], [WIJK])
FINANCE = token("finance", ["integration"], [])


def resident(sub: str, buurt: str = BUURT) -> dict[str, str]:
    return token(sub, ["resident"], [buurt])


def key() -> dict[str, str]:
    return {"Idempotency-Key": str(uuid.uuid4())}


async def approve_initiative(service, kafka_bootstrap: str, amount: int, initiators=("r-owner",), area=BUURT):
    """The initiatives service approves an initiative: its event reaches this service through Kafka."""
    initiative_id = uuid.uuid4()
    event = initiative_events.InitiativeApproved(
        initiative_id=initiative_id,
        area_code=area,
        title="Geveltuinen",
        initiators=list(initiators),
        official_id="o-1",
        requested_amount_cents=amount,
        approved_amount_cents=amount,
    )
    record = to_kafka(Envelope.wrap(event, INITIATIVES_SOURCE))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()
    for _ in range(300):
        async with service.pool.acquire() as conn:
            if await conn.fetchval("SELECT status FROM initiatives WHERE id = $1", initiative_id) == "approved":
                return initiative_id
        await asyncio.sleep(0.1)
    raise AssertionError("the approved initiative never arrived")


async def open_round(api, mechanism="pledge", headers=OFFICIAL, **extra) -> dict:
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": "Buurtbudget De Pijp 2026",
        "total_budget_cents": 1_000_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "mechanism": mechanism,
    }
    body |= (
        {"voucher_amount_cents": 2_000, "allow_wallet_claims": True}
        if mechanism == "pledge"
        else {"committee_quorum": 2}
    )
    answer = await api.post("/api/v1/rounds", json=body | extra, headers=headers | key())
    assert answer.status_code == 201, answer.text
    return answer.json()


async def totals(api, round_id: str) -> dict[str, int]:
    return (await api.get(f"/api/v1/rounds/{round_id}", headers=OFFICIAL)).json()["totals"]


async def refused(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    return answer.json()


async def test_a_pledge_round_from_wallets_to_payout_and_closing(api, service, kafka_bootstrap):
    round_ = await open_round(api)
    rid = round_["id"]
    assert round_["totals"] == {"pool": 1_000_000}
    initiative = await approve_initiative(service, kafka_bootstrap, 5_000)

    issued = await api.post(
        f"/api/v1/rounds/{rid}/wallet-issuances", json={"resident_ids": ["r-1", "r-2", "r-2"]}, headers=OFFICIAL
    )
    assert issued.status_code == 201 and issued.json() == {
        "issued": 2,
        "already_had_a_wallet": 0,
        "issued_cents": 4_000,
    }
    csv_upload = await api.post(
        f"/api/v1/rounds/{rid}/wallet-issuances",
        content=b"resident_id\nr-2\nr-3\nr-4\n",
        headers=OFFICIAL | {"content-type": "text/csv"},
    )
    assert csv_upload.json() == {"issued": 2, "already_had_a_wallet": 1, "issued_cents": 4_000}
    claimed = await api.post(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-5"))
    assert claimed.status_code == 201 and claimed.json()["balance_cents"] == 2_000
    await refused(await api.post(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-5")), 409)
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 10_000}

    pledge_body = {"initiative_id": str(initiative), "amount_cents": 2_000}
    same_key = key()
    first = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1") | same_key)
    assert first.status_code == 201 and first.json()["wallet_balance_cents"] == 0
    replay = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1") | same_key)
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers.get("idempotent-replayed") == "true"
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges",
            json=pledge_body | {"amount_cents": 1_000},
            headers=resident("r-1") | same_key,
        ),
        409,
    )
    problem = await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-1")), 400
    )
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    problem = await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges", json=pledge_body | {"amount_cents": 2_001}, headers=resident("r-2") | key()
        ),
        409,
    )
    assert problem["type"].endswith("/insufficient-funds")
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges", json=pledge_body | {"amount_cents": 1.5}, headers=resident("r-2") | key()
        ),
        422,
    )
    await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-none") | key()), 404
    )
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/pledges",
            json={"initiative_id": str(uuid.uuid4()), "amount_cents": 100},
            headers=resident("r-2") | key(),
        ),
        404,
    )
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 8_000, "pledged": 2_000}

    second = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-2") | key())
    withdrawn = await api.delete(f"/api/v1/rounds/{rid}/pledges/{second.json()['id']}", headers=resident("r-2"))
    assert withdrawn.status_code == 200 and withdrawn.json()["wallet_balance_cents"] == 2_000
    await refused(await api.delete(f"/api/v1/rounds/{rid}/pledges/{first.json()['id']}", headers=resident("r-2")), 404)
    await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-2") | key())
    last = await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-3") | key())
    assert last.json()["amount_cents"] == 1_000 and last.json()["requested_cents"] == 2_000, "the last pledge is capped"
    assert last.json()["wallet_balance_cents"] == 1_000 and last.json()["initiative_awarded"] is True
    problem = await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-4") | key()), 409
    )
    assert problem["current_status"] == "awarded"
    await refused(await api.delete(f"/api/v1/rounds/{rid}/pledges/{first.json()['id']}", headers=resident("r-1")), 409)
    assert await totals(api, rid) == {"pool": 990_000, "wallet": 5_000, "pledged": 0, "budget": 5_000}

    budget = await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))
    assert budget.json() | {"round_id": None} == {
        "initiative_id": str(initiative),
        "round_id": None,
        "status": "awarded",
        "awarded_cents": 5_000,
        "held_cents": 0,
        "payable_cents": 0,
        "paid_cents": 0,
        "returned_cents": 0,
        "left_cents": 5_000,
    }
    claim_body = {
        "initiative_id": str(initiative),
        "supplier": "Tuincentrum Amstel",
        "amount_cents": 3_000,
        "invoice_reference": "F-2026-0042",
    }
    await refused(await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-1") | key()), 403)
    await refused(
        await api.post(
            "/api/v1/expense-claims",
            json=claim_body | {"amount_cents": 5_001, "invoice_reference": "F-big"},
            headers=resident("r-owner") | key(),
        ),
        409,
    )
    claim = await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-owner") | key())
    assert claim.status_code == 201 and claim.json()["status"] == "held"
    await refused(await api.post("/api/v1/expense-claims", json=claim_body, headers=resident("r-owner") | key()), 409)
    left = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (left["held_cents"], left["left_cents"]) == (3_000, 2_000)
    await refused(
        await api.post(
            f"/api/v1/expense-claims/{claim.json()['id']}/decision",
            json={"decision": "approve"},
            headers=resident("r-owner") | key(),
        ),
        403,
    )
    await refused(
        await api.post(
            f"/api/v1/expense-claims/{claim.json()['id']}/decision",
            json={"decision": "decline"},
            headers=OFFICIAL | key(),
        ),
        422,
    )
    decided = await api.post(
        f"/api/v1/expense-claims/{claim.json()['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
    )
    assert decided.json()["status"] == "approved" and decided.json()["payout_reference"].startswith("BK-")
    payout_id = decided.json()["payout_id"]
    confirmation = {"bank_reference": "NL-SEPA-778899", "paid_at": datetime.now(UTC).isoformat()}
    await refused(await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=OFFICIAL), 403)
    settled = await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=FINANCE)
    assert settled.json()["status"] == "settled"
    again = await api.post(f"/api/v1/payouts/{payout_id}/confirmation", json=confirmation, headers=FINANCE)
    assert again.status_code == 200 and again.json() == settled.json()
    await refused(
        await api.post(
            f"/api/v1/payouts/{payout_id}/confirmation",
            json=confirmation | {"bank_reference": "other"},
            headers=FINANCE,
        ),
        409,
    )

    async with service.unit_of_work() as uow:  # the initiatives service reports the initiative completed
        from vouchers.service import reactions

        assert await reactions.initiative_finished(uow, initiative, cancelled=False) == 2_000
        await uow.commit()
    spent = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (spent["paid_cents"], spent["returned_cents"], spent["left_cents"]) == (3_000, 2_000, 0)

    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=resident("r-1")), 403)
    closed = await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL)
    assert closed.json()["status"] == "closed"
    assert closed.json()["totals"] == {
        "pool": 0,
        "wallet": 0,
        "pledged": 0,
        "budget": 0,
        "held": 0,
        "payable": 0,
        "paid": 3_000,
        "returned": 997_000,
    }
    await refused(await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL), 409)
    await refused(
        await api.post(f"/api/v1/rounds/{rid}/pledges", json=pledge_body, headers=resident("r-4") | key()), 409
    )

    ledger = await api.get(f"/api/v1/rounds/{rid}/ledger", headers=OFFICIAL)
    assert ledger.json()["problems"] == []
    assert {e["kind"] for e in ledger.json()["entries"]} >= {
        "round_opened",
        "wallets_issued",
        "pledge",
        "pledge_award",
        "claim_hold",
        "claim_approved",
        "payout_settled",
        "unspent_returned",
        "round_closed",
    }
    await refused(await api.get(f"/api/v1/rounds/{rid}/ledger", headers=resident("r-1")), 403)

    records = [
        r for r in await read_topic(kafka_bootstrap, VOUCHERS_EVENTS, at_least=1, timeout=10) if r.key == rid.encode()
    ]
    types = [dict(r.headers)["ce_type"].decode().removeprefix(PREFIX) for r in sorted(records, key=lambda r: r.offset)]
    assert types[0] == "round-opened.v2" and types[-1] == "round-closed.v2"
    assert types.count("initiative-awarded.v2") == 1 and types.count("payout-requested.v1") == 1


def member(sub: str, area: str = WIJK) -> dict[str, str]:
    return token(sub, ["steering_group", "resident"], [area])


async def steering_group(api, area: str = WIJK, members=("sg-1", "sg-2", "sg-3"), official=OFFICIAL) -> dict:
    """The officials register the area's steering group; the first member chairs it."""
    body = {"members": [{"member_id": m, "chair": i == 0} for i, m in enumerate(members)]}
    answer = await api.put(f"/api/v1/areas/{area}/steering-group", json=body, headers=official)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def propose(api, rid: str, initiative, amount: int, who: str = "sg-1", **headers) -> httpx.Response:
    body = {"initiative_id": str(initiative), "amount_cents": amount}
    return await api.post(f"/api/v1/rounds/{rid}/awards", json=body, headers=member(who) | key() | headers)


async def vote(api, rid: str, award_id: str, who: str, how: str) -> httpx.Response:
    return await api.put(f"/api/v1/rounds/{rid}/awards/{award_id}/votes/me", json={"vote": how}, headers=member(who))


async def tell(kafka_bootstrap: str, *events) -> None:
    """The initiatives service publishes `events` on its topic."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            record = to_kafka(Envelope.wrap(event, INITIATIVES_SOURCE))
            await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    finally:
        await producer.stop()


async def events_keyed(service, kafka_bootstrap: str, key: str, at_least: int) -> list[tuple[str, dict]]:
    """(type, data) of the events this service published keyed by `key`, in order, once `at_least` are on Kafka."""
    source = service.settings.event_source.encode()
    found: list = []
    for _ in range(20):
        records = await read_topic(kafka_bootstrap, VOUCHERS_EVENTS, at_least=1, timeout=10)
        found = sorted(
            (r for r in records if r.key == key.encode() and dict(r.headers).get("ce_source") == source),
            key=lambda r: (r.partition, r.offset),
        )
        if len(found) >= at_least:
            break
        await asyncio.sleep(0.5)
    return [(dict(r.headers)["ce_type"].decode().removeprefix(PREFIX), json.loads(r.value)) for r in found]


async def test_an_official_registers_the_steering_group_of_their_area_and_only_they_and_its_members_see_it(
    api, service, kafka_bootstrap
):
    area = "BU03630002"
    path = f"/api/v1/areas/{area}/steering-group"
    empty = await api.get(path, headers=OFFICIAL)
    assert empty.status_code == 200 and empty.json()["members"] == [] and empty.json()["chair_id"] is None
    body = {"members": [{"member_id": "sg-a", "chair": True}, {"member_id": "sg-b"}]}
    await refused(await api.put(path, json=body, headers=token("o-9", ["official"], ["WK036302"])), 403)
    await refused(await api.put(path, json=body, headers=member("sg-a")), 403)
    two_chairs = {"members": [{"member_id": "sg-a", "chair": True}, {"member_id": "sg-b", "chair": True}]}
    problem = await refused(await api.put(path, json=two_chairs, headers=OFFICIAL), 422)
    assert problem["errors"][0]["field"] == "members" and "one chair" in problem["detail"]
    twice = {"members": [{"member_id": "sg-a"}, {"member_id": "sg-a"}]}
    await refused(await api.put(path, json=twice, headers=OFFICIAL), 422)
    await refused(await api.put("/api/v1/areas/nowhere/steering-group", json=body, headers=OFFICIAL), 422)

    registered = await api.put(path, json=body, headers=OFFICIAL)
    assert registered.status_code == 200
    assert registered.json() | {"changed_at": None} == {
        "area_code": area,
        "members": [{"member_id": "sg-a", "chair": True}, {"member_id": "sg-b", "chair": False}],
        "chair_id": "sg-a",
        "changed_by": "o-1",
        "changed_at": None,
    }
    again = await api.put(path, json={"members": body["members"][::-1]}, headers=OFFICIAL)
    assert again.json()["members"] == registered.json()["members"], "the same group again changes nothing"
    assert (await api.get(path, headers=OFFICIAL)).json() == registered.json()
    as_member = await api.get(path, headers=member("sg-b", area))
    assert as_member.status_code == 200 and as_member.json() == registered.json()
    await refused(await api.get(path, headers=resident("r-1", area)), 403)
    await refused(await api.get(path, headers=token("o-9", ["official"], ["WK036302"])), 403)

    replaced = await api.put(path, json={"members": [{"member_id": "sg-b"}, {"member_id": "sg-c"}]}, headers=OFFICIAL)
    assert replaced.json()["chair_id"] is None
    await refused(await api.get(path, headers=token("sg-a", ["steering_group"], [area])), 403)
    told = [
        data
        for kind, data in await events_keyed(service, kafka_bootstrap, area, 2)
        if kind == "steering-group-changed.v1"
    ]
    assert [(e["member_ids"], e["chair_id"], e["joined_member_ids"], e["left_member_ids"]) for e in told] == [
        (["sg-a", "sg-b"], "sg-a", ["sg-a", "sg-b"], []),
        (["sg-b", "sg-c"], None, ["sg-c"], ["sg-a"]),
    ], "told once per change, not when the same group was registered again"


async def test_a_registered_member_signed_in_without_the_steering_group_role_does_not_see_the_group(api):
    area = "BU03630003"
    path = f"/api/v1/areas/{area}/steering-group"
    body = {"members": [{"member_id": "sg-r", "chair": True}]}
    assert (await api.put(path, json=body, headers=OFFICIAL)).status_code == 200

    problem = await refused(await api.get(path, headers=token("sg-r", ["resident"], [area])), 403)
    assert "steering_group role" in problem["detail"]
    assert (await api.get(path, headers=member("sg-r", area))).json()["members"] == body["members"]


async def test_each_member_votes_with_their_own_sign_in_and_a_quorum_of_them_awards(api, service, kafka_bootstrap):
    await steering_group(api)
    round_ = await open_round(api, mechanism="committee")  # quorum 2
    rid = round_["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 40_000)

    problem = await refused(await propose(api, rid, initiative, 40_000, "sg-9"), 403)
    assert "not a registered member of the steering group of WK036300" in problem["detail"]
    no_role = {"Authorization": token("sg-1", ["resident"], [WIJK])["Authorization"]}
    problem = await refused(await propose(api, rid, initiative, 40_000, **no_role), 403)
    assert "steering_group role" in problem["detail"]
    await refused(await propose(api, rid, initiative, 40_000, **OFFICIAL), 403)
    await refused(await propose(api, rid, initiative, 40_001), 422)
    await refused(
        await api.post(
            f"/api/v1/rounds/{rid}/awards",
            json={"initiative_id": str(initiative), "amount_cents": 40_000},
            headers=member("sg-1"),
        ),
        400,
    )

    same_key = key()
    proposed = await propose(api, rid, initiative, 40_000, **same_key)
    assert proposed.status_code == 201, proposed.text
    award = proposed.json()
    assert (award["status"], award["awarded"], award["quorum"], award["proposed_by"]) == ("open", None, 2, "sg-1")
    assert [(v["member_id"], v["vote"], v["counted"]) for v in award["votes"]] == [("sg-1", "for", True)]
    assert award["eligible_member_ids"] == ["sg-1", "sg-2", "sg-3"]
    assert (await propose(api, rid, initiative, 40_000, **same_key)).json() == award, "the same key replays"
    problem = await refused(await propose(api, rid, initiative, 30_000, "sg-2"), 409)
    assert problem["current_status"] == "open", "one open proposal per initiative in a round"

    aid = award["id"]
    tied = await vote(api, rid, aid, "sg-2", "against")
    assert tied.status_code == 200 and tied.json()["status"] == "open", "1 for, 1 against: not awarded yet"
    await refused(await vote(api, rid, aid, "sg-9", "for"), 403)
    await refused(
        await api.put(f"/api/v1/rounds/{rid}/awards/{aid}/votes/me", json={"vote": "maybe"}, headers=member("sg-3")),
        422,
    )
    await refused(await vote(api, rid, str(uuid.uuid4()), "sg-3", "for"), 404)
    assert await totals(api, rid) == {"pool": 1_000_000}

    decided = await vote(api, rid, aid, "sg-2", "abstain")  # sg-2 changes their vote
    assert decided.json()["status"] == "awarded" and decided.json()["awarded"] is True
    assert [(v["member_id"], v["vote"]) for v in decided.json()["votes"]] == [("sg-1", "for"), ("sg-2", "abstain")]
    assert await totals(api, rid) == {"pool": 960_000, "budget": 40_000}
    problem = await refused(await vote(api, rid, aid, "sg-3", "for"), 409)
    assert problem["current_status"] == "awarded", "a decided proposal takes no more votes"
    await refused(await propose(api, rid, initiative, 40_000, "sg-3"), 409)

    listed = await api.get(f"/api/v1/rounds/{rid}/awards", headers=OFFICIAL)
    assert listed.status_code == 200 and listed.json()["total"] == 1
    assert listed.json()["items"] == [decided.json()]
    assert (await api.get(f"/api/v1/rounds/{rid}/awards/{aid}", headers=member("sg-3"))).json() == decided.json()
    assert (await api.get(f"/api/v1/rounds/{rid}/awards?status=open", headers=OFFICIAL)).json()["total"] == 0
    await refused(await api.get(f"/api/v1/rounds/{rid}/awards", headers=resident("r-1")), 403)
    await refused(await api.get(f"/api/v1/rounds/{rid}/awards/{aid}", headers=member("sg-9")), 403)
    await refused(await api.get(f"/api/v1/rounds/{rid}/awards/{uuid.uuid4()}", headers=OFFICIAL), 404)

    told = await events_keyed(service, kafka_bootstrap, rid, 4)
    kinds = [kind for kind, _ in told]
    assert kinds[kinds.index("award-proposed.v1") :] == [
        "award-proposed.v1",
        "award-decided.v1",
        "initiative-awarded.v2",
    ]
    proposed_event, decided_event = told[kinds.index("award-proposed.v1")][1], told[kinds.index("award-decided.v1")][1]
    assert proposed_event["eligible_member_ids"] == ["sg-1", "sg-2", "sg-3"] and proposed_event["decision_id"] == aid
    assert decided_event["awarded"] is True and decided_event["proposed_by"] == "sg-1"
    assert decided_event["votes"] == [{"member_id": "sg-1", "vote": "for"}, {"member_id": "sg-2", "vote": "abstain"}]
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


async def test_a_proposal_every_eligible_member_voted_on_without_a_majority_for_is_not_awarded(
    api, service, kafka_bootstrap
):
    await steering_group(api)
    rid = (await open_round(api, mechanism="committee"))["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 10_000)
    aid = (await propose(api, rid, initiative, 10_000)).json()["id"]
    assert (await vote(api, rid, aid, "sg-2", "against")).json()["status"] == "open"
    decided = await vote(api, rid, aid, "sg-3", "abstain")
    assert (decided.json()["status"], decided.json()["awarded"]) == ("not_awarded", False)
    assert decided.json()["decided_at"] is not None
    assert await totals(api, rid) == {"pool": 1_000_000}, "nothing moved"
    again = await propose(api, rid, initiative, 5_000, "sg-2")
    assert again.status_code == 201, "a new proposal may follow one that was not carried"
    closed = await api.post(f"/api/v1/rounds/{rid}/close", headers=OFFICIAL)
    assert closed.json()["status"] == "closed"
    lapsed = await api.get(f"/api/v1/rounds/{rid}/awards/{again.json()['id']}", headers=OFFICIAL)
    assert lapsed.json()["status"] == "lapsed" and lapsed.json()["awarded"] is None
    problem = await refused(await vote(api, rid, again.json()["id"], "sg-1", "for"), 409)
    assert problem["current_status"] == "lapsed"
    decided_events = [d for k, d in await events_keyed(service, kafka_bootstrap, rid, 3) if k == "award-decided.v1"]
    assert [(e["awarded"], [v["vote"] for v in e["votes"]]) for e in decided_events] == [
        (False, ["for", "against", "abstain"])
    ]


async def test_nobody_votes_on_the_award_of_an_initiative_they_joined_as_co_initiator(api, service, kafka_bootstrap):
    await steering_group(api)
    rid = (await open_round(api, mechanism="committee", committee_quorum=2))["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 12_000)
    unknown = uuid.uuid4()
    joined = initiative_events.CoInitiatorJoined(
        initiative_id=initiative,
        area_code=BUURT,
        title="Geveltuinen",
        initiators=["r-owner", "sg-2"],
        resident_id="sg-2",
    )
    await tell(kafka_bootstrap, joined.model_copy(update={"initiative_id": unknown}), joined)
    for _ in range(300):
        async with service.pool.acquire() as conn:
            initiators = await conn.fetchval("SELECT initiators FROM initiatives WHERE id = $1", initiative)
        if "sg-2" in initiators:
            break
        await asyncio.sleep(0.1)
    assert initiators == ["r-owner", "sg-2"]
    async with service.pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM initiatives WHERE id = $1", unknown) == 0, "ignored"

    problem = await refused(await propose(api, rid, initiative, 12_000, "sg-2"), 403)
    assert "own initiative" in problem["detail"]
    proposed = (await propose(api, rid, initiative, 12_000, "sg-1")).json()
    assert proposed["eligible_member_ids"] == ["sg-1", "sg-3"], "a co-initiator is not eligible"
    problem = await refused(await vote(api, rid, proposed["id"], "sg-2", "for"), 403)
    assert "own initiative" in problem["detail"]
    awarded = await vote(api, rid, proposed["id"], "sg-3", "for")
    assert awarded.json()["status"] == "awarded"

    claim = await api.post(
        "/api/v1/expense-claims",
        json={
            "initiative_id": str(initiative),
            "supplier": "Drukkerij",
            "amount_cents": 2_000,
            "invoice_reference": "Z",
        },
        headers=resident("r-owner") | key(),
    )
    decide = f"/api/v1/expense-claims/{claim.json()['id']}/decision"
    for decider in (member("sg-2"), token("r-owner", ["official"], [WIJK])):
        problem = await refused(await api.post(decide, json={"decision": "approve"}, headers=decider | key()), 403)
        assert "nobody decides" in problem["detail"]
    await refused(await api.post(decide, json={"decision": "approve"}, headers=member("sg-9") | key()), 403)
    approved = await api.post(decide, json={"decision": "approve"}, headers=member("sg-1") | key())
    assert approved.status_code == 200 and approved.json()["decided_by"] == "sg-1"


async def test_a_member_who_co_initiates_an_initiative_sees_the_counts_and_outcome_of_its_awards_not_who_voted_how(
    api, service, kafka_bootstrap
):
    await steering_group(api)  # sg-1, sg-2, sg-3
    rid = (await open_round(api, mechanism="committee", committee_quorum=2))["id"]
    own = await approve_initiative(service, kafka_bootstrap, 10_000, initiators=("r-owner", "sg-3"))
    other = await approve_initiative(service, kafka_bootstrap, 8_000)
    decided_id = (await propose(api, rid, own, 10_000, "sg-1")).json()["id"]
    decided = await vote(api, rid, decided_id, "sg-2", "for")
    assert decided.json()["status"] == "awarded"
    open_id = (await propose(api, rid, other, 8_000, "sg-2")).json()["id"]

    listed = await api.get(f"/api/v1/rounds/{rid}/awards", headers=member("sg-3"))
    assert listed.status_code == 200 and listed.json()["total"] == 2, "the list stays whole"
    by_id = {item["id"]: item for item in listed.json()["items"]}
    withheld = by_id[decided_id]
    assert (withheld["status"], withheld["awarded"], withheld["vote_counts"]) == (
        "awarded",
        True,
        {"for": 2, "against": 0, "abstain": 0},
    )
    assert (withheld["ballots_withheld"], withheld["votes"], withheld["proposed_by"]) == (True, [], None)
    one = await api.get(f"/api/v1/rounds/{rid}/awards/{decided_id}", headers=member("sg-3"))
    assert one.status_code == 200 and one.json() == withheld
    shown = by_id[open_id]
    assert shown["ballots_withheld"] is False and shown["proposed_by"] == "sg-2"
    assert [(v["member_id"], v["vote"]) for v in shown["votes"]] == [("sg-2", "for")], "not their initiative"

    as_other_member = (await api.get(f"/api/v1/rounds/{rid}/awards/{decided_id}", headers=member("sg-1"))).json()
    assert as_other_member["ballots_withheld"] is False and as_other_member["proposed_by"] == "sg-1"
    assert [(v["member_id"], v["vote"]) for v in as_other_member["votes"]] == [("sg-1", "for"), ("sg-2", "for")]
    assert as_other_member == decided.json()


async def test_a_withdrawn_initiative_gets_its_pledges_returned_through_kafka(api, service, kafka_bootstrap):
    round_ = await open_round(api)
    rid = round_["id"]
    initiative = await approve_initiative(service, kafka_bootstrap, 10_000)
    await api.post(f"/api/v1/rounds/{rid}/wallet-issuances", json={"resident_ids": ["r-w1"]}, headers=OFFICIAL)
    await api.post(
        f"/api/v1/rounds/{rid}/pledges",
        json={"initiative_id": str(initiative), "amount_cents": 1_500},
        headers=resident("r-w1") | key(),
    )
    withdrawn = initiative_events.InitiativeWithdrawn(
        initiative_id=initiative,
        area_code=BUURT,
        title="Geveltuinen",
        initiators=["r-owner"],
        withdrawn_by="r-owner",
        previous_status="approved",
    )
    record = to_kafka(Envelope.wrap(withdrawn, INITIATIVES_SOURCE))
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for _ in range(2):  # delivered twice: returned once
        await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
    await producer.stop()
    for _ in range(100):
        wallet = (await api.get(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-w1"))).json()
        if wallet["balance_cents"] == 2_000:
            break
        await asyncio.sleep(0.1)
    assert wallet["balance_cents"] == 2_000 and wallet["pledges"][0]["status"] == "returned"
    await asyncio.sleep(1)
    assert (await api.get(f"/api/v1/rounds/{rid}/wallets/me", headers=resident("r-w1"))).json()[
        "balance_cents"
    ] == 2_000
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


async def test_round_input_is_validated(api):
    now = datetime.now(UTC)
    base = {
        "area_code": WIJK,
        "name": "x",
        "total_budget_cents": 1000,
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "mechanism": "pledge",
        "voucher_amount_cents": 100,
    }
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"total_budget_cents": 10.5}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "total_budget_cents"
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"closes_at": now.isoformat()}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "closes_at"
    problem = await refused(
        await api.post("/api/v1/rounds", json=base | {"voucher_amount_cents": None}, headers=OFFICIAL | key()), 422
    )
    assert problem["errors"][0]["field"] == "voucher_amount_cents"
    for naive in ({"opens_at": "2026-12-01T00:00:00"}, {"closes_at": "2026-12-31T00:00:00"}):  # no zone: which day?
        problem = await refused(await api.post("/api/v1/rounds", json=base | naive, headers=OFFICIAL | key()), 422)
        assert problem["errors"][0]["field"] == next(iter(naive))
    for beyond in (  # the driver's conversion to UTC overflows at the ends of the calendar: once a server error
        {"opens_at": "0001-01-01T00:30:00+01:00"},
        {"closes_at": "9999-12-31T23:59:59-14:00"},
        {"opens_at": 1_767_225_600},  # seconds since 1970 are no written-out time
    ):
        problem = await refused(await api.post("/api/v1/rounds", json=base | beyond, headers=OFFICIAL | key()), 422)
        assert problem["errors"][0]["field"] == next(iter(beyond))
    await refused(
        await api.post("/api/v1/rounds", json=base | {"area_code": "WK036302"}, headers=OFFICIAL | key()), 403
    )
    await refused(await api.post("/api/v1/rounds", json=base, headers=resident("r-1") | key()), 403)
    await refused(await api.get(f"/api/v1/rounds/{uuid.uuid4()}", headers=OFFICIAL), 404)


async def test_opening_a_round_takes_an_idempotency_key_and_a_retry_opens_no_second_funded_round(api, service):
    now = datetime.now(UTC)
    body = {
        "area_code": WIJK,
        "name": f"Buurtbudget {uuid.uuid4()}",
        "total_budget_cents": 250_000,
        "opens_at": (now - timedelta(minutes=1)).isoformat(),
        "closes_at": (now + timedelta(days=30)).isoformat(),
        "mechanism": "committee",
        "committee_quorum": 1,
    }
    problem = await refused(await api.post("/api/v1/rounds", json=body, headers=OFFICIAL), 400)
    assert problem["errors"][0]["field"] == "Idempotency-Key"
    same_key = key()
    first = await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | same_key)
    retried = await api.post("/api/v1/rounds", json=body, headers=OFFICIAL | same_key)
    assert first.status_code == retried.status_code == 201, retried.text
    assert retried.json() == first.json() and retried.headers.get("idempotent-replayed") == "true"
    await refused(
        await api.post("/api/v1/rounds", json=body | {"total_budget_cents": 1}, headers=OFFICIAL | same_key), 409
    )
    async with service.pool.acquire() as conn:
        opened = await conn.fetch("SELECT id FROM rounds WHERE name = $1", body["name"])
        assert [r["id"] for r in opened] == [uuid.UUID(first.json()["id"])], "one round, funded once"
        assert await Ledger(conn).check() == []


async def test_finance_confirms_a_payout_by_its_reference_and_a_confirmation_for_another_amount_moves_nothing(
    api, service, kafka_bootstrap
):
    await steering_group(api)
    round_ = await open_round(api, mechanism="committee", committee_quorum=1)
    initiative = await approve_initiative(service, kafka_bootstrap, 8_000)
    awarded = await propose(api, round_["id"], initiative, 8_000)
    assert awarded.json()["awarded"] is True, "a quorum of one: the proposer's vote decides"
    claim = await api.post(
        "/api/v1/expense-claims",
        json={
            "initiative_id": str(initiative),
            "supplier": "Drukkerij",
            "amount_cents": 2_500,
            "invoice_reference": "D-7",
        },
        headers=resident("r-owner") | key(),
    )
    approved = await api.post(
        f"/api/v1/expense-claims/{claim.json()['id']}/decision", json={"decision": "approve"}, headers=OFFICIAL | key()
    )
    reference, payout_id = approved.json()["payout_reference"], approved.json()["payout_id"]
    by_reference = f"/api/v1/payouts/by-reference/{reference}/confirmation"
    confirmation = {"bank_reference": "NL-SEPA-4455", "paid_at": datetime.now(UTC).isoformat(), "amount_cents": 2_500}

    problem = await refused(
        await api.post(by_reference, json=confirmation | {"amount_cents": 2_499}, headers=FINANCE), 409
    )
    assert problem["type"].endswith("/amount-mismatch") and "amount_cents" in problem["detail"]
    budget = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (budget["payable_cents"], budget["paid_cents"]) == (2_500, 0), "a refused confirmation moves nothing"
    await refused(await api.post(by_reference, json=confirmation, headers=OFFICIAL), 403)
    await refused(
        await api.post("/api/v1/payouts/by-reference/BK-UNKNOWN/confirmation", json=confirmation, headers=FINANCE), 404
    )
    await refused(await api.post(by_reference, json=confirmation | {"amount_cents": None}, headers=FINANCE), 422)

    settled = await api.post(by_reference, json=confirmation, headers=FINANCE)
    assert settled.status_code == 200, settled.text
    assert settled.json()["id"] == payout_id and settled.json()["status"] == "settled"
    again = await api.post(by_reference, json=confirmation, headers=FINANCE)
    assert again.status_code == 200 and again.json() == settled.json()
    by_id = f"/api/v1/payouts/{payout_id}/confirmation"
    problem = await refused(await api.post(by_id, json=confirmation | {"amount_cents": 3_000}, headers=FINANCE), 409)
    assert problem["type"].endswith("/amount-mismatch") and "amount_cents" in problem["detail"]
    assert (await api.post(by_id, json=confirmation, headers=FINANCE)).json() == settled.json()
    budget = (await api.get(f"/api/v1/initiative-budgets/{initiative}", headers=resident("r-owner"))).json()
    assert (budget["payable_cents"], budget["paid_cents"], budget["left_cents"]) == (0, 2_500, 5_500)
    async with service.pool.acquire() as conn:
        assert await Ledger(conn).check() == []


# -- what officials, members, initiators and residents see ------------------------------------------------------


async def test_officials_members_and_initiators_each_list_the_claims_and_payouts_they_act_on_and_nobody_else(
    api, service, kafka_bootstrap
):
    wijk, buurt = "WK036309", "BU03630901"
    official = token("o-9", ["official"], [wijk])
    await steering_group(api, wijk, ["sg-l1"], official=official)
    round_ = await open_round(api, mechanism="committee", area_code=wijk, committee_quorum=1, headers=official)
    rid = round_["id"]
    first = await approve_initiative(service, kafka_bootstrap, 10_000, initiators=("r-a",), area=buurt)
    second = await approve_initiative(service, kafka_bootstrap, 5_000, initiators=("r-b",), area=buurt)
    for initiative, amount in ((first, 10_000), (second, 5_000)):
        body = {"initiative_id": str(initiative), "amount_cents": amount}
        awarded = await api.post(f"/api/v1/rounds/{rid}/awards", json=body, headers=member("sg-l1", wijk) | key())
        assert awarded.json()["awarded"] is True
    claims = []
    for initiative, initiator, cents in ((first, "r-a", 1_000), (first, "r-a", 2_000), (second, "r-b", 3_000)):
        claimed = await api.post(
            "/api/v1/expense-claims",
            json={
                "initiative_id": str(initiative),
                "supplier": "Bouwmarkt",
                "amount_cents": cents,
                "invoice_reference": f"L-{cents}",
            },
            headers=resident(initiator, buurt) | key(),
        )
        claims.append(claimed.json()["id"])

    async def listed(headers, query: str = "") -> tuple[list[str], int]:
        answer = await api.get(f"/api/v1/expense-claims?round_id={rid}{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        return [c["id"] for c in answer.json()["items"]], answer.json()["total"]

    newest_first = claims[::-1]
    assert await listed(official) == (newest_first, 3)
    assert await listed(member("sg-l1", wijk)) == (newest_first, 3)
    assert await listed(resident("r-a", buurt)) == (claims[1::-1], 2), "an initiator sees their own initiative's"
    assert await listed(resident("r-b", buurt)) == ([claims[2]], 1)
    assert await listed(OFFICIAL) == ([], 0), "an official of another wijk sees none"
    municipality, of_a_buurt = token("o-gm", ["official"], ["GM0363"]), token("o-bu", ["official"], [buurt])
    assert await listed(municipality) == (newest_first, 3), "the wijk lies in the municipality"
    assert await listed(of_a_buurt) == ([], 0), "the wijk does not lie in one of its buurten"
    assert await listed(member("sg-1", wijk)) == ([], 0), "the role alone makes no member"
    assert await listed(official, "&limit=2") == (newest_first[:2], 3)
    assert await listed(official, "&limit=2&offset=2") == (newest_first[2:], 3)
    assert await listed(official, "&status=approved") == ([], 0)
    page = (await api.get("/api/v1/expense-claims", headers=resident("r-b", buurt))).json()
    assert page["items"][0] | {"created_at": None} == {
        "id": claims[2],
        "initiative_id": str(second),
        "round_id": rid,
        "claimed_by": "r-b",
        "supplier": "Bouwmarkt",
        "amount_cents": 3_000,
        "invoice_reference": "L-3000",
        "status": "held",
        "decided_by": None,
        "decision_reason": None,
        "created_at": None,
        "decided_at": None,
        "payout_id": None,
        "payout_reference": None,
    }

    one = f"/api/v1/expense-claims/{claims[0]}"
    for allowed in (official, member("sg-l1", wijk), resident("r-a", buurt)):
        assert (await api.get(one, headers=allowed)).json()["id"] == claims[0]
    for stranger in (resident("r-b", buurt), OFFICIAL, member("sg-1", wijk), FINANCE):
        await refused(await api.get(one, headers=stranger), 404)
    await refused(await api.get(f"/api/v1/expense-claims/{uuid.uuid4()}", headers=official), 404)

    approved = await api.post(f"{one}/decision", json={"decision": "approve"}, headers=official | key())
    payout_id = approved.json()["payout_id"]
    shown = (await api.get(one, headers=resident("r-a", buurt))).json()
    assert (shown["status"], shown["payout_id"], shown["decided_by"]) == ("approved", payout_id, "o-9")
    assert shown["decided_at"] is not None

    async def payouts(headers, query: str = "") -> list[str]:
        answer = await api.get(f"/api/v1/payouts?limit=100{query}", headers=headers)
        assert answer.status_code == 200, answer.text
        return [p["id"] for p in answer.json()["items"]]

    assert await payouts(official) == [payout_id]
    assert payout_id in await payouts(FINANCE)
    assert payout_id not in await payouts(OFFICIAL)
    assert payout_id in await payouts(municipality) and payout_id not in await payouts(of_a_buurt)
    assert await payouts(official, "&status=settled") == []
    await refused(await api.get("/api/v1/payouts", headers=resident("r-a", buurt)), 403)
    await refused(await api.get("/api/v1/payouts", headers=member("sg-l1", wijk)), 403)


async def test_rounds_are_listed_for_anyone_signed_in_newest_first_by_area_and_status(api):
    wijk = "WK036307"
    official = token("o-7", ["official"], [wijk])
    older = await open_round(api, mechanism="committee", area_code=wijk, headers=official)
    newer = await open_round(api, area_code=wijk, headers=official)
    closed = await api.post(f"/api/v1/rounds/{older['id']}/close", headers=official)
    assert closed.json()["status"] == "closed"

    async def ids(query: str, headers=None) -> list[str]:
        answer = await api.get(f"/api/v1/rounds?{query}", headers=headers or resident("r-1", "BU03630701"))
        assert answer.status_code == 200, answer.text
        return [r["id"] for r in answer.json()["items"]]

    assert await ids(f"area_code={wijk}") == [newer["id"], older["id"]]
    assert await ids("area_code=BU03630701") == [newer["id"], older["id"]], "the rounds a buurt lies in"
    assert (await ids("area_code=GM0363&limit=100"))[:2] == [newer["id"], older["id"]], "the rounds inside a city"
    assert await ids("area_code=WK036308") == []
    assert await ids(f"area_code={wijk}&status=closed") == [older["id"]]
    page = (await api.get(f"/api/v1/rounds?area_code={wijk}&limit=1&offset=1", headers=FINANCE)).json()
    assert (page["total"], page["limit"], page["offset"], [r["id"] for r in page["items"]]) == (2, 1, 1, [older["id"]])
    assert page["items"][0]["status"] == "closed" and page["items"][0]["mechanism"] == "committee"
    await refused(await api.get("/api/v1/rounds?area_code=WK36"), 401)
    await refused(await api.get("/api/v1/rounds?area_code=WK36", headers=FINANCE), 422)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/rounds",
        "/api/v1/expense-claims",
        "/api/v1/payouts",
        f"/api/v1/rounds/{uuid.UUID(int=1)}/awards",
        f"/api/v1/rounds/{uuid.UUID(int=1)}/initiatives",
    ],
)
@pytest.mark.parametrize("query", ["offset=2147483648", f"offset={10**30}", "offset=-1", "limit=0", "limit=101"])
async def test_paging_beyond_its_bounds_is_invalid_input_not_a_server_error(api, path, query):
    problem = await refused(await api.get(f"{path}?{query}", headers=FINANCE), 422)
    assert problem["errors"][0]["field"] in ("offset", "limit")


async def test_amounts_and_quorums_beyond_what_the_database_holds_are_invalid_input(api, service, kafka_bootstrap):
    now = datetime.now(UTC)
    base = {
        "area_code": WIJK,
        "name": "x",
        "total_budget_cents": 1_000,
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "mechanism": "committee",
        "committee_quorum": 1,
    }
    for field, value in (("total_budget_cents", 2**63), ("committee_quorum", 2**31)):
        problem = await refused(
            await api.post("/api/v1/rounds", json=base | {field: value}, headers=OFFICIAL | key()), 422
        )
        assert problem["errors"][0]["field"] == field
    round_ = await open_round(api)
    pledge = {"initiative_id": str(uuid.uuid4()), "amount_cents": 2**63}
    problem = await refused(
        await api.post(f"/api/v1/rounds/{round_['id']}/pledges", json=pledge, headers=resident("r-1") | key()), 422
    )
    assert problem["errors"][0]["field"] == "amount_cents"


async def test_a_ledger_read_after_an_entry_id_beyond_any_is_invalid_input(api):
    round_ = await open_round(api)
    await refused(await api.get(f"/api/v1/rounds/{round_['id']}/ledger?after={2**63}", headers=OFFICIAL), 422)


async def test_residents_of_the_area_see_how_far_each_initiative_of_a_pledge_round_is_before_they_pledge(
    api, service, kafka_bootstrap
):
    wijk, buurt = "WK036308", "BU03630801"
    official = token("o-8", ["official"], [wijk])
    round_ = await open_round(api, area_code=wijk, headers=official)
    rid = round_["id"]
    slow = await approve_initiative(service, kafka_bootstrap, 5_000, area=buurt)
    fast = await approve_initiative(service, kafka_bootstrap, 3_000, area=buurt)
    elsewhere = await approve_initiative(service, kafka_bootstrap, 3_000, area="BU03630101")
    residents = ["r-p1", "r-p2", "r-p3"]
    await api.post(f"/api/v1/rounds/{rid}/wallet-issuances", json={"resident_ids": residents}, headers=official)
    for who, initiative in (("r-p1", slow), ("r-p2", fast), ("r-p3", fast)):
        pledged = await api.post(
            f"/api/v1/rounds/{rid}/pledges",
            json={"initiative_id": str(initiative), "amount_cents": 2_000},
            headers=resident(who, buurt) | key(),
        )
        assert pledged.status_code == 201, pledged.text

    answer = await api.get(f"/api/v1/rounds/{rid}/initiatives", headers=resident("r-p9", buurt))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "items": [
            {
                "initiative_id": str(fast),
                "title": "Geveltuinen",
                "area_code": buurt,
                "approved_amount_cents": 3_000,
                "pledged_cents": 3_000,
                "status": "awarded",
                "awarded_cents": 3_000,
            },
            {
                "initiative_id": str(slow),
                "title": "Geveltuinen",
                "area_code": buurt,
                "approved_amount_cents": 5_000,
                "pledged_cents": 2_000,
                "status": "open",
                "awarded_cents": None,
            },
        ],
        "total": 2,
        "limit": 20,
        "offset": 0,
    }
    assert str(elsewhere) not in answer.text, "only the initiatives of the round's area"
    as_official = await api.get(f"/api/v1/rounds/{rid}/initiatives?limit=1&offset=1", headers=official)
    assert [i["initiative_id"] for i in as_official.json()["items"]] == [str(slow)]
    await refused(await api.get(f"/api/v1/rounds/{rid}/initiatives", headers=resident("r-p9", "BU03630101")), 403)
    await refused(await api.get(f"/api/v1/rounds/{rid}/initiatives", headers=OFFICIAL), 403)
    await refused(await api.get(f"/api/v1/rounds/{uuid.uuid4()}/initiatives", headers=official), 404)


async def test_only_an_official_gets_a_wallet_issuance_upload_read(api):
    rid = (await open_round(api))["id"]
    # a resident's upload is refused before any of it is read: not even a malformed body is looked at
    for body in (b"{not json", b"resident_id\nr-1\n"):
        answer = await api.post(f"/api/v1/rounds/{rid}/wallet-issuances", content=body, headers=resident("r-1"))
        await refused(answer, 403)
    answer = await api.post(f"/api/v1/rounds/{rid}/wallet-issuances", content=b"{not json", headers=OFFICIAL)
    await refused(answer, 400)


async def test_control_characters_in_any_string_are_invalid_input_naming_the_field(api):
    """PostgreSQL cannot store NUL (once a server error), and names and references are single lines."""
    now = datetime.now(UTC)
    base = {
        "area_code": WIJK,
        "name": "x",
        "total_budget_cents": 1_000,
        "opens_at": now.isoformat(),
        "closes_at": (now + timedelta(days=1)).isoformat(),
        "mechanism": "committee",
        "committee_quorum": 1,
    }
    for name in ("Ronde\x00", "Ronde\n2027", "Ronde\u2029"):
        problem = await refused(
            await api.post("/api/v1/rounds", json=base | {"name": name}, headers=OFFICIAL | key()), 422
        )
        assert problem["errors"][0]["field"] == "name"
    round_ = await open_round(api)
    issuances = f"/api/v1/rounds/{round_['id']}/wallet-issuances"
    problem = await refused(await api.post(issuances, json={"resident_ids": ["r-1", "r-\x00"]}, headers=OFFICIAL), 422)
    assert problem["errors"][0]["field"] == "resident_ids.1"
    csv_upload = {"content-type": "text/csv"} | OFFICIAL
    problem = await refused(await api.post(issuances, content="resident_id\nr-1\n\nr-\x00\n", headers=csv_upload), 422)
    assert problem["errors"][0]["field"] == "line.4", "a CSV error names its line"
    claim = {
        "initiative_id": str(uuid.uuid4()),
        "amount_cents": 100,
        "supplier": "Bouwmarkt\x00",
        "invoice_reference": "F-1",
    }
    problem = await refused(await api.post("/api/v1/expense-claims", json=claim, headers=resident("r-1") | key()), 422)
    assert problem["errors"][0]["field"] == "supplier"
    assert (await totals(api, round_["id"])).get("wallet", 0) == 0, "nothing was issued"
