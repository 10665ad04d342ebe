"""A webhook delivery connects to the very address its host name was checked at: a host whose DNS answer
changes between the check and the connection (rebinding) never reaches a loopback or internal address. Real
HTTP and HTTPS servers on 127.0.0.1 and 127.0.0.2 and real PostgreSQL; only the resolver answers for a made-up
host name, and 127.0.0.2 stands for a public internet address (127.0.0.1 for an internal system)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from notifications.adapters import webhooks as store
from notifications.adapters.unit_of_work import NotificationsUnitOfWork
from notifications.domain import webhooks as rules
from notifications.service import webhooks
from notifications.settings import NotificationsSettings
from prometheus_client import CollectorRegistry

from buurtkracht_contracts import Envelope
from buurtkracht_kit import migrations
from buurtkracht_kit.db import create_pool

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"
SOURCE = "urn:nld:oin:00000000000000000000:systeem:buurtkracht-vouchers"
HOST = "hooks.example"
CHECKED = "127.0.0.2"  # stands for a public internet address
INTERNAL = "127.0.0.1"  # stands for an internal system (a metadata service, an admin port)


# --- real endpoints -------------------------------------------------------------------------------------------


@dataclass
class Endpoint:
    """An HTTP(S) server on one address that records every request reaching it (request line and headers) and
    the TLS server name the client asked for, and answers `status` (with `location`, if set)."""

    address: str
    tls: ssl.SSLContext | None = None
    status: int = 204
    location: str | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    server_names: list[str | None] = field(default_factory=list)
    port: int = 0
    server: asyncio.Server | None = None

    async def start(self, port: int) -> None:
        if self.tls is not None:
            self.tls.sni_callback = lambda _socket, name, _context: self.server_names.append(name)
        self.server = await asyncio.start_server(self._serve, self.address, port, ssl=self.tls)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.server.wait_closed(), 2)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = {name.strip().lower(): value.strip() for name, value in (h.split(":", 1) for h in head[1:] if h)}
            await reader.readexactly(int(headers.get("content-length", "0")))
            self.requests.append({"request-line": head[0], **headers})
            location = f"location: {self.location}\r\n" if self.location else ""
            writer.write(
                f"HTTP/1.1 {self.status} Answer\r\ncontent-length: 0\r\nconnection: close\r\n{location}\r\n".encode()
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def endpoints(checked_tls: ssl.SSLContext | None = None) -> AsyncIterator[tuple[Endpoint, Endpoint]]:
    """An endpoint on the checked address and one on the internal address, on the same port."""
    internal, checked = Endpoint(INTERNAL), Endpoint(CHECKED, tls=checked_tls)
    await internal.start(0)
    try:
        await checked.start(internal.port)
        try:
            yield checked, internal
        finally:
            await checked.stop()
    finally:
        await internal.stop()


@pytest.fixture
def dns(monkeypatch) -> list[list[str]]:
    """`HOST` resolves to the first answer in the list the first time, to the next one the next time, and to
    the last one ever after; 127.0.0.2 counts as a public internet address. Other names resolve as usual."""
    answers: list[list[str]] = []
    resolve = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        if host not in (HOST, HOST.encode()):
            return resolve(host, port, family, type, proto, flags)
        addresses = answers.pop(0) if len(answers) > 1 else answers[0]
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0), 0, 0))
            if ":" in address
            else (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, int(port or 0)))
            for address in addresses
        ]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(store, "is_public", lambda address: address == CHECKED or rules.is_public(address))
    return answers


# --- the dispatcher on a real database ------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pool(scratch_database):
    await asyncio.to_thread(migrations.apply, scratch_database, MIGRATIONS)
    pool = await create_pool(scratch_database)
    yield pool
    await pool.close()


@pytest.fixture
async def db(pool):
    await pool.execute("TRUNCATE webhook_subscriptions, webhook_deliveries, outbox, notifications")
    return pool


def settings_for(database: str, *, allow_private_addresses: bool) -> NotificationsSettings:
    return NotificationsSettings(
        database_url=database,
        webhook_timeout_seconds=2.0,
        webhook_allow_private_addresses=allow_private_addresses,
    )


async def deliver(pool, url: str, *, events: int = 1, allow_private_addresses: bool = False) -> list[dict]:
    """Subscribe `url`, queue `events` events for it, let a dispatcher send them once; the delivery rows
    afterwards, in the order the events were queued."""
    settings = settings_for("postgresql://unused", allow_private_addresses=allow_private_addresses)
    async with NotificationsUnitOfWork(pool, SOURCE) as uow:
        await uow.webhooks.add_subscription(
            subscription_id=uuid.uuid4(),
            url=url,
            secret=rules.new_secret(),
            event_types=[],
            description="pinning",
            created_by="admin-1",
        )
        queued = [
            Envelope(source=SOURCE, type="nl.buurtkracht.vouchers.pledge-made.v1", subject="x", data={"n": n})
            for n in range(events)
        ]
        for event in queued:
            assert await webhooks.enqueue(uow, event) == 1
        await uow.commit()
    sender = webhooks.Dispatcher(
        lambda: NotificationsUnitOfWork(pool, SOURCE),
        settings,
        webhooks.metrics_in(CollectorRegistry()),
        retry_delay=lambda attempts: 60.0,
    )
    try:
        assert await sender.dispatch_once() == events
    finally:
        await sender.close()
    rows = {
        row["event_id"]: dict(row)
        for row in await pool.fetch(
            "SELECT event_id, status, attempts, last_status_code, last_error FROM webhook_deliveries"
        )
    }
    return [rows[event.id] for event in queued]


@pytest.mark.integration
async def test_a_host_that_rebinds_to_loopback_after_the_check_is_reached_only_at_the_checked_address(db, dns):
    dns.extend([[CHECKED], [INTERNAL]])  # the check sees a public address; a second lookup would see loopback
    async with endpoints() as (checked, internal):
        (delivery,) = await deliver(db, f"http://{HOST}:{checked.port}/hooks")
    assert internal.requests == []
    assert [request["host"] for request in checked.requests] == [f"{HOST}:{checked.port}"]
    assert delivery["status"] == "delivered" and delivery["last_status_code"] == 204


@pytest.mark.integration
async def test_a_host_resolving_to_any_non_public_address_is_not_contacted_at_all(db, dns):
    dns.append([CHECKED, "::ffff:127.0.0.1"])
    async with endpoints() as (checked, internal):
        (delivery,) = await deliver(db, f"http://{HOST}:{checked.port}/hooks")
    assert checked.requests == internal.requests == []
    assert delivery["status"] == "pending" and delivery["attempts"] == 1
    assert delivery["last_error"] == f"refused: {HOST} resolves to ::ffff:127.0.0.1, not a public internet address"


@pytest.mark.integration
async def test_a_delivery_to_a_public_host_still_arrives_with_the_host_name(db, dns):
    dns.append([CHECKED])
    async with endpoints() as (checked, internal):
        sent = await deliver(db, f"http://{HOST}:{checked.port}/hooks?x=1", events=3)
    assert [delivery["status"] for delivery in sent] == ["delivered"] * 3 and internal.requests == []
    assert [(r["request-line"], r["host"]) for r in checked.requests] == [
        ("POST /hooks?x=1 HTTP/1.1", f"{HOST}:{checked.port}")
    ] * 3


@pytest.mark.integration
async def test_with_private_addresses_allowed_the_first_address_that_answers_is_used(db, dns):
    """A local setup: any address may be reached, and a host resolving to several is tried address by address."""
    dns.append([CHECKED, INTERNAL])
    internal = Endpoint(INTERNAL)  # nothing listens on the checked address: its connection is refused
    await internal.start(0)
    try:
        (delivery,) = await deliver(db, f"http://{HOST}:{internal.port}/hooks", allow_private_addresses=True)
    finally:
        await internal.stop()
    assert delivery["status"] == "delivered"
    assert [request["host"] for request in internal.requests] == [f"{HOST}:{internal.port}"]


# --- HTTPS and redirects, on the delivery client ----------------------------------------------------------------


@dataclass(frozen=True)
class Authority:
    """A certificate authority of this test and the client context that trusts it."""

    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate

    @classmethod
    def new(cls) -> Authority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Pinning test CA")])
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.certificate.public_bytes(serialization.Encoding.PEM).decode())

    def server_context(self, host_name: str, directory: Path) -> ssl.SSLContext:
        """A server context with a certificate for `host_name` signed by this authority."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host_name)]))
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host_name)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.OID_SERVER_AUTH]), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        chain, secret = directory / f"{host_name}.pem", directory / f"{host_name}.key"
        chain.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
        secret.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(chain, secret)
        return context


def delivery_client(verify: ssl.SSLContext | bool = True) -> httpx.AsyncClient:
    return store.client(public_only=True, timeout=2.0, connections=2, user_agent="pinning-test", verify=verify)


async def post(client: httpx.AsyncClient, url: str) -> store.Answer:
    return await store.post(client, url, {"content-type": "application/json"}, "{}", 2.0)


@pytest.mark.integration
async def test_https_is_pinned_and_verifies_the_certificate_for_the_host_name(dns, tmp_path):
    authority = Authority.new()
    dns.extend([[CHECKED], [INTERNAL]])
    async with endpoints(authority.server_context(HOST, tmp_path)) as (checked, internal):
        async with delivery_client(authority.client_context()) as client:
            answer = await post(client, f"https://{HOST}:{checked.port}/hooks")
    assert answer == store.Answer(204, None)
    assert checked.server_names == [HOST]  # SNI names the host, not the address connected to
    assert [request["host"] for request in checked.requests] == [f"{HOST}:{checked.port}"]
    assert internal.requests == []


@pytest.mark.integration
async def test_https_to_an_endpoint_with_a_certificate_for_another_name_is_refused(dns, tmp_path):
    authority = Authority.new()
    dns.append([CHECKED])
    async with endpoints(authority.server_context("other.example", tmp_path)) as (checked, _):
        async with delivery_client(authority.client_context()) as client:
            answer = await post(client, f"https://{HOST}:{checked.port}/hooks")
    assert answer.status_code is None and "CERTIFICATE_VERIFY_FAILED" in (answer.error or "")
    assert checked.requests == []


@pytest.mark.integration
async def test_a_redirect_is_not_followed(dns):
    dns.append([CHECKED])
    async with endpoints() as (checked, internal):
        checked.status, checked.location = 307, f"http://{INTERNAL}:{internal.port}/internal"
        async with delivery_client() as client:
            answer = await post(client, f"http://{HOST}:{checked.port}/hooks")
    assert answer.status_code == 307 and len(checked.requests) == 1
    assert internal.requests == []


# --- the rule ---------------------------------------------------------------------------------------------------


@pytest.mark.unit
@pytest.mark.parametrize(
    ("address", "public"),
    [
        ("::7f00:1", False),  # IPv4-compatible 127.0.0.1
        ("::a9fe:a9fe", False),  # IPv4-compatible 169.254.169.254
        ("::ffff:169.254.169.254", False),
        ("64:ff9b::7f00:1", False),  # NAT64 of 127.0.0.1
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 of 169.254.169.254
        ("64:ff9b::5db8:d822", True),  # NAT64 of 93.184.216.34
        ("2002:7f00:1::1", False),  # 6to4 of 127.0.0.1
        ("2002:a00:1::1", False),  # 6to4 of 10.0.0.1
        ("2002:5db8:d822::1", True),  # 6to4 of 93.184.216.34
        ("fec0::1", False),  # site-local
        ("192.0.0.8", False),  # IETF protocol assignments
        ("192.88.99.1", False),  # 6to4 relay anycast
        ("ff0e::1", False),
        ("224.0.1.1", False),
        ("5f00::1", False),  # reserved
        ("2606:2800:220:1::1", True),
    ],
)
def test_addresses_embedding_or_reserved_beyond_the_public_internet_are_not_public(address, public):
    assert rules.is_public(address) is public
