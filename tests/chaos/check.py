"""The independent checker of a chaos run: after the load stopped and every backlog drained, it reads the
services' databases, the Kafka topics and the SMTP and webhook sinks, and counts what was lost, doubled or wrong.

- Pledges: every request answered 2xx is in the ledger exactly once, with the amount answered; a request the
  client gave up on took effect at most once; a refused one took none; no pledge exists that no key explains.
- Claims: every claim answered 201 exists once with the amount asked, explained by its key; every approval
  answered 200 left an approved claim with a payout of the claim's amount; every confirmation answered 200 left
  that payout settled; no claim exists that no key explains.
- Proposals: every initiative proposed with a key answered 201 exists once; none exists twice; an approval the
  client saw holds.
- The ledger: `vouchers.ledger_check` finds nothing; no account below zero; no initiative awarded more than its
  approved amount.
- Events: every outbox empties (all reached Kafka); every event of the run on Kafka that a service handles is in
  that service's inbox as processed, once (the inbox's key); records sent twice by a relay that died after Kafka
  acknowledged them are counted as redelivered, not doubled, because the inbox applies them once.
- Order: per aggregate, the first copies of its events on Kafka come in the order of their sequences (`order`).
- Nothing dead-lettered: no inbox row `dead_lettered`, no record on a service's dead-letter topic.
- Messages: every e-mail recorded as sent arrived at least once, a second copy with the same Message-ID; every
  webhook delivery recorded as delivered arrived at least once, a second copy with the same `webhook-id`; none is
  due and undelivered, except those a disabled subscription holds (counted apart: they go out when an admin
  enables it again).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition

from buurtkracht_contracts.topics import PRODUCERS, dead_letter_topic

from ..system import HANDLED, ROOT, System
from .load import Ledger, Population
from .order import OrderedRecord, out_of_order


@dataclass
class Findings:
    figures: dict[str, Any] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    doubled: list[str] = field(default_factory=list)
    ledger: list[str] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)
    out_of_order: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        return self.lost + self.doubled + self.out_of_order + self.ledger + self.dead_letters

    @property
    def clean(self) -> bool:
        return not self.problems

    def summary(self) -> dict[str, Any]:
        return self.figures | {
            "lost": len(self.lost),
            "doubled": len(self.doubled),
            "out_of_order": len(self.out_of_order),
            "ledger_problems": len(self.ledger),
            "dead_lettered": len(self.dead_letters),
        }


def group(system: System, service: str) -> str:
    """The service's consumer group (its service name)."""
    return system.environments[service]["BK_SERVICE_NAME"]


async def drained(system: System) -> dict[str, int]:
    """What is still waiting and due: unpublished outbox rows per service, e-mail and webhook deliveries whose next
    attempt has come (one that waits out its backoff after the endpoint was down is due later, not lost)."""
    waiting = {}
    for service, url in system.databases.items():
        conn = await asyncpg.connect(url)
        try:
            waiting[f"{service}.outbox"] = await conn.fetchval("SELECT count(*) FROM outbox")
            if service == "notifications":
                waiting["email"] = await conn.fetchval(
                    """SELECT count(*) FROM notifications WHERE channel = 'email' AND status = 'pending'
                       AND next_attempt_at <= now()"""
                )
                waiting["webhooks"] = await conn.fetchval(
                    """SELECT count(*) FROM webhook_deliveries d
                       JOIN webhook_subscriptions s ON s.id = d.subscription_id
                       WHERE d.status = 'pending' AND d.next_attempt_at <= now() AND s.status = 'active'"""
                )
        finally:
            await conn.close()
    return waiting


async def records_of_run(bootstrap: str, topics: list[str], run: str) -> list[tuple[OrderedRecord, str]]:
    """Every record on `topics` whose source names `run`, with its event type."""
    consumer = AIOKafkaConsumer(
        *topics, bootstrap_servers=bootstrap.split(","), enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()  # without a group, the consumer is assigned every partition of the topics
    try:
        partitions = [
            TopicPartition(topic, partition)
            for topic in topics
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not partitions:
            return []
        ends = await consumer.end_offsets(partitions)
        found = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    headers = {name: value.decode() for name, value in record.headers if value is not None}
                    if run in headers.get("ce_source", ""):
                        key = (record.key or b"").decode(errors="replace")
                        where = (tp.topic, tp.partition, record.offset, key, headers["ce_id"])
                        ordered = OrderedRecord(*where, headers.get("ce_sequence"), headers["ce_source"])
                        found.append((ordered, headers["ce_type"]))
        return found
    finally:
        await consumer.stop()


async def check(system: System, ledger: Ledger, population: Population, bootstrap: str) -> Findings:
    findings = Findings()
    await _pledges(system, ledger, population, findings)
    await _claims(system, ledger, population, findings)
    await _proposals(system, ledger, findings)
    await _ledger(system, findings)
    await _events(system, bootstrap, findings)
    await _messages(system, findings)
    return findings


async def _pledges(system: System, ledger: Ledger, population: Population, findings: Findings) -> None:
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        rows = {
            str(row["id"]): row
            for row in await conn.fetch(
                "SELECT id, resident_id, amount_cents FROM pledges WHERE round_id = $1", population.round_id
            )
        }
        stored = {
            row["key"]: row
            for row in await conn.fetch(
                "SELECT key, status_code, response FROM idempotency_keys WHERE key = ANY($1::text[])",
                list(ledger.pledges),
            )
        }
    finally:
        await conn.close()
    explained: Counter[str] = Counter()
    for key, pledge in ledger.pledges.items():
        kept = stored.get(key)
        answer = json.loads(kept["response"]) if kept is not None else {}
        kept_id = answer.get("id") if kept is not None and kept["status_code"] in (200, 201) else None
        if kept_id is not None:
            explained[kept_id] += 1
        if pledge.status in (200, 201):
            if pledge.pledge_id not in rows:
                findings.lost.append(
                    f"pledge {key}: answered {pledge.status} with {pledge.pledge_id}, not in the ledger"
                )
            elif rows[pledge.pledge_id]["amount_cents"] != pledge.answered_cents:
                findings.doubled.append(
                    f"pledge {key}: {rows[pledge.pledge_id]['amount_cents']} cents booked, "
                    f"{pledge.answered_cents} answered"
                )
            if kept_id != pledge.pledge_id:
                findings.doubled.append(f"pledge {key}: the key replays {kept_id}, the client got {pledge.pledge_id}")
        elif pledge.status is not None and kept is not None:
            findings.doubled.append(f"pledge {key}: refused with {pledge.status}, yet its key was stored")
    for pledge_id in rows:
        if explained[pledge_id] != 1:
            findings.doubled.append(f"pledge {pledge_id}: explained by {explained[pledge_id]} keys, not one")
    findings.figures["pledges_booked"] = len(rows)
    findings.figures["gave_up_but_booked"] = sum(
        1 for key, pledge in ledger.pledges.items() if pledge.status is None and key in stored
    )


async def _claims(system: System, ledger: Ledger, population: Population, findings: Findings) -> None:
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        claims = {
            str(row["id"]): row
            for row in await conn.fetch(
                """SELECT c.id, c.amount_cents, c.status, p.id AS payout_id, p.amount_cents AS paid_cents,
                          p.status AS payout_status
                   FROM expense_claims c LEFT JOIN payouts p ON p.claim_id = c.id WHERE c.round_id = $1""",
                population.round_id,
            )
        }
        keys = {
            row["key"]: json.loads(row["response"])
            for row in await conn.fetch(
                "SELECT key, response FROM idempotency_keys WHERE key = ANY($1::text[]) AND status_code = 201",
                list(ledger.claims),
            )
        }
        over = await conn.fetch(
            """SELECT id, awarded_cents, approved_amount_cents FROM initiatives
               WHERE id = ANY($1::uuid[]) AND awarded_cents > approved_amount_cents""",
            population.initiatives,
        )
    finally:
        await conn.close()
    findings.ledger += [
        f"initiative {row['id']} awarded {row['awarded_cents']} cents, approved {row['approved_amount_cents']}"
        for row in over
    ]
    explained = Counter(answer["id"] for answer in keys.values())
    for key, claim in ledger.claims.items():
        row = claims.get(claim.claim_id or "")
        if claim.status == 201:
            if row is None:
                findings.lost.append(f"claim {key}: answered 201 with {claim.claim_id}, not stored")
                continue
            if row["amount_cents"] != claim.amount_cents:
                findings.doubled.append(f"claim {key}: {row['amount_cents']} cents stored, {claim.amount_cents} asked")
        if claim.decision_status == 200 and (row is None or row["status"] != "approved" or row["payout_id"] is None):
            findings.lost.append(f"claim {claim.claim_id}: approval answered 200, not approved with a payout")
        elif claim.decision_status == 200 and row["paid_cents"] != row["amount_cents"]:
            findings.doubled.append(f"payout of claim {claim.claim_id}: {row['paid_cents']} for {row['amount_cents']}")
        if claim.confirmation_status == 200 and (row is None or row["payout_status"] != "settled"):
            findings.lost.append(f"payout {claim.payout_id}: confirmation answered 200, not settled")
    for claim_id in claims:
        if explained[claim_id] != 1:
            findings.doubled.append(f"claim {claim_id}: explained by {explained[claim_id]} keys, not one")
    findings.figures["claims_stored"] = len(claims)
    findings.figures["payouts_settled"] = sum(1 for row in claims.values() if row["payout_status"] == "settled")


async def _proposals(system: System, ledger: Ledger, findings: Findings) -> None:
    conn = await asyncpg.connect(system.databases["initiatives"])
    try:
        rows = await conn.fetch(
            "SELECT id, title, status FROM initiatives WHERE title = ANY($1::text[])",
            [proposal.title for proposal in ledger.proposals.values()],
        )
    finally:
        await conn.close()
    stored: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        stored.setdefault(row["title"], []).append(row)
    approved = ("approved", "funded", "in_progress", "completed")
    for key, proposal in ledger.proposals.items():
        found = stored.get(proposal.title, [])
        if len(found) > 1:
            findings.doubled.append(f"proposal {key}: {len(found)} initiatives")
        if proposal.status == 201 and [str(row["id"]) for row in found] != [proposal.initiative_id]:
            findings.lost.append(f"proposal {key}: answered 201 with {proposal.initiative_id}, stored {found}")
        if proposal.reached == "approved" and (not found or found[0]["status"] not in approved):
            findings.lost.append(f"initiative {proposal.initiative_id}: approval answered, now {found}")
    findings.figures["initiatives_proposed"] = len(rows)


async def _ledger(system: System, findings: Findings) -> None:
    env = system.environments["vouchers"] | {"BK_DATABASE_URL": system.databases["vouchers"]}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "vouchers.ledger_check",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    findings.figures["ledger_check"] = out.decode().strip()
    if process.returncode != 0:
        findings.ledger.extend(err.decode().splitlines() or [f"ledger check exit {process.returncode}"])
    conn = await asyncpg.connect(system.databases["vouchers"])
    try:
        below = "SELECT id, kind, balance_cents FROM accounts WHERE balance_cents < 0 AND kind <> 'municipality'"
        for row in await conn.fetch(below):  # the municipality's account is where every cent comes from
            findings.ledger.append(f"account {row['id']} ({row['kind']}) at {row['balance_cents']} cents")
    finally:
        await conn.close()


OUTBOX_WAIT_SECONDS = 30.0  # for a row recorded by a delivery whose backoff ran out after the drain


async def _events(system: System, bootstrap: str, findings: Findings) -> None:
    for service, rows in (await _outboxes_left(system, OUTBOX_WAIT_SECONDS)).items():
        findings.lost += [
            f"{service}: {row['event_type']} {row['event_id']} still in the outbox, recorded {row['age']:.1f} s ago,"
            f" {row['attempts']} attempts, last error {row['last_error']!r}"
            for row in rows
        ]
    records = await records_of_run(bootstrap, list(PRODUCERS.values()), system.journey.run)
    for service, url in system.databases.items():
        conn = await asyncpg.connect(url)
        try:
            inbox = {
                (row["message_id"], row["outcome"])
                for row in await conn.fetch(
                    "SELECT message_id, outcome FROM inbox WHERE consumer = $1", group(system, service)
                )
            }
        finally:
            await conn.close()
        applied = {message_id for message_id, outcome in inbox if outcome == "processed"}
        findings.dead_letters += [f"{service}: {m} dead-lettered" for m, outcome in inbox if outcome == "dead_lettered"]
        handled = {record.event_id for record, event_type in records if event_type in HANDLED[service]}
        findings.lost += [f"{service} never applied event {event_id}" for event_id in sorted(handled - applied)]
        findings.figures[f"{service}_applied"] = len(handled & applied)
        parked = await records_of_run(bootstrap, [dead_letter_topic(group(system, service))], "")
        findings.dead_letters += [f"{service}: {record.event_id} on its dead-letter topic" for record, _ in parked]
    findings.out_of_order += out_of_order(record for record, _ in records)
    copies = Counter(record.event_id for record, _ in records)
    findings.figures["events_on_kafka"] = len(copies)
    findings.figures["redelivered_records"] = sum(n - 1 for n in copies.values())


async def _messages(system: System, findings: Findings) -> None:
    conn = await asyncpg.connect(system.databases["notifications"])
    try:
        sent = {
            str(row["id"])
            for row in await conn.fetch("SELECT id FROM notifications WHERE channel = 'email' AND status = 'sent'")
        }
        delivered = {
            str(row["id"]) for row in await conn.fetch("SELECT id FROM webhook_deliveries WHERE status = 'delivered'")
        }
        backing_off = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at > now()"
        )
        undelivered = await conn.fetch(
            """SELECT d.id, s.status AS subscription FROM webhook_deliveries d
               JOIN webhook_subscriptions s ON s.id = d.subscription_id
               WHERE d.status = 'pending' AND d.next_attempt_at <= now()"""
        )
        emails_backing_off = await conn.fetchval(
            """SELECT count(*) FROM notifications
               WHERE channel = 'email' AND status = 'pending' AND next_attempt_at > now()"""
        )
    finally:
        await conn.close()
    arrived = Counter(str(message["Message-ID"]).strip("<>").split("@")[0] for message in system.mailbox.messages)
    findings.lost += [f"e-mail {n} recorded as sent, never arrived" for n in sorted(sent - set(arrived))]
    held = [row for row in undelivered if row["subscription"] == "disabled"]  # kept until an admin enables it again
    findings.lost += [f"webhook {row['id']} due, never delivered" for row in undelivered if row not in held]
    hooks = Counter(headers.get("webhook-id", "") for headers, _ in system.hooks.received)
    findings.lost += [f"webhook {d} recorded as delivered, never arrived" for d in sorted(delivered - set(hooks))]
    findings.figures |= {
        "emails_sent": len(sent),
        "emails_received_twice": sum(1 for n in arrived.values() if n > 1),
        "webhooks_delivered": len(delivered),
        "webhooks_received_twice": sum(1 for n in hooks.values() if n > 1),
        "webhooks_due_later": backing_off,
        "webhooks_held_by_a_disabled_subscription": len(held),
        "emails_due_later": emails_backing_off,
    }


async def _outboxes_left(system: System, seconds: float) -> dict[str, list[asyncpg.Record]]:
    """The rows still in each service's outbox once every outbox was empty at one look, or `seconds` passed.

    Deliveries due after the drain (an e-mail or webhook retried after its backoff) record events while the
    checker runs; their relay publishes them at once, so a row is lost only if it stays.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while True:
        left: dict[str, list[asyncpg.Record]] = {}
        for service, url in system.databases.items():
            conn = await asyncpg.connect(url)
            try:
                if rows := await conn.fetch(
                    """SELECT event_type, event_id, attempts, last_error,
                              extract(epoch FROM now() - created_at)::float8 AS age
                       FROM outbox ORDER BY id"""
                ):
                    left[service] = rows
            finally:
                await conn.close()
        if not left or loop.time() > deadline:
            return left
        await asyncio.sleep(1)
