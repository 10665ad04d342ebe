"""`buurtkracht`: the operator's command line (tokens for local use, signing keys, topics, migrations).

Each command imports what it needs when it runs, so that a quick one (a token) starts quickly.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer

from .settings import KitSettings
from .tokens import Role, mint

app = typer.Typer(no_args_is_help=True, help="Buurtkracht operations.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
app.add_typer(topics_app, name="topics")
dlq_app = typer.Typer(no_args_is_help=True, help="Dead-letter topics: list and replay parked messages.")
app.add_typer(dlq_app, name="dlq")

DEFAULT_KEY_DIR = Path(os.environ.get("BK_LOCAL_DIR", ".local")) / "keys"
_RELAY_DEFAULTS = {
    name: KitSettings.model_fields[name].default for name in ("relay_batch_size", "relay_poll_interval_seconds")
}


def _kafka(bootstrap: str) -> dict[str, object]:
    """Client options for `bootstrap`, with the security protocol, SASL login and CA of the environment
    (`BK_KAFKA_*`, as a service reads them), so every command also works against a TLS/SCRAM listener."""
    from .settings import KafkaSettings

    return KafkaSettings(kafka_bootstrap_servers=bootstrap).kafka_client_options()


@app.command("keys")
def keys(directory: Annotated[Path, typer.Option(help="where the key pair is written")] = DEFAULT_KEY_DIR) -> None:
    """Create the local token-signing key pair (RS256), unless it exists."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private, public = directory / "jwt-private.pem", directory / "jwt-public.pem"
    if private.exists() and public.exists():
        typer.echo(f"keys exist: {public}")
        return
    directory.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    typer.echo(f"keys written: {public}")


@app.command("token")
def token(
    sub: Annotated[str, typer.Option(help="pseudonymous subject id, e.g. r-123")],
    role: Annotated[list[Role], typer.Option(help="role; repeat for several")],
    area: Annotated[list[str], typer.Option(help="CBS area code; repeat for several")] = [],  # noqa: B006
    ttl: Annotated[int, typer.Option(help="lifetime in seconds")] = 8 * 3600,
    private_key: Annotated[Path, typer.Option(envvar="BK_JWT_PRIVATE_KEY_FILE")] = DEFAULT_KEY_DIR / "jwt-private.pem",
    issuer: Annotated[str, typer.Option(envvar="BK_JWT_ISSUER")] = "https://login.buurtkracht.local",
    audience: Annotated[str, typer.Option(envvar="BK_JWT_AUDIENCE")] = "buurtkracht",
) -> None:
    """Mint a bearer token as the identity provider would (local stack only)."""
    if not private_key.exists():
        raise typer.BadParameter(
            f"{private_key} does not exist; run `buurtkracht keys` first", param_hint="--private-key"
        )
    typer.echo(
        mint(
            private_key.read_text(),
            issuer=issuer,
            audience=audience,
            subject=sub,
            roles=[r.value for r in role],
            areas=area,
            ttl_seconds=ttl,
        )
    )


@topics_app.command("ensure")
def topics_ensure(
    bootstrap: Annotated[str, typer.Option(envvar="BK_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:19092",
    partitions: Annotated[int, typer.Option(envvar="BK_TOPIC_PARTITIONS")] = 6,
    replication_factor: Annotated[
        int | None,
        typer.Option(envvar="BK_TOPIC_REPLICATION_FACTOR", help="default: min(3, brokers in the cluster)"),
    ] = None,
) -> None:
    """Create every event and dead-letter topic that does not exist yet."""
    from buurtkracht_contracts.topics import all_topics

    from . import topics as kafka_topics

    created = asyncio.run(kafka_topics.ensure(_kafka(bootstrap), all_topics(partitions), replication_factor))
    typer.echo(f"topics created: {', '.join(created)}" if created else "topics: all present")


@app.command("migrate")
def migrate(
    service: Annotated[str, typer.Argument(help="initiatives, vouchers, notifications or portal")],
    database_url: Annotated[str, typer.Option(envvar="BK_DATABASE_URL")],
) -> None:
    """Apply the kit's and the service's pending migrations to the service's database."""
    from . import migrations

    spec = importlib.import_module(f"{service}.app").SPEC
    applied = migrations.apply(database_url, spec.migrations)
    typer.echo(f"{service}: applied {', '.join(applied)}" if applied else f"{service}: up to date")


@app.command("after-restore")
def after_restore(
    service: Annotated[str, typer.Argument(help="initiatives, vouchers or notifications")],
    restored_to: Annotated[
        datetime, typer.Option(help="the point in time the database was restored to (ISO 8601, with its offset)")
    ],
    database_url: Annotated[str, typer.Option(envvar="BK_DATABASE_URL")],
    bootstrap: Annotated[str, typer.Option(envvar="BK_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:19092",
    group: Annotated[
        str | None, typer.Option(envvar="BK_SERVICE_NAME", help="the service's consumer group (its name)")
    ] = None,
) -> None:
    """After a point-in-time restore of a service's database, before the service starts on it: rewind its consumer
    group to the restore point and move its outbox's sequence past what Kafka holds (see restore.py)."""
    import json

    from . import restore

    if restored_to.tzinfo is None:
        raise typer.BadParameter("give the time with its UTC offset, e.g. 2026-11-30T21:15:00+00:00")
    spec = importlib.import_module(f"{service}.app").SPEC
    resumed = asyncio.run(
        restore.resume(
            database_url,
            _kafka(bootstrap),
            group or spec.name,
            list(spec.subscribed_topics),
            sorted({event.topic for event in spec.publishes}),
            restored_to,
        )
    )
    typer.echo(json.dumps(resumed.__dict__))


@app.command("docs")
def docs(
    service: Annotated[str, typer.Argument(help="initiatives, vouchers or notifications")],
    out: Annotated[Path, typer.Option(help="folder for openapi.json and asyncapi.json")],
) -> None:
    """Write a service's OpenAPI and AsyncAPI documents (generated from its routes and contract models)."""
    import json
    from unittest import mock

    # The documents describe the service, not this machine: the same settings wherever they are made
    # (and the caller's environment is left as it was).
    placeholders = {"BK_DATABASE_URL": "postgresql://docs@localhost/docs", "BK_KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}
    environment = {name: value for name, value in os.environ.items() if name != "BK_SERVICE_NAME"} | placeholders
    with mock.patch.dict(os.environ, environment, clear=True):
        built = importlib.import_module(f"{service}.app").create()
    out.mkdir(parents=True, exist_ok=True)
    for name, document in (("openapi.json", built.app.openapi()), ("asyncapi.json", built.asyncapi())):
        (out / name).write_text(json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
        typer.echo(out / name)


@app.command("relay")
def relay(
    database_url: Annotated[str, typer.Option(envvar="BK_DATABASE_URL")],
    bootstrap: Annotated[str, typer.Option(envvar="BK_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:19092",
    batch_size: Annotated[int, typer.Option(envvar="BK_RELAY_BATCH_SIZE")] = _RELAY_DEFAULTS["relay_batch_size"],
    poll_interval: Annotated[
        float, typer.Option(envvar="BK_RELAY_POLL_INTERVAL_SECONDS", help="seconds between probes of the outbox")
    ] = _RELAY_DEFAULTS["relay_poll_interval_seconds"],
    once: Annotated[bool, typer.Option(help="drain what is committed now, then exit")] = False,
) -> None:
    """Publish a database's outbox to Kafka until stopped (SIGTERM/SIGINT), or once with --once."""
    import uvloop

    uvloop.run(_relay(database_url, bootstrap, batch_size, poll_interval, once))


async def _relay(database_url: str, bootstrap: str, batch_size: int, poll_interval: float, once: bool) -> None:
    import signal

    from . import logs
    from .db import create_pool
    from .metrics import ServiceMetrics
    from .outbox import OutboxRelay, kafka_producer

    logs.configure("outbox-relay", os.environ.get("BK_LOG_LEVEL", "INFO"), os.environ.get("BK_LOG_FORMAT", "json"))
    pool = await create_pool(database_url, 1, 3)
    client_options = _kafka(bootstrap)
    outbox_relay = OutboxRelay(
        pool,
        lambda: kafka_producer(client_options),
        ServiceMetrics("outbox-relay"),
        batch_size=batch_size,
        poll_interval=poll_interval,
    )
    try:
        if once:
            typer.echo(f"published {await outbox_relay.drain()}")
            return
        loop = asyncio.get_running_loop()
        for stop_signal in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(stop_signal, outbox_relay.stop)
        await outbox_relay.run()
    finally:
        await outbox_relay.close()
        await pool.close()


@dlq_app.command("list")
def dlq_list(
    group: Annotated[str, typer.Option(help="consumer group (the service's name), e.g. vouchers")],
    bootstrap: Annotated[str, typer.Option(envvar="BK_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:19092",
) -> None:
    """List the records on the group's dead-letter topic `<group>.dlq`."""
    from . import dead_letters

    try:
        records = asyncio.run(dead_letters.read(_kafka(bootstrap), group))
    except LookupError as error:
        raise typer.BadParameter(str(error), param_hint="--group") from error
    for r in records:
        typer.echo(
            f"{r.partition}:{r.offset}\tce_id={r.ce_id or '-'}\tce_type={r.ce_type or '-'}\t"
            f"from={r.original_topic}/{r.original_partition}@{r.original_offset}\tattempts={r.attempts}\t"
            f"failed_at={r.failed_at}\terror={r.error}"
        )
    typer.echo(f"{len(records)} dead letter(s) on {group}.dlq")


@dlq_app.command("replay")
def dlq_replay(
    group: Annotated[str, typer.Option(help="consumer group (the service's name), e.g. vouchers")],
    database_url: Annotated[str, typer.Option(help="the database of the service that owns the group")],
    event_id: Annotated[list[str], typer.Option(help="CloudEvent id to replay; repeat for several")] = [],  # noqa: B006
    all_: Annotated[bool, typer.Option("--all", help="replay every dead letter of the group")] = False,
    bootstrap: Annotated[str, typer.Option(envvar="BK_KAFKA_BOOTSTRAP_SERVERS")] = "127.0.0.1:19092",
) -> None:
    """Republish dead letters to their original topic whose inbox row is still 'dead_lettered' (safe to rerun)."""
    from . import dead_letters

    if all_ == bool(event_id):
        raise typer.BadParameter("give either --all or one or more --event-id", param_hint="--all/--event-id")
    try:
        report = asyncio.run(dead_letters.replay(_kafka(bootstrap), database_url, group, None if all_ else event_id))
    except LookupError as error:
        raise typer.BadParameter(str(error), param_hint="--group") from error
    for message_id in report.replayed:
        typer.echo(f"replayed {message_id}")
    for message_id, why in report.skipped:
        typer.echo(f"skipped {message_id}: {why}")
    for message_id in report.not_found:
        typer.echo(f"not on {group}.dlq: {message_id}")
    typer.echo(f"{len(report.replayed)} replayed, {len(report.skipped)} skipped, {len(report.not_found)} not found")
    if report.not_found:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
