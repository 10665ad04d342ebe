"""The notifications service SIGKILLed while it consumes and sends email, then restarted on the same database and
consumer group: every email still arrives, and one event never becomes two different messages to one person.

A message is claimed with a lease (committed before sending) and marked sent after its batch, so a kill between
the mail server's acceptance and that update sends it again once the lease ran out — with the same Message-ID
(`<notification-id>@buurtkracht`), so a receiver can drop it. The lease is two minutes; the test lets that time
pass by moving the lease of the messages the killed process had claimed to now, instead of waiting for it.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import os
import signal
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics
from buurtkracht_kit.auth import mint

from ..keys import PRIVATE, PUBLIC
from ..system import free_port

pytestmark = pytest.mark.fault

ROOT = Path(__file__).parents[2]
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
AREA = "BU03630001"
RUN = uuid.uuid4().hex[:8]  # other tests put events of their own residents on the same topic
OWNER = f"r-crash-{RUN}"
ADDRESS = f"{OWNER}@example.nl"
EVENTS = 200


class Mailbox:
    """Every message the SMTP server accepted: (recipient, subject, Message-ID), in order of arrival."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.received: list[tuple[str, str, str]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            for recipient in envelope.rcpt_tos:
                self.received.append((recipient, str(message["Subject"]), str(message["Message-ID"])))
        return "250 OK"

    def snapshot(self) -> list[tuple[str, str, str]]:
        with self.lock:
            return list(self.received)

    def ours(self) -> list[tuple[str, str, str]]:
        return [m for m in self.snapshot() if m[0] == ADDRESS]


class Notifications:
    """`python -m notifications` as a child process; the same group and database every time it is started."""

    def __init__(self, database_url: str, kafka: str, smtp_port: int, tmp_path: Path) -> None:
        (tmp_path / "public.pem").write_text(PUBLIC)
        self.group = f"notifications-crash-{RUN}"
        self.port = free_port()
        self.log = tmp_path / "service.log"
        self.env = os.environ | {
            "BK_SERVICE_NAME": self.group,
            "BK_CONSUMER_START": "latest",
            "BK_DATABASE_URL": database_url,
            "BK_KAFKA_BOOTSTRAP_SERVERS": kafka,
            "BK_HTTP_PORT": str(self.port),
            "BK_JWT_PUBLIC_KEY_FILE": str(tmp_path / "public.pem"),
            "BK_SMTP_HOST": "127.0.0.1",
            "BK_SMTP_PORT": str(smtp_port),
            "BK_DISPATCH_INTERVAL_SECONDS": "0.2",
            "BK_DISPATCH_BATCH_SIZE": "25",
            "BK_DIGEST_CHECK_SECONDS": "3600",
            "BK_SHUTDOWN_GRACE_SECONDS": "10",
        }
        self.process: asyncio.subprocess.Process | None = None
        self.base = f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "notifications", env=self.env, cwd=ROOT, stdout=out, stderr=out
            )
        async with httpx.AsyncClient(base_url=self.base, timeout=5) as client:
            for _ in range(200):
                assert self.process.returncode is None, self.log.read_text()[-3000:]
                try:
                    ready = await client.get("/readyz")
                    if ready.status_code == 200 and ready.json().get("consuming") is True:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
        pytest.fail(f"notifications was not consuming within 40 s:\n{self.log.read_text()[-3000:]}")

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        assert await asyncio.wait_for(self.process.wait(), 10) == -signal.SIGKILL

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


async def until(check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := await check():
            return result
        await asyncio.sleep(interval)
    return await check()


async def test_sigkill_while_sending_loses_no_email_and_resends_only_with_the_same_message_id(
    scratch_database, kafka_bootstrap, tmp_path
):
    started = time.monotonic()
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    service = Notifications(scratch_database, kafka_bootstrap, smtp_port, tmp_path)
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap},
        [*all_topics(), TopicSpec(dead_letter_topic(service.group), 1, 3_600_000)],
    )
    db = None
    try:
        await service.start()
        bearer = mint(
            PRIVATE,
            issuer="https://login.buurtkracht.local",
            audience="buurtkracht",
            subject=OWNER,
            roles=["resident"],
            areas=[AREA],
        )
        async with httpx.AsyncClient(base_url=service.base, timeout=5) as client:
            answer = await client.put(
                "/api/v1/contact-details/me",
                json={"email": ADDRESS, "language": "nl"},
                headers={"Authorization": f"Bearer {bearer}"},
            )
            assert answer.status_code == 200, answer.text

        # one initiative, so every event is on one partition: consumed in order, its offset committed per event
        initiative = uuid.uuid4()
        titles = [f"crash-{RUN}-{n:03d}" for n in range(EVENTS)]
        envelopes = [
            Envelope.wrap(
                i.InitiativeSupported(
                    initiative_id=initiative,
                    area_code=AREA,
                    title=title,
                    initiators=[OWNER],
                    supporter_id=f"r-crash-{RUN}-sup-{n}",
                    support_count=n + 1,
                ),
                SOURCE,
            )
            for n, title in enumerate(titles)
        ]
        expected = {f"Een buur steunt '{title}'" for title in titles}
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            sends = []
            for envelope in envelopes:
                record = to_kafka(envelope)
                sends.append(
                    await producer.send(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
                )
            await asyncio.gather(*sends)
        finally:
            await producer.stop()

        async def a_third_arrived():
            return len(mailbox.ours()) >= EVENTS // 3

        assert await until(a_third_arrived, 30, interval=0.005), f"{len(mailbox.ours())} emails arrived in 30 s"
        await service.kill()
        at_kill = len(mailbox.ours())

        db = await asyncpg.connect(scratch_database)
        states = {
            row["state"]: row["n"]
            for row in await db.fetch(
                """SELECT CASE WHEN status = 'pending' AND next_attempt_at > now() THEN 'claimed'
                               ELSE status END AS state, count(*) AS n
                   FROM notifications WHERE channel = 'email' AND recipient_id = $1 GROUP BY 1""",
                OWNER,
            )
        }
        # the messages the killed process had claimed (sent or not): their two-minute lease is what delays them
        claimed = await db.fetch(
            """SELECT id FROM notifications WHERE channel = 'email' AND recipient_id = $1 AND status = 'pending'
               AND next_attempt_at > now()""",
            OWNER,
        )
        await service.start()
        # let that lease run out now (only those rows, not what the restarted process claims meanwhile)
        released = await db.fetchval(
            """WITH due AS (UPDATE notifications SET next_attempt_at = now()
                            WHERE id = ANY($1::uuid[]) AND status = 'pending' AND next_attempt_at > now() RETURNING 1)
               SELECT count(*) FROM due""",
            [row["id"] for row in claimed],
        )

        async def all_arrived():
            return expected <= {subject for _, subject, _ in mailbox.ours()}

        assert await until(all_arrived, 30), (
            f"missing {len(expected - {s for _, s, _ in mailbox.ours()})} of {EVENTS} emails after the restart"
        )

        async def all_recorded():
            return (
                await db.fetchval(
                    "SELECT count(*) FROM notifications "
                    "WHERE channel = 'email' AND recipient_id = $1 AND status = 'sent'",
                    OWNER,
                )
                == EVENTS
                or None
            )

        assert await until(all_recorded, 10), "not every email is recorded as sent"
        await asyncio.sleep(1.0)  # a late resend would show up by now

        received = mailbox.ours()
        ids_by_subject: dict[str, set[str]] = defaultdict(set)
        for _, subject, message_id in received:
            ids_by_subject[subject].add(message_id)
        copies = Counter(subject for _, subject, _ in received)
        duplicates = {subject: n for subject, n in copies.items() if n > 1}
        assert set(copies) == expected  # nothing else was sent to this resident
        # a resend is the same message: one Message-ID per (recipient, event), never a second one
        assert {subject: ids for subject, ids in ids_by_subject.items() if len(ids) != 1} == {}

        rows = await db.fetch(
            """SELECT source_event_id, count(*) AS n, min(id::text) AS id, bool_and(status = 'sent') AS sent
               FROM notifications WHERE channel = 'email' AND recipient_id = $1 GROUP BY source_event_id""",
            OWNER,
        )
        assert {row["source_event_id"] for row in rows} == {envelope.id for envelope in envelopes}
        assert all(row["n"] == 1 and row["sent"] for row in rows)
        # and that Message-ID is the notification's own
        id_of_event = {row["source_event_id"]: row["id"] for row in rows}
        for envelope, title in zip(envelopes, titles, strict=True):
            assert ids_by_subject[f"Een buur steunt '{title}'"] == {f"<{id_of_event[envelope.id]}@buurtkracht>"}

        resent_ids = sorted(next(iter(ids_by_subject[subject])) for subject in duplicates)
        # only what the killed process had claimed (and maybe sent before it could record so) is sent again
        assert set(resent_ids) <= {f"<{row['id']}@buurtkracht>" for row in claimed}
        print(
            f"\nnotifications crash: {at_kill}/{EVENTS} emails before SIGKILL; email rows then {states}; "
            f"{len(claimed)} claimed at the kill, {released} of them released after the restart; "
            f"{len(received)} messages received in all, "
            f"{len(duplicates)} events emailed twice or more (same Message-ID each): {resent_ids}; "
            f"{time.monotonic() - started:.1f} s"
        )
    finally:
        if db is not None:
            await db.close()
        await service.stop()
        smtp.stop()
