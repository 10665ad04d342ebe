"""How long a notification takes from its event on Kafka to its email accepted by the mail server, at a steady rate.

Starts the notifications service as its own process (`python -m notifications`, a consumer group of its own that
starts at the end of the topics) against a scratch database and an in-process SMTP server (aiosmtpd), registers
N residents' email addresses, then publishes `InitiativeSupported` events on `initiatives.events` at R events a
second for T seconds. Each event names one registered resident as its initiator, so it causes exactly one email
("Een buur steunt '<title>'", the title unique per event). The latency of one email is the time the SMTP server
accepted it minus the time Kafka acknowledged its event. Needs the local stack (`make stack-up`). Logs a summary on
stderr; the last line on stdout is the run's figures as one JSON object (`ok` false, exit status 1, unless every
event's email arrived exactly once).

    .venv/bin/python bench/notification_latency.py --rate 20 --seconds 30 --residents 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import email
import email.policy
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
from _stack import (
    BOOTSTRAP,
    REPO,
    ServiceProcess,
    free_port,
    key_pair,
    log,
    percentile,
    report,
    scratch_database,
    signing_key,
    token,
)
from aiokafka import AIOKafkaProducer
from aiosmtpd.controller import Controller

from buurtkracht_contracts import Envelope
from buurtkracht_contracts import initiatives as i
from buurtkracht_contracts.kafka import to_kafka
from buurtkracht_contracts.topics import INITIATIVES_EVENTS, TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics

SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-initiatives"
AREA = "BU03630001"
SUBJECT = re.compile(r"^Een buur steunt '(?P<title>.+)'$")


class Mailbox:
    """Notes when each message arrived (perf_counter, in the SMTP server's thread) by its title and Message-ID."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.arrivals: dict[str, float] = {}  # title -> first arrival
        self.message_ids: Counter[str] = Counter()
        self.titles: Counter[str] = Counter()
        self.other = 0

    async def handle_DATA(self, server, session, envelope) -> str:
        now = time.perf_counter()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        match = SUBJECT.match(str(message["Subject"]))
        with self.lock:
            self.message_ids[str(message["Message-ID"])] += 1
            if match is None:
                self.other += 1
            else:
                self.titles[match["title"]] += 1
                self.arrivals.setdefault(match["title"], now)
        return "250 OK"


class NotificationsProcess(ServiceProcess):
    """`ServiceProcess` (log file, SIGTERM stop, cleanup) running `python -m notifications` instead."""

    async def start(self, timeout: float = 60.0) -> float:
        key_file = Path(self._dir.name) / "jwt-public.pem"
        key_file.write_text(self.public_pem)
        env = (
            os.environ
            | {
                "BK_DATABASE_URL": self.database_url,
                "BK_KAFKA_BOOTSTRAP_SERVERS": BOOTSTRAP,
                "BK_HTTP_PORT": str(self.port),
                "BK_JWT_PUBLIC_KEY_FILE": str(key_file),
                "BK_SERVICE_NAME": self.service_name,  # the consumer group
                "BK_LOG_LEVEL": "WARNING",
                "BK_DB_POOL_MAX_SIZE": str(self.pool_max_size),
                "BK_CONSUMER_START": "latest",  # a new group starts at the end instead of replaying the topic
            }
            | self.extra_env
        )
        started = time.perf_counter()
        with self.log_path.open("wb") as out:
            self._process = await asyncio.to_thread(
                subprocess.Popen,
                [sys.executable, "-m", "notifications"],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        async with httpx.AsyncClient(base_url=self.base_url, timeout=5.0) as client:
            while time.perf_counter() - started < timeout:
                if self._process.poll() is not None:
                    raise RuntimeError(f"the service exited with {self._process.returncode}:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    answer = await client.get("/readyz")
                    if answer.status_code == 200 and answer.json().get("consuming") is True:
                        return time.perf_counter() - started
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the service was not consuming within {timeout} s:\n{self.log_tail()}")


async def main(args: argparse.Namespace) -> tuple[str, dict[str, object]]:
    run = uuid.uuid4().hex[:8]
    private_pem, public_pem = key_pair()
    key = signing_key(private_pem)
    residents = [f"r-lat-{run}-{n}" for n in range(args.residents)]
    mailbox = Mailbox()
    smtp_port = free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    async with scratch_database("bench_notif") as url:
        service = NotificationsProcess(
            url,
            public_pem,
            pool_max_size=10,
            service_name=f"notifications-bench-{run}",
            extra_env={
                "BK_SMTP_HOST": "127.0.0.1",
                "BK_SMTP_PORT": str(smtp_port),
                "BK_DISPATCH_INTERVAL_SECONDS": str(args.dispatch_interval),
                "BK_DIGEST_CHECK_SECONDS": "3600",
            },
        )
        producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", linger_ms=0)
        try:
            await topics.ensure(
                {"bootstrap_servers": BOOTSTRAP},
                [*all_topics(), TopicSpec(dead_letter_topic(service.service_name), 1, 3_600_000)],
            )
            log(f"starting notifications (group {service.service_name}, SMTP on {smtp_port})")
            log(f"consuming after {await service.start():.1f} s")
            async with httpx.AsyncClient(base_url=service.base_url, timeout=10.0) as client:
                for n, resident in enumerate(residents):
                    answer = await client.put(
                        "/api/v1/contact-details/me",
                        json={"email": f"{resident}@example.nl", "language": "nl"},
                        headers={"Authorization": f"Bearer {token(key, resident, ['resident'], [AREA])}"},
                    )
                    if answer.status_code != 200:
                        raise SystemExit(f"registering {resident} failed: {answer.status_code} {answer.text}")
                    if n == 0:
                        log(f"registering {len(residents)} residents")
            await producer.start()
            count = round(args.rate * args.seconds)
            acked: dict[str, float] = {}  # title -> Kafka acknowledgement (perf_counter)
            event_ids: dict[str, uuid.UUID] = {}

            async def send(seq: int) -> None:
                title = f"lat-{run}-{seq:06d}"
                event = i.InitiativeSupported(
                    initiative_id=uuid.uuid4(),
                    area_code=AREA,
                    title=title,
                    initiators=[residents[seq % len(residents)]],
                    supporter_id=f"r-lat-{run}-supporter-{seq}",
                    support_count=1,
                )
                envelope = Envelope.wrap(event, SOURCE)
                record = to_kafka(envelope)
                await producer.send_and_wait(INITIATIVES_EVENTS, record.value, key=record.key, headers=record.headers)
                acked[title] = time.perf_counter()
                event_ids[title] = envelope.id

            log(f"publishing {count} events at {args.rate}/s")
            sends = []
            started = time.perf_counter()
            for seq in range(count):  # on a fixed schedule: a slow acknowledgement does not delay the next send
                delay = started + seq / args.rate - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                sends.append(asyncio.create_task(send(seq)))
            await asyncio.gather(*sends)
            published = time.perf_counter() - started
            deadline = time.perf_counter() + args.drain_timeout
            while time.perf_counter() < deadline:
                if len(mailbox.arrivals) >= count:
                    break
                await asyncio.sleep(0.1)
            await asyncio.sleep(max(1.0, 3 * args.dispatch_interval))  # a late duplicate would arrive by now
        finally:
            await producer.stop()
            code, _ = await service.stop()
            service.cleanup()
            smtp.stop()

    with mailbox.lock:
        arrivals = dict(mailbox.arrivals)
        titles = Counter(mailbox.titles)
        duplicate_ids = sum(n - 1 for n in mailbox.message_ids.values() if n > 1)
    ours = {title: at for title, at in arrivals.items() if title in acked}
    latencies = sorted((at - acked[title]) * 1000 for title, at in ours.items())
    duplicates = sum(titles[title] - 1 for title in acked if titles[title] > 1)
    strays = sum(n for title, n in titles.items() if title not in acked) + mailbox.other
    ms = [percentile(latencies, f) for f in (0.50, 0.95, 0.99, 1.0)]
    summary = (
        f"notification latency: {count / published:.1f} events/s for {published:.1f} s, {count} events; "
        f"Kafka ack -> SMTP accepted p50 {ms[0]:.0f} ms, p95 {ms[1]:.0f} ms, p99 {ms[2]:.0f} ms, "
        f"max {ms[3]:.0f} ms; emails received {len(ours)}/{count}, duplicates {duplicates} "
        f"(same Message-ID twice: {duplicate_ids}, unexpected: {strays}); "
        f"dispatch interval {args.dispatch_interval} s, {len(residents)} residents"
    )
    if not ServiceProcess.clean_exit(code):
        log(f"the service exited with {code}")
    ok = not (len(ours) != count or duplicates or duplicate_ids)
    if not ok:
        log(f"expected {count} emails, each once")
    return summary, {
        "events": count,
        "seconds": published,
        "events_per_s": count / published,
        "p50_ms": ms[0],
        "p95_ms": ms[1],
        "p99_ms": ms[2],
        "max_ms": ms[3],
        "emails_received": len(ours),
        "duplicates": duplicates,
        "duplicate_message_ids": duplicate_ids,
        "unexpected": strays,
        "dispatch_interval_seconds": args.dispatch_interval,
        "residents": len(residents),
        "ok": ok,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="events a second")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to publish")
    parser.add_argument("--residents", type=int, default=50, help="registered residents (the initiators)")
    parser.add_argument("--dispatch-interval", type=float, default=0.2, help="BK_DISPATCH_INTERVAL_SECONDS")
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="seconds to wait for the last emails")
    summary, figures = asyncio.run(main(parser.parse_args()))
    report(summary, figures)
    sys.exit(0 if figures["ok"] else 1)
