"""Service settings from the environment (prefix `BK_`), the same names locally, in compose and on Kubernetes."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from buurtkracht_contracts.event import source_urn
from buurtkracht_contracts.topics import all_topics

# an inbox row must outlive every message that could be delivered again: the longest topic retention
LONGEST_TOPIC_RETENTION_DAYS = max(spec.retention_ms for spec in all_topics()) / (24 * 3600 * 1000)


class KafkaSettings(BaseSettings):
    """How to reach Kafka: what every service and the `buurtkracht` command line connect with."""

    model_config = SettingsConfigDict(env_prefix="BK_", extra="ignore")

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092", description="host:port of one or more brokers, comma-separated"
    )
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: str | None = None
    kafka_ssl_ca_file: Path | None = Field(None, description="CA bundle of the brokers (e.g. Strimzi's cluster CA)")

    @property
    def kafka_bootstrap_list(self) -> list[str]:
        """The brokers one by one: aiokafka takes a comma-separated string for one address."""
        return [server.strip() for server in self.kafka_bootstrap_servers.split(",") if server.strip()]

    def kafka_client_options(self) -> dict[str, object]:
        """Connection options for aiokafka clients (plaintext locally, SASL/TLS on Kubernetes)."""
        options: dict[str, object] = {
            "bootstrap_servers": self.kafka_bootstrap_list,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_sasl_mechanism:
            options |= {
                "sasl_mechanism": self.kafka_sasl_mechanism,
                "sasl_plain_username": self.kafka_sasl_username,
                "sasl_plain_password": self.kafka_sasl_password,
            }
        if (context := self.kafka_ssl_context()) is not None:
            options["ssl_context"] = context
        return options

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """TLS to the brokers when the protocol is SSL or SASL_SSL, trusting `kafka_ssl_ca_file` if set."""
        if not self.kafka_security_protocol.endswith("SSL"):
            return None
        return ssl.create_default_context(cafile=str(self.kafka_ssl_ca_file) if self.kafka_ssl_ca_file else None)


class KitSettings(KafkaSettings):
    service_name: str = Field(description="initiatives, vouchers, notifications or portal; also the consumer group id")
    database_url: str = Field(
        description="postgresql:// URL of the service's own database. It may name several servers "
        "(`postgresql://u:p@h1:5432,h2:5432/db?target_session_attrs=read-write`), of which the client takes the one "
        "that accepts writes, so the service follows a failover by itself (as to the local stack's standby, see "
        "deploy/local/README.md); on Kubernetes the CloudNativePG cluster's `-rw` Service does that, and the URL "
        "names it alone"
    )
    municipality_oin: str = Field("00000000000000000000", description="OIN of the municipality, in event sources")

    http_host: str = "127.0.0.1"
    http_port: int = 8000
    http_max_body_bytes: int = Field(
        1 << 20, ge=1024, description="The largest request body taken (413 beyond), unless a route allows more"
    )
    process_role: str = Field(
        "all",
        pattern="^(all|api|worker|relay)$",
        description="What this process runs besides HTTP: all (consumer, background loops and outbox relay), "
        "api (nothing), worker (consumer and background loops), relay (the outbox relay)",
    )
    http_workers: int = Field(
        1,
        ge=1,
        description="Processes serving HTTP on the one port; above 1 the first also runs the consumer and "
        "background loops, the rest only HTTP (needs PROMETHEUS_MULTIPROC_DIR, and process_role all)",
    )
    relay_process: bool = Field(
        False, description="Run the outbox relay in a process of its own beside the HTTP processes"
    )
    log_level: str = "INFO"
    otlp_endpoint: str | None = Field(
        None,
        description="OTLP/HTTP base URL traces are exported to (`http://collector:4318`); no tracing when unset",
    )
    trace_sql: bool = Field(
        False,
        description="A span for every SQL statement (asyncpg) in the traces; off, a trace shows the requests, the "
        "outbox, the consumers and the deliveries, at a fraction of the cost",
    )
    trace_sample_ratio: float = Field(
        1.0,
        ge=0,
        le=1,
        description="Share of new traces recorded; a request that comes with a trace follows its parent",
    )
    log_format: str = Field("json", pattern="^(json|text)$")
    migrate_on_start: bool = True
    database_wait_seconds: float = Field(
        60.0, ge=0, description="How long a starting process waits for a database that does not answer yet"
    )
    db_pool_min_size: int = 2
    db_pool_max_size: int = 10

    relay_enabled: bool = True
    relay_batch_size: int = Field(
        5000, ge=1, description="Most outbox rows the relay publishes in one transaction (sent in chunks of 1,000)"
    )
    relay_poll_interval_seconds: float = Field(
        0.05,
        gt=0,
        description="How often an idle relay probes the outbox for rows other processes committed (commits of its "
        "own process wake it at once)",
    )

    consumer_start: str = Field(
        "earliest", pattern="^(earliest|latest)$", description="where a consumer group without offsets starts"
    )
    consumer_max_attempts: int = Field(5, ge=1)
    consumer_retry_backoff_seconds: float = Field(0.2, ge=0)
    consumer_handler_timeout_seconds: float = Field(30.0, gt=0)
    consumer_batch_size: int = Field(
        500, ge=1, description="Most records polled at once; each partition's share is applied in one transaction"
    )
    consumer_commit_interval_seconds: float = Field(
        0.2, gt=0, description="How often the consumer group's offsets are committed (a crash redelivers at most this)"
    )
    db_acquire_timeout_seconds: float = Field(10.0, gt=0)
    db_command_timeout_seconds: float = Field(30.0, gt=0)

    jwt_public_key_file: Path | None = None
    jwt_jwks_url: str | None = None
    jwt_issuer: str = "https://login.buurtkracht.local"
    jwt_audience: str = "buurtkracht"

    shutdown_grace_seconds: float = Field(20.0, gt=0)

    housekeeping_interval_seconds: float = Field(3600.0, gt=0, description="How often old rows are swept")
    inbox_retention_days: float = Field(
        45.0,
        gt=LONGEST_TOPIC_RETENTION_DAYS,
        description="How long a consumed message's inbox row is kept: longer than any topic keeps a message",
    )
    idempotency_retention_days: float = Field(7.0, gt=0, description="How long an Idempotency-Key is answered")

    @property
    def event_source(self) -> str:
        return source_urn(self.municipality_oin, f"buurtkracht-{self.service_name}")
