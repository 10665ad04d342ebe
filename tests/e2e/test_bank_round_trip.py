"""A payout through the bank with every service as its own process on the real stack: the initiator's bank account, the
payout batch closed by the official, its SEPA pain.001 file valid against the official XSD, the bank's camt.053
statement uploaded twice and settling once, the signed webhooks a finance integration subscribed to by event type,
and the initiator's inbox."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sepaxml
import xmlschema
from standardwebhooks.webhooks import Webhook

from ..system import running_system

pytestmark = pytest.mark.e2e

PAIN001_XSD = Path(sepaxml.__file__).resolve().parent / "schemas" / "pain.001.001.03.xsd"
SUBSCRIBED = {
    f"nl.buurtkracht.vouchers.{name}.v1"
    for name in ("payout-batch-closed", "payout-settled", "payout-returned", "payout-cancelled")
}


@pytest.fixture(scope="module")
async def system(kafka_bootstrap, tmp_path_factory):
    async with running_system(kafka_bootstrap, tmp_path_factory, "bank") as running:
        yield running.journey, running.hooks, running.processes, running.logs


async def test_a_payout_goes_through_the_bank_and_finance_hears_of_each_step(system):
    journey, hooks, processes, logs = system
    timeline: list[str] = []
    journey.say = timeline.append
    await journey.register_areas()
    bank = await journey.walk_bank(webhook_url=hooks.url)

    assert (bank["read"]["settled"], bank["read"]["reported"]) == (1, 0), timeline
    assert (bank["again"]["settled"], bank["again"]["already_read"]) == (0, 1), "the same statement twice: settled once"
    assert (bank["budget"]["paid_cents"], bank["budget"]["payable_cents"]) == (25_000, 0)
    xmlschema.XMLSchema(str(PAIN001_XSD)).validate(bank["pain001"].decode())
    assert bank["payout_reference"].encode() in bank["pain001"]

    events = await journey.events_about(bank["batch_id"], topics=("vouchers.events",))
    assert [event_type for _, event_type in events] == ["nl.buurtkracht.vouchers.payout-batch-closed.v1"]

    async def hooks_for_the_payout():
        seen = {json.loads(body)["type"]: (headers, body) for headers, body in hooks.received}
        wanted = {"nl.buurtkracht.vouchers.payout-batch-closed.v1", "nl.buurtkracht.vouchers.payout-settled.v1"}
        return seen if wanted <= set(seen) else None

    seen = await journey.until("the finance webhooks of the batch and the settlement", hooks_for_the_payout)
    assert set(seen) <= SUBSCRIBED, "only the subscribed event types are delivered"
    secret = bank["subscription"]["secret"]
    for headers, body in seen.values():
        verified = Webhook(secret).verify(body, {k: v for k, v in headers.items() if k.startswith("webhook-")})
        assert "NL91" not in json.dumps(verified), "no bank account in a webhook"
    settled = json.loads(seen["nl.buurtkracht.vouchers.payout-settled.v1"][1])
    assert settled["data"]["payout_reference"] == bank["payout_reference"]
    closed = json.loads(seen["nl.buurtkracht.vouchers.payout-batch-closed.v1"][1])
    assert bank["payout_reference"] in closed["data"]["payout_references"]

    async def told():
        inbox = await journey.call("notifications", "GET", "/api/v1/inbox", bank["owner"])
        return inbox if "payout_settled" in [item["kind"] for item in inbox["items"]] else None

    await journey.until("the initiator's inbox to tell of the payment", told)
    assert any("camt.053" in line for line in timeline) and any("pain.001" in line for line in timeline)
    for service, process in processes.items():
        assert process.returncode is None, f"{service} died: {(logs / f'{service}.log').read_text()[-2000:]}"
