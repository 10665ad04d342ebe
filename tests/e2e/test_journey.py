"""The whole resident journey with every service as its own process on the real stack: state through the
public APIs only, the events on Kafka, the email received by a real SMTP server and the signed webhook
received by an integration's endpoint — and the refusals a person would try, each changing nothing."""

from __future__ import annotations

import json
import re
import uuid

import httpx
import pytest
from standardwebhooks.webhooks import Webhook

from ..system import Refused, journey_module, running_system

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    """Every service as a process on a database of its own, a real SMTP server and a webhook endpoint."""
    async with running_system(kafka_bootstrap, tmp_path_factory, "e2e") as running:
        yield running.journey, running.mailbox, running.hooks, running.processes, running.logs


async def test_the_resident_journey_from_idea_to_accountability(system):
    journey, mailbox, hooks, processes, logs = system
    timeline: list[str] = []
    journey.say = timeline.append
    ids = await journey.walk(webhook_url=hooks.url)

    iid, rid = ids["initiative_id"], ids["round_id"]
    initiative = await journey.call("initiatives", "GET", f"/api/v1/initiatives/{iid}", ids["owner"])
    assert initiative["status"] == "completed" and initiative["report"]["spending"][0]["spent_cents"] == 30_000
    assert [h["to_status"] for h in initiative["history"]] == [
        "draft",
        "gathering_support",
        "in_review",
        "approved",
        "funded",
        "in_progress",
        "completed",
    ]
    budget = await journey.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", ids["owner"])
    assert (budget["awarded_cents"], budget["paid_cents"], budget["returned_cents"], budget["left_cents"]) == (
        50_000,
        30_000,
        20_000,
        0,
    )
    assert ids["ledger"]["problems"] == []
    round_ = await journey.call("vouchers", "GET", f"/api/v1/rounds/{rid}", ids["official"])
    assert round_["status"] == "closed" and sum(round_["totals"].values()) == round_["total_budget_cents"]

    events = await journey.events_about(iid, rid)
    types = [event_type.split(".")[-2] for _, event_type in events]
    for expected in (
        "initiative-submitted",
        "support-threshold-reached",
        "initiative-approved",
        "round-opened",
        "wallets-issued",
        "pledge-made",
        "initiative-awarded",
        "initiative-funded",
        "initiative-started",
        "expense-claimed",
        "payout-requested",
        "payout-settled",
        "initiative-completed",
        "funds-returned",
        "round-closed",
    ):
        assert expected in types, f"{expected} not on Kafka: {types}"
    assert types.count("initiative-awarded") == 1 and types.count("initiative-funded") == 1

    owner_address = f"anna-{journey.run}@example.nl"

    async def owner_mail():
        subjects = [m["Subject"] for m in mailbox.messages if m["To"].addresses[0].addr_spec == owner_address]
        return subjects if any("krijgt" in s for s in subjects) and any("Betaald" in s for s in subjects) else None

    try:
        subjects = await journey.until("Anna's email", owner_mail)
    except TimeoutError:
        raise AssertionError(f"Anna's email: {[(m['To'], m['Subject']) for m in mailbox.messages]}") from None
    assert len([s for s in subjects if "is goedgekeurd" in s]) == 1, subjects
    inbox = await journey.call("notifications", "GET", "/api/v1/inbox", ids["owner"])
    assert inbox["unread"] == inbox["total"] >= len(subjects)

    async def payout_hook():
        for headers, body in hooks.received:
            if json.loads(body)["type"] == "nl.buurtkracht.vouchers.payout-requested.v1":
                return headers, body
        return None

    headers, body = await journey.until("the signed payout webhook", payout_hook)
    secret = ids["subscription"]["secret"]
    verified = Webhook(secret).verify(body, {k: v for k, v in headers.items() if k.startswith("webhook-")})
    assert verified["data"]["payout_id"] == ids["payout_id"], verified
    assert verified["subject"] == verified["data"]["round_id"] == rid, (verified, ids["committee_round_id"])
    assert all(json.loads(b)["type"].startswith("nl.buurtkracht.vouchers.") for _, b in hooks.received)

    async def public_report():
        shown = await journey.call("portal", "GET", f"/api/v1/public/initiatives/{iid}", {})
        return shown if shown["status"] == "completed" else None

    shown = await journey.until("the completed initiative on the portal, without signing in", public_report)
    assert [(s["description"], s["spent_cents"]) for s in shown["report"]["spending"]] == [
        (s["description"], s["spent_cents"]) for s in initiative["report"]["spending"]
    ]
    assert shown["report"]["spent_amount_cents"] == sum(s["spent_cents"] for s in initiative["report"]["spending"])
    assert [line["amount_cents"] for line in shown["budget_lines"]] == [
        line["amount_cents"] for line in initiative["budget_lines"]
    ]
    assert (shown["support_count"], shown["awarded_amount_cents"]) == (
        initiative["support_count"],
        initiative["awarded_amount_cents"],
    )
    listed = await journey.call("portal", "GET", f"/api/v1/public/areas/{initiative['area_code']}/initiatives", {})
    assert iid in [item["id"] for item in listed["items"]] or listed["total"] > listed["limit"]
    await every_link_in_the_mail_opens_a_portal_page(mailbox.messages, journey.endpoints.portal)
    for service, process in processes.items():
        assert process.returncode is None, f"{service} died: {(logs / f'{service}.log').read_text()[-2000:]}"


async def test_the_refusals_a_person_would_try_are_clear_and_change_nothing(system):
    journey, *_ = system
    owner, official = journey.resident("eva"), journey.official()
    other_official = journey.token(f"o-elsewhere-{journey.run}", ["official"], ["WK036301"])
    initiative = await journey.call(
        "initiatives",
        "POST",
        "/api/v1/initiatives",
        owner,
        {
            "title": f"Zitbankjes {journey.run}",
            "summary": "Bankjes",
            "description": "Drie bankjes",
            "area_code": "BU03630001",
            "category": "social",
            "budget_lines": [{"description": "bankjes", "amount_cents": 9_000}],
        },
    )
    iid = initiative["id"]
    await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/submit", owner)
    supporter = journey.resident("fenna")
    await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", supporter)

    async def refused(service, method, path, headers, body=None) -> dict:
        with pytest.raises(Refused) as caught:
            await journey.call(service, method, path, headers, body)
        answer = caught.value.answer
        assert answer.headers["content-type"] == "application/problem+json"
        return {"status": answer.status_code, **answer.json()}

    twice = await refused("initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", supporter)
    assert twice["status"] == 409 and "already" in twice["detail"]
    for n in range(2):
        await journey.call("initiatives", "POST", f"/api/v1/initiatives/{iid}/supports", journey.resident(f"g{n}"))
    elsewhere = await refused(
        "initiatives",
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        other_official,
        {"decision": "approve", "approved_amount_cents": 9_000},
    )
    assert elsewhere["status"] == 403
    state = await journey.call("initiatives", "GET", f"/api/v1/initiatives/{iid}", owner)
    assert state["status"] == "in_review" and state["support_count"] == 3 and state["approved_amount_cents"] is None

    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    round_ = await journey.call(
        "vouchers",
        "POST",
        "/api/v1/rounds",
        official | {"Idempotency-Key": str(uuid.uuid4())},
        {
            "area_code": "WK036300",
            "name": f"Refusals {journey.run}",
            "total_budget_cents": 100_000,
            "opens_at": (now - timedelta(minutes=1)).isoformat(),
            "closes_at": (now + timedelta(days=1)).isoformat(),
            "mechanism": "pledge",
            "voucher_amount_cents": 1_000,
        },
    )
    rid = round_["id"]
    await journey.call(
        "vouchers",
        "POST",
        f"/api/v1/rounds/{rid}/wallet-issuances",
        official,
        {"resident_ids": [f"r-hugo-{journey.run}"]},
    )
    hugo = journey.resident("hugo")
    unapproved = await refused(
        "vouchers",
        "POST",
        f"/api/v1/rounds/{rid}/pledges",
        hugo | {"Idempotency-Key": str(uuid.uuid4())},
        {"initiative_id": iid, "amount_cents": 500},
    )
    assert unapproved["status"] == 404  # not approved, so unknown to the vouchers service
    await journey.call(
        "initiatives",
        "POST",
        f"/api/v1/initiatives/{iid}/review",
        official,
        {"decision": "approve", "approved_amount_cents": 9_000},
    )
    await journey.until(
        "the approval to reach the vouchers service",
        lambda: journey.call("vouchers", "GET", f"/api/v1/initiative-budgets/{iid}", owner),
    )
    too_much = await refused(
        "vouchers",
        "POST",
        f"/api/v1/rounds/{rid}/pledges",
        hugo | {"Idempotency-Key": str(uuid.uuid4())},
        {"initiative_id": iid, "amount_cents": 1_001},
    )
    assert too_much["status"] == 409 and too_much["type"].endswith("/insufficient-funds")
    wallet = await journey.call("vouchers", "GET", f"/api/v1/rounds/{rid}/wallets/me", hugo)
    assert wallet["balance_cents"] == 1_000 and wallet["pledges"] == []
    round_now = await journey.call("vouchers", "GET", f"/api/v1/rounds/{rid}", official)
    assert round_now["totals"] == {"pool": 99_000, "wallet": 1_000}


async def test_demo_data_loads_once_and_a_second_load_changes_nothing(system, capsys):
    journey, *_ = system
    demo_data, area = journey_module.demo_data, journey_module.WIJK

    async def initiatives() -> list[tuple[str, str]]:
        found = await journey.call(
            "initiatives", "GET", f"/api/v1/initiatives?area_code={area}&limit=100", journey.official()
        )
        return sorted((item["title"], item["status"]) for item in found["items"] if item["title"].endswith(" demo"))

    await demo_data(journey.endpoints)
    assert "demo data: loaded (open pledge round" in capsys.readouterr().out
    loaded = await initiatives()
    assert ("Speeltuin opknappen demo", "draft") in loaded
    assert ("Bankjes langs de gracht demo", "gathering_support") in loaded
    assert any(status == "completed" for _, status in loaded)  # the journey's initiative, accounted for

    await demo_data(journey.endpoints)
    assert "demo data: already loaded" in capsys.readouterr().out
    assert await initiatives() == loaded


LINK = re.compile(r"""https?://[^\s"'<>]+""")


async def every_link_in_the_mail_opens_a_portal_page(messages, portal: str) -> None:
    """Every link in every part of every e-mail received is a page of this system's portal: it answers, or it asks
    a visitor who is not signed in to sign in and come back to it. Never a 404, never an error."""
    links = {
        link.rstrip(".,)")
        for message in messages
        for part in message.walk()
        if part.get_content_type() in ("text/plain", "text/html")
        for link in LINK.findall(part.get_content())
    }
    assert links, "no e-mail with a link"
    async with httpx.AsyncClient(timeout=10) as client:
        for link in sorted(links):
            assert link.startswith(portal + "/"), f"{link} is not on the portal {portal}"
            answer = await client.get(link)
            path = link.removeprefix(portal)
            signing_in = answer.status_code == 303 and answer.headers["location"].startswith("/auth/login?next=")
            assert answer.status_code == 200 or signing_in, f"{path}: {answer.status_code} {answer.headers}"
