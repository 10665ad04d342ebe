"""The whole system for the tiers that run it as a person would: every service, each as its own process on a
database of its own on the real stack, the local identity provider the portal signs people in at, a real SMTP
server and an integration's webhook endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import email
import email.policy
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import uuid
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiosmtpd.controller import Controller
from fastapi import FastAPI, Request, Response
from initiatives.entrypoints.events import HANDLERS as INITIATIVES_HANDLERS
from notifications.entrypoints.events import HANDLERS as NOTIFICATIONS_HANDLERS
from portal.entrypoints.events import HANDLERS as PORTAL_HANDLERS
from vouchers.entrypoints.events import HANDLERS as VOUCHERS_HANDLERS

from buurtkracht_contracts.topics import TopicSpec, all_topics, dead_letter_topic
from buurtkracht_kit import topics

from .keys import PRIVATE, PUBLIC
from .stack import PG_ADMIN_URL, database_url

ROOT = Path(__file__).parents[1]
SERVICES = ("initiatives", "vouchers", "notifications", "portal")
PORTAL_CLIENT_SECRET = "portal-local-secret"  # the portal's registration at the local identity provider
HANDLED = {
    "initiatives": {model.event_type for model in INITIATIVES_HANDLERS},
    "vouchers": {model.event_type for model in VOUCHERS_HANDLERS},
    "notifications": {model.event_type for model in NOTIFICATIONS_HANDLERS},
    "portal": {model.event_type for model in PORTAL_HANDLERS},
}
CONSUMED = {  # the topics each service's consumer group reads
    "initiatives": sorted({model.topic for model in INITIATIVES_HANDLERS}),
    "vouchers": sorted({model.topic for model in VOUCHERS_HANDLERS}),
    "notifications": sorted({model.topic for model in NOTIFICATIONS_HANDLERS}),
    "portal": sorted({model.topic for model in PORTAL_HANDLERS}),
}
spec = importlib.util.spec_from_file_location("journey", ROOT / "deploy" / "local" / "journey.py")
journey_module = importlib.util.module_from_spec(spec)
sys.modules["journey"] = journey_module
spec.loader.exec_module(journey_module)
Journey, Endpoints, Refused = journey_module.Journey, journey_module.Endpoints, journey_module.Refused


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Mailbox:
    """A real SMTP server's mailbox; while `down`, it refuses every message as a server that is out of service."""

    def __init__(self) -> None:
        self.messages: list = []
        self.down = False

    async def handle_DATA(self, server, session, envelope) -> str:
        if self.down:
            return "421 4.3.0 Service not available"
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


class WebhookEndpoint:
    """An integration's HTTPS endpoint stand-in: a real HTTP server that keeps what it receives; while `down`, it
    answers 503 to everything."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.down = False
        self.port = free_port()
        app = FastAPI()

        @app.post("/hooks")
        async def receive(request: Request) -> Response:
            if self.down:
                return Response(status_code=503)
            self.received.append((dict(request.headers), await request.body()))
            return Response(status_code=204)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"


@dataclass
class Observability:
    """The local Jaeger and Prometheus (deploy/local/observability.sh) of one running system, on ports of their own,
    Prometheus scraping the system's services every second and evaluating the project's alert rules as often."""

    jaeger_port: int
    otlp_port: int
    prometheus_port: int
    environment: dict[str, str]

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def jaeger_url(self) -> str:
        return f"http://127.0.0.1:{self.jaeger_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @classmethod
    def on_free_ports(cls, local_dir: Path, targets: dict[str, int]) -> Observability:
        while True:  # Jaeger takes its port and the three after it (see the script)
            jaeger = free_port()
            if all(_port_free(jaeger + n) for n in (1, 2, 3)):
                break
        prometheus = free_port()
        environment = os.environ | {
            "LOCAL_DIR": str(local_dir),
            "JAEGER_PORT": str(jaeger),
            "JAEGER_OTLP_PORT": str(jaeger + 1),
            "PROMETHEUS_PORT": str(prometheus),
            "PROMETHEUS_INTERVAL": "1s",
            "PROMETHEUS_TARGETS": " ".join(f"{service}=127.0.0.1:{port}" for service, port in targets.items()),
        }
        return cls(jaeger, jaeger + 1, prometheus, environment)

    def run(self, command: str) -> None:
        subprocess.run([str(ROOT / "deploy" / "local" / "observability.sh"), command], env=self.environment, check=True)


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class RestartedOnItsWay(UserWarning):
    """A service process exited before it was ready and was started again."""


@dataclass
class System:
    journey: Any
    mailbox: Mailbox
    hooks: WebhookEndpoint
    processes: dict[str, asyncio.subprocess.Process]
    logs: Path
    ports: dict[str, int] = field(default_factory=dict)
    environments: dict[str, dict[str, str]] = field(default_factory=dict)
    databases: dict[str, str] = field(default_factory=dict)
    idp: asyncio.subprocess.Process | None = None  # the local identity provider (not one of the services)
    idp_port: int = 0
    observability: Observability | None = None  # Jaeger and Prometheus, when the system was started with them

    def url(self, instance: str) -> str:
        return f"http://127.0.0.1:{self.ports[instance]}"

    @property
    def idp_url(self) -> str:
        """The identity provider's issuer: people sign in there (deploy/local/people.toml) to use the portal."""
        return f"http://127.0.0.1:{self.idp_port}"

    async def start_idp(self, private_key: Path, environment: dict[str, str], timeout: float = 60.0) -> None:
        """`deploy/local/idp.py` on a port of its own, signing with the system's key and the services' issuer
        and audience (from `environment`), the portal registered at its own port; until it answers discovery."""
        self.idp_port = free_port()
        portal = self.url("portal")
        with (self.logs / "idp.log").open("ab") as out:
            self.idp = await asyncio.create_subprocess_exec(
                sys.executable,
                "deploy/local/idp.py",
                "serve",
                f"--port={self.idp_port}",
                f"--private-key={private_key}",
                f"--client-secret={PORTAL_CLIENT_SECRET}",
                f"--redirect-uri={portal}/auth/callback",
                f"--post-logout-redirect-uri={portal}/",
                env=environment,
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )

        async def answers():
            if self.idp.returncode is not None:
                raise RuntimeError(f"the identity provider exited ({self.idp.returncode}); see {self.logs}/idp.log")
            try:
                async with httpx.AsyncClient() as http:
                    return (await http.get(f"{self.idp_url}/.well-known/openid-configuration")).status_code == 200
            except httpx.TransportError:
                return False

        deadline = asyncio.get_running_loop().time() + timeout
        while not await answers():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"waited {timeout:.0f}s for the identity provider")
            await asyncio.sleep(0.1)

    async def start(self, instance: str) -> None:
        """`python -m <service>` with the service's environment; its output is appended to its log. An instance
        named `<service>#N` is one more replica of the service: the same database and consumer group, a port of
        its own."""
        service = instance.partition("#")[0]
        environment = self.environments[service]
        if instance != service:
            environment = environment | {"BK_HTTP_PORT": str(self.ports.setdefault(instance, free_port()))}
        with (self.logs / f"{service}.log").open("ab") as out:
            self.processes[instance] = await asyncio.create_subprocess_exec(
                sys.executable, "-m", service, env=environment, cwd=ROOT, stdout=out, stderr=out
            )

    async def kill(self, instance: str) -> None:
        """SIGKILL: the process dies wherever it was, as on a node that is lost."""
        process = self.processes[instance]
        if process.returncode is None:
            process.kill()
        await process.wait()

    async def stop(self, instance: str, grace: float = 60.0) -> None:
        """SIGTERM, as Kubernetes scales a replica down, and forgets the instance once it exited."""
        process = self.processes[instance]
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            await self.kill(instance)
        self.forget(instance)

    def forget(self, instance: str) -> None:
        """An extra replica that exited is no longer part of the system (the service's first one always is)."""
        if instance != instance.partition("#")[0]:
            del self.processes[instance], self.ports[instance]

    def pause(self, instance: str) -> None:
        """SIGSTOP: the process holds its connections and answers nothing, as in a long stall."""
        self.processes[instance].send_signal(signal.SIGSTOP)

    def resume(self, instance: str) -> None:
        self.processes[instance].send_signal(signal.SIGCONT)

    async def ready(self, instance: str, timeout: float = 60.0) -> None:
        """Until the instance answers its readiness probe and its consumer holds its partitions. A TimeoutError
        says what the probe last answered, whether the process still runs and the end of its log."""
        last: list[str] = ["no answer"]

        async def consuming():
            try:
                answer = await self.journey.http.get(f"{self.url(instance)}/readyz")
            except httpx.TransportError as error:
                last[0] = f"no answer ({type(error).__name__})"
                return False
            last[0] = f"{answer.status_code} {answer.text}"
            return answer.status_code == 200 and answer.json().get("consuming")

        try:
            await self.journey.until(f"{instance} to consume", consuming, timeout)
        except TimeoutError as error:
            raise TimeoutError(f"{error}; {self.account(instance, last[0])}") from None

    def account(self, instance: str, probe: str, lines: int = 40) -> str:
        """What a test that gave up on the instance reports: its exit code, its probe's last answer, its log's end."""
        returncode = self.processes[instance].returncode
        log = self.logs / f"{instance.partition('#')[0]}.log"
        tail = log.read_text(errors="replace").splitlines()[-lines:] if log.exists() else []
        running = "running" if returncode is None else f"exited with {returncode}"
        return f"{instance} {running}, /readyz last answered: {probe}; {log} ends:\n" + "\n".join(tail)

    async def start_until_ready(self, instance: str, timeout: float = 180.0) -> int:
        """Start the instance and wait until it consumes (`until_ready`). The number of starts it took."""
        await self.start(instance)
        return await self.until_ready(instance, timeout)

    async def until_ready(self, instance: str, timeout: float = 180.0, unexpected_exits: bool = False) -> int:
        """Wait until the started instance consumes; a process that exits on the way (its database or broker down
        at its start) is started again after a pause, as Kubernetes restarts a crashed container. The number of
        starts it took. With `unexpected_exits` each restart is a warning in the run's summary, so that a restart
        nothing caused is seen, not only survived."""
        deadline = asyncio.get_running_loop().time() + timeout
        starts = 1
        while True:
            process = self.processes[instance]
            waiting = asyncio.create_task(self.ready(instance, max(1.0, deadline - asyncio.get_running_loop().time())))
            exited = asyncio.create_task(process.wait())
            await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
            if waiting.done():
                exited.cancel()
                waiting.result()
                return starts
            waiting.cancel()
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(
                    f"{instance} exited {starts} times on its way to ready; {self.account(instance, '-')}"
                )
            if unexpected_exits:
                warnings.warn(f"restarting {self.account(instance, '-', lines=15)}", RestartedOnItsWay, stacklevel=1)
            await asyncio.sleep(min(2.0 * starts, 10.0))
            await self.start(instance)
            starts += 1


async def start_at_the_end(bootstrap: str, groups: dict[str, list[str]]) -> None:
    """Commit, for each new consumer group, the end of every partition of its topics, so its consumers start
    there with `consumer_start=earliest`, as in production, without reading what earlier runs left on the shared
    topics. (With `latest` instead, a consumer restarted before its group committed a partition would start that
    partition at its end and skip what came meanwhile.)"""
    servers = bootstrap.split(",")
    every = sorted({topic for topics in groups.values() for topic in topics})
    reader = AIOKafkaConsumer(*every, bootstrap_servers=servers, enable_auto_commit=False)
    await reader.start()  # without a group: the metadata of every partition of `every`
    try:
        for group, topics in groups.items():
            partitions = [TopicPartition(t, p) for t in topics for p in sorted(reader.partitions_for_topic(t) or ())]
            ends = await reader.end_offsets(partitions)
            committer = AIOKafkaConsumer(bootstrap_servers=servers, group_id=group, enable_auto_commit=False)
            await committer.start()
            try:
                committer.assign(partitions)
                await committer.commit(ends)
            finally:
                await committer.stop()
    finally:
        await reader.stop()


@contextlib.asynccontextmanager
async def running_system(
    kafka_bootstrap: str,
    tmp_path_factory: Any,
    tier: str,
    settings: dict[str, str] | None = None,
    databases_given: dict[str, str] | None = None,
    service_settings: dict[str, dict[str, str]] | None = None,
    observability: bool = False,
) -> AsyncIterator[System]:
    """The service processes on databases of their own (named after `tier`), a real SMTP server and a webhook
    endpoint; stopped with SIGTERM and their databases dropped afterwards. `settings` (BK_* variables) go to every
    service. A service named in `databases_given` uses the database at that URL instead (on a PostgreSQL of the
    caller's, neither made nor dropped here); `service_settings` adds settings for one service. The local identity
    provider runs beside them (`System.idp_url`), and the portal signs people in there and calls the services with
    their access tokens. With `observability`, a Jaeger the services send their traces to and a Prometheus that
    scrapes them run beside them too (`System.observability`)."""
    run = uuid.uuid4().hex[:6]
    groups = [f"{service}-{tier}-{run}" for service in SERVICES]
    # the services' dead-letter topics too: a stray record on the shared topics is parked there
    await topics.ensure(
        {"bootstrap_servers": kafka_bootstrap.split(",")},
        [*all_topics(), *(TopicSpec(dead_letter_topic(g), 1) for g in groups)],
    )
    await start_at_the_end(kafka_bootstrap, {g: CONSUMED[s] for s, g in zip(SERVICES, groups, strict=True)})
    keys = tmp_path_factory.mktemp("keys")
    (keys / "public.pem").write_text(PUBLIC)
    (keys / "private.pem").write_text(PRIVATE)
    admin = await asyncpg.connect(PG_ADMIN_URL)
    mailbox, smtp_port = Mailbox(), free_port()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=smtp_port)
    smtp.start()
    hooks = WebhookEndpoint()
    hooks_task = asyncio.create_task(hooks.server.serve())
    logs = tmp_path_factory.mktemp("logs")
    system = System(None, mailbox, hooks, {}, logs)
    processes, ports, databases = system.processes, system.ports, []
    ports.update({service: free_port() for service in SERVICES})
    if observability:
        system.observability = Observability.on_free_ports(tmp_path_factory.mktemp("observability"), ports)
        settings = {"BK_OTLP_ENDPOINT": system.observability.otlp_endpoint, "BK_TRACE_SQL": "true"} | (settings or {})
    try:
        if system.observability is not None:
            await asyncio.to_thread(system.observability.run, "up")
        await system.start_idp(
            keys / "private.pem", os.environ | (settings or {}) | {"BK_JWT_PRIVATE_KEY_FILE": str(keys / "private.pem")}
        )
        portal = {  # signs people in at the identity provider, calls the services as them
            "BK_PUBLIC_URL": system.url("portal"),
            "BK_OIDC_ISSUER": system.idp_url,
            "BK_OIDC_CLIENT_ID": "portal",
            "BK_OIDC_CLIENT_SECRET": PORTAL_CLIENT_SECRET,
            "BK_SESSION_SECRET": f"session-secret-{run}",
            "BK_COOKIE_SECURE": "false",
            "BK_INITIATIVES_URL": system.url("initiatives"),
            "BK_VOUCHERS_URL": system.url("vouchers"),
            "BK_NOTIFICATIONS_URL": system.url("notifications"),
        }
        for service in SERVICES:
            if databases_given and service in databases_given:
                system.databases[service] = databases_given[service]
            else:
                name = f"{tier}_{service}_{run}"
                await admin.execute(f'CREATE DATABASE "{name}"')
                databases.append(name)
                system.databases[service] = database_url(name)
            system.environments[service] = os.environ | {
                "BK_SERVICE_NAME": f"{service}-{tier}-{run}",
                "BK_DATABASE_URL": system.databases[service],
                "BK_KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
                "BK_HTTP_PORT": str(ports[service]),
                "BK_JWT_PUBLIC_KEY_FILE": str(keys / "public.pem"),
                "BK_CONSUMER_START": "earliest",  # from the offsets `start_at_the_end` committed
                "BK_RELAY_POLL_INTERVAL_SECONDS": "0.2",
                "BK_SUPPORT_THRESHOLD": "3",
                "BK_SMTP_PORT": str(smtp_port),
                "BK_DISPATCH_INTERVAL_SECONDS": "0.3",
                "BK_WEBHOOK_DISPATCH_INTERVAL_SECONDS": "0.3",
                "BK_WEBHOOK_ALLOW_PRIVATE_ADDRESSES": "true",  # the integration's endpoint is on 127.0.0.1
                "BK_LOG_LEVEL": "WARNING",
                **(portal if service == "portal" else {}),
                # the e-mails link to this system's portal
                **({"BK_PUBLIC_BASE_URL": system.url("portal")} if service == "notifications" else {}),
                **(settings or {}),
                **(service_settings or {}).get(service, {}),
            }
            await system.start(service)
        endpoints = Endpoints(
            **{s: f"http://127.0.0.1:{p}" for s, p in ports.items()},
            kafka=kafka_bootstrap,
            private_key=keys / "private.pem",
        )
        system.journey = journey = Journey(endpoints, say=lambda line: None, run=run)
        for service in SERVICES:  # a service that exits on its way (a slow broker at its start) is started again
            await system.until_ready(service, unexpected_exits=True)
        await journey.register_areas()  # the municipality's areas (the committed CBS sample) before anything else
        yield system
        await journey.close()
    finally:
        for process in processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in processes.values():
            await asyncio.wait_for(process.wait(), 60)
        if system.idp is not None and system.idp.returncode is None:
            system.idp.terminate()
            await asyncio.wait_for(system.idp.wait(), 60)
        if system.observability is not None:
            await asyncio.to_thread(system.observability.run, "down")
        hooks.server.should_exit = True
        await hooks_task
        smtp.stop()
        await admin.close()
        admin = await asyncpg.connect(PG_ADMIN_URL)  # afresh: a fault may have restarted PostgreSQL meanwhile
        for name in databases:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
